"""A study's records kept with its report: `runs.parquet` (every trial run, the untrained floor's
included under role `floor`, with the study's identity in the file's metadata) and `history.parquet`
(every finished run's per-epoch curves). `python -m ablations.report --from-parquet` rebuilds a report
from them, so anyone who clones the project can re-analyse a committed study without its MLflow store.

`ablations.report.parquet` writes both from a study's records; `read` reads them back into the same `StudyRecords` that
MLflow gives (`records.read_study`), so a report built from either is the same report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablations.report.records import ReportError, StudyRecords
from ablations.stores.tracking import EPOCH_METRICS

RUNS_NAME = "runs.parquet"
HISTORY_NAME = "history.parquet"
HISTORY_COLUMNS = ["run_id", "epoch", *EPOCH_METRICS]
# The runs.parquet columns a report reads whatever the study (tables, README, verdict).
REQUIRED_COLUMNS = ("run_id", "run_name", "role", "status", "pruned", "seed", "cell", "probe_h", "start_time")


def metadata(records: StudyRecords) -> dict[str, Any]:
    """What runs.parquet carries besides its rows: enough to rebuild the report (`ablations.*` keys)."""
    return {"study": records.name, "parent_run_id": records.parent_run_id, "parent_status": records.parent_status,
            "parent_tags": records.parent_tags, "params": records.params, "config_keys": records.config_keys,
            "pair": records.pair, "earlier_parents": records.earlier_parents, "notes": records.notes}


def read(path: str | Path) -> StudyRecords:
    """A study's records from a report folder or its runs.parquet; ReportError where the file cannot
    serve (missing, not a report's table, or written before runs.parquet kept the floor and metadata)."""
    path = Path(path)
    runs_path = path / RUNS_NAME if path.is_dir() else path
    if not runs_path.is_file():
        raise ReportError(f"no {RUNS_NAME} at {runs_path}; give a report folder (reports/<study>) or its "
                          f"{RUNS_NAME}")
    try:
        table = pq.read_table(runs_path)
    except (OSError, pa.ArrowException) as error:
        raise ReportError(f"{runs_path} is not a readable Parquet file ({error})") from None
    meta = {key.decode()[len("ablations."):]: value.decode() for key, value in (table.schema.metadata or {}).items()
            if key.startswith(b"ablations.")}
    missing = [key for key in ("study", "parent_run_id", "params", "config_keys") if key not in meta]
    if missing or "role" not in table.column_names:
        raise ReportError(f"{runs_path} was written by an older ablations.report (no "
                          f"{', '.join(missing + (['role column'] if 'role' not in table.column_names else []))}); "
                          "rebuild it from its MLflow store (python -m ablations.report --study NAME)")
    absent = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if absent:
        raise ReportError(f"{runs_path} has no column {', '.join(absent)}, which a report needs (every runs.parquet "
                          f"a report writes has {', '.join(REQUIRED_COLUMNS)}); rebuild it from its MLflow store "
                          "(python -m ablations.report --study NAME) or restore the file")
    if table.num_rows == 0:
        raise ReportError(f"{runs_path} holds no runs (zero rows): there is nothing to report; restore the file or "
                          "rebuild it from its MLflow store (python -m ablations.report --study NAME)")
    runs = table.to_pandas()
    runs.attrs = {}
    history = runs_path.parent / HISTORY_NAME
    if not history.is_file():
        print(f"warning: no {HISTORY_NAME} beside {runs_path}: this report has no per-epoch curves, and the "
              f"{HISTORY_NAME} it writes is empty", file=sys.stderr)
    return StudyRecords(
        name=meta["study"], source=str(path), parent_run_id=_plain(meta["parent_run_id"]),
        parent_status=_plain(meta.get("parent_status", '"FINISHED"')), parent_tags=json.loads(meta.get("parent_tags", "{}")),
        params=json.loads(meta["params"]), runs=runs, config_keys=json.loads(meta["config_keys"]),
        pair=bool(json.loads(meta.get("pair", "false"))), histories=_histories(history),
        earlier_parents=int(json.loads(meta.get("earlier_parents", "0"))), from_mlflow=False,
        notes=json.loads(meta.get("notes", "[]")))


def _plain(text: str) -> str:
    """A metadata value written as a JSON string or as the bare string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _histories(path: Path) -> dict[str, dict[str, dict[int, float]]]:
    """run_id -> metric -> {epoch: value} from history.parquet; none where the file is absent."""
    if not path.is_file():
        return {}
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise ReportError(f"{path} is not a readable Parquet file ({error}); restore it or move it away "
                          "(the report is then built without per-epoch curves)") from None
    if not {"run_id", "epoch"} <= set(frame.columns):
        raise ReportError(f"{path} has no column run_id or epoch, which the per-epoch curves need; restore it or "
                          "move it away (the report is then built without them)")
    histories: dict[str, dict[str, dict[int, float]]] = {}
    for run_id, rows in frame.groupby("run_id", sort=False):
        histories[str(run_id)] = {key: {int(e): float(v) for e, v in zip(rows["epoch"], rows[key]) if pd.notna(v)}
                                  for key in EPOCH_METRICS if key in rows}
        histories[str(run_id)] = {key: values for key, values in histories[str(run_id)].items() if values}
    return histories
