"""Re-save a committed study's runs.parquet in the form a report can be rebuilt from (2026-12-06; a one-off,
run once on the four studies below, kept because their runs.parquet notes name it, at its old path
reports/resave/resave.py).

The four studies committed before 2026-12-06 (projection_head, color_strength, temperature, aug_pairs)
kept runs.parquet without the untrained floor's runs and without the study's identity (rule, description,
shared params), and their MLflow stores were not kept. This script adds, once:
- a `role` column (`trial` for every existing row);
- the floor's runs (`role` floor), recomputed: the floor is the study's base encoder at train.epochs 0
  under the same probe, a deterministic function of the seed, the encoder and the data, so it is run again
  here with simclr_core on this commit, one run per seed the study's floor had (its study file's
  `seeds`); the mean and SD printed in the earlier README are checked against the recomputed values;
- the metadata `python -m ablations.report --from-parquet` reads: the rule and description from the study
  file as shipped, the shared params from its base configuration (as MLflow logs them: strings; data.root
  left out), the parent run's id from the old file, and a note saying all this;
- history.parquet, from the per-epoch rows the old report wrote to figures/training_curves.csv.

It trains only the floor (seconds per seed) and changes no trial row.

    SIMCLR_DATA=../shared/datasets python tools/resave_reports.py projection_head color_strength temperature aug_pairs
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations.design.plan import flat_config  # noqa: E402
from ablations.report.saved import HISTORY_COLUMNS, HISTORY_NAME  # noqa: E402
from ablations.report.parquet import write_parquet  # noqa: E402
from ablations.run.study_file import load_study  # noqa: E402
from ablations.stores.tracking import EPOCH_METRICS, VERDICT_TAG  # noqa: E402
from simclr_core.trainer import train  # noqa: E402


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def earlier_floor(readme: str) -> str:
    found = re.search(r"Untrained floor[^:]*: probe_h ([0-9.]+(?: ± [0-9.]+)? % \(n = \d+\))", readme)
    return found.group(1) if found else "not stated"


def floor_rows(spec, template: pd.DataFrame, data_root: str) -> list[dict]:
    rows = []
    for planned in spec.trials():
        if not planned.cell.floor:
            continue
        config = planned.config
        config.data.root = data_root
        result = train(config)
        row = {column: None for column in template.columns}
        row.update({
            "run_id": f"floor-recomputed-seed{planned.seed}", "run_name": planned.run_name, "role": "floor",
            "trial": None, "status": "FINISHED", "seed": planned.seed, "cell": "floor", "pruned": False,
            "probe_h": result.probe_h, "probe_z": result.probe_z, "knn_acc": result.knn_acc,
            "wall_time_s": result.wall_time_s, "duration_s": result.wall_time_s,
            "start_time": pd.Timestamp(datetime.now(timezone.utc)), "device": result.device, "git_commit": commit(),
            "torch_version": result.versions["torch"], "error": None,
        })
        rows.append(row)
        print(f"  floor seed={planned.seed}: probe_h {result.probe_h:.4f}")
    return rows


def resave(name: str, data_root: str) -> None:
    folder = ROOT / "reports" / name
    path = folder / "runs.parquet"
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"ablations.")}
    runs = table.to_pandas()
    runs.attrs = {}
    if "role" in runs.columns:
        print(f"{name}: already re-saved")
        return
    spec = load_study(ROOT / "studies" / f"{name}.yaml")
    runs.insert(runs.columns.get_loc("run_name") + 1, "role", pd.Series(["trial"] * len(runs), dtype="str"))
    print(f"{name}: {len(runs)} trial rows; floor was {earlier_floor((folder / 'README.md').read_text())}")
    floor = pd.DataFrame(floor_rows(spec, runs, data_root))
    recomputed = floor["probe_h"]
    for column in runs.columns:
        if str(runs[column].dtype) == "int64" and floor[column].isna().any():  # the trial number: none for these
            runs[column] = runs[column].astype("Int64")
        floor[column] = floor[column].astype(runs[column].dtype)
    both = pd.concat([floor, runs], ignore_index=True)[list(runs.columns)]
    varied = set(spec.search.varied_keys) | {"train.seed"}
    params = {key: value if isinstance(value, str) else json.dumps(value)
              for key, value in sorted(flat_config(spec.base).items()) if key not in varied and key != "data.root"}
    commits = runs["git_commit"].dropna().value_counts()
    note = (f"runs.parquet re-saved on {datetime.now(timezone.utc):%Y-%m-%d} by reports/resave/resave.py (the MLflow "
            f"store of this study was not kept): the role column and the study's metadata added from "
            f"studies/{name}.yaml as shipped, and the untrained floor's {len(floor)} run(s) recomputed on commit "
            f"{commit()[:12]} (probe_h {recomputed.mean() * 100:.1f} ± {recomputed.std(ddof=1) * 100:.1f} %, n = "
            f"{len(floor)}; the earlier README printed {earlier_floor((folder / 'README.md').read_text())}); "
            "no trial row changed.")
    metadata = {
        "study": meta["ablations.study"], "parent_run_id": json.loads(meta["ablations.parent_run_id"])
        if meta["ablations.parent_run_id"].startswith('"') else meta["ablations.parent_run_id"],
        "parent_status": "FINISHED",
        "parent_tags": {VERDICT_TAG: spec.verdict, "mlflow.note.content": spec.description,
                        "git_commit": str(commits.index[0]) if len(commits) else ""},
        "params": params, "config_keys": json.loads(meta["ablations.config_keys"]),
        "pair": "first" in runs.columns, "earlier_parents": 0, "notes": [note],
    }
    write_parquet(both, path, metadata)
    curves = pd.read_csv(folder / "figures" / "training_curves.csv")
    history = curves[[c for c in HISTORY_COLUMNS if c in curves.columns]].copy()
    for key in EPOCH_METRICS:
        if key not in history:
            history[key] = math.nan
    history = history[HISTORY_COLUMNS].astype({"run_id": "str", "epoch": "int64",
                                               **{key: "float64" for key in EPOCH_METRICS}})
    write_parquet(history, folder / HISTORY_NAME, {"study": metadata["study"], "parent_run_id": metadata["parent_run_id"]})
    print(f"  wrote {path} ({len(both)} rows) and {folder / HISTORY_NAME} ({len(history)} rows)")


if __name__ == "__main__":
    root = os.environ.get("SIMCLR_DATA", str(ROOT.parent / "shared" / "datasets"))
    for study in sys.argv[1:]:
        resave(study, root)
