"""The report's tables, built from a study's records: `runs` (one row per trial run, whatever its status)
and `summary` (one row per configuration: mean, SD and n over the seeds of its finished runs), the
per-epoch history of the finished runs, and Parquet files with `ablations.*` metadata.

The columns users script against are documented in reports/README.md; keep the two in step.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablations.report.formatting import pair_name, value_text
from ablations.report.records import StudyRecords, as_int
from ablations.stores import store_label
from ablations.tracking import EPOCH_METRICS, FLOOR_TAG, PIPELINE_KEY, SEED_KEY, SPREAD_METRICS, cell_name, phase_column

# Final metrics every runs.parquet has (NaN where a run did not log them); others the runs logged follow.
FINAL_METRICS = ("probe_h", "probe_z", "knn_acc", "loss", "wall_time_s")
# The objective, and the metric every figure shows.
OBJECTIVE = "probe_h"
# The columns of a pair study's configuration: SimCLR Figure 5's first and second transformation.
PAIR_KEYS = ["first", "second"]


@dataclass
class Tables:
    """A study's two tables and what names their columns."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    config_keys: list[str]  # the columns that name a configuration
    metrics: list[str]  # the final-metric columns
    pair: bool  # a Figure 5 pair study (first/second columns)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> runs left out of the summary
    # The study's untrained-floor runs (tag ablations.floor), apart from its configurations; None if none.
    floor: pd.DataFrame | None = None

    @property
    def has_results(self) -> bool:
        """Some run that counts has the objective: there is something to compare."""
        return bool(included(self.runs)[OBJECTIVE].notna().any())


def runs_table(trials: list[Any]) -> tuple[pd.DataFrame, list[str], list[str], bool]:
    """One row per trial run: identity, configuration, outcome, final metrics, provenance.
    Returns (table, configuration keys, final-metric columns, whether it is a pair study)."""
    varied_keys: list[str] = []
    metric_keys: list[str] = list(FINAL_METRICS)
    pair = any("ablations.first" in run.data.tags for run in trials)
    rows = []
    for run in trials:
        row, varied = _run_row(run)
        for key in varied:
            if key != SEED_KEY and key not in varied_keys and not (pair and key == PIPELINE_KEY):
                varied_keys.append(key)
        metric_keys += [key for key in sorted(_metrics(run)) if key not in metric_keys]
        rows.append(row)
    table = _typed_columns(rows, pair, varied_keys, metric_keys)
    return table, (PAIR_KEYS if pair else []) + varied_keys, metric_keys, pair


def _run_row(run) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run as a flat row (varied values under `varied:`, metrics under `metric:`), and its varied dict."""
    tags, info = run.data.tags, run.info
    varied = _json(tags.get("ablations.varied")) or {}
    seed = as_int(tags.get("ablations.seed"))
    if seed is None:
        seed = as_int(varied.get(SEED_KEY, run.data.params.get(SEED_KEY)))
    end = info.end_time if info.status != "RUNNING" else None
    row = {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "trial": as_int(tags.get("optuna.trial")),
        "status": info.status,
        "pruned": "ablations.pruned" in tags,
        "seed": seed,
        "cell": tags.get("ablations.cell"),
        "config": cell_name(tags["ablations.cell"]) if "ablations.cell" in tags else None,
        "first": tags.get("ablations.first"),
        "second": tags.get("ablations.second"),
        **{f"varied:{key}": _cell_value(value) for key, value in varied.items()},
        **{f"metric:{key}": value for key, value in _metrics(run).items()},
        "duration_s": (end - info.start_time) / 1000.0 if end and info.start_time else math.nan,
        "start_time": info.start_time,
        "device": tags.get("device"),
        "git_commit": tags.get("git_commit"),
        "torch_version": tags.get("torch_version"),
        "error": tags.get("ablations.error") or tags.get("ablations.killed") or tags.get("ablations.pruned"),
    }
    return row, varied


def _metrics(run) -> dict[str, float]:
    """A run's final metrics under the tables' names: phases as `probe_s` whether logged so (before the
    rename) or as `seconds/probe`; the per-configuration spread, which the summary computes itself, left
    out."""
    return {phase_column(key): value for key, value in run.data.metrics.items() if key not in SPREAD_METRICS}


def _typed_columns(rows: list[dict[str, Any]], pair: bool, varied_keys: list[str],
                   metric_keys: list[str]) -> pd.DataFrame:
    """The runs table in its documented column order, each column with its documented dtype."""
    def column(name: str, dtype: str | None = None, default: Any = None):
        values = [r.get(name, default) for r in rows]
        return _typed(values) if dtype is None else pd.Series(values, dtype=dtype)

    columns: dict[str, Any] = {"run_id": column("run_id", "str"), "run_name": column("run_name", "str"),
                               "trial": column("trial"), "status": column("status", "str"), "seed": column("seed")}
    if pair:
        columns["first"], columns["second"] = column("first", "str"), column("second", "str")
    for key in varied_keys:
        columns[key] = column(f"varied:{key}")
    columns["cell"] = column("cell", "str")
    columns["config"] = column("config", "str")
    for key in metric_keys:
        columns[key] = column(f"metric:{key}", "float64", default=math.nan)
    columns["duration_s"] = column("duration_s", "float64")
    columns["start_time"] = pd.to_datetime(column("start_time", "float64"), unit="ms", utc=True)
    for key in ("device", "git_commit", "torch_version", "error"):
        columns[key] = column(key, "str")
    columns["pruned"] = column("pruned", "bool")
    return pd.DataFrame(columns)


def included(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that count: FINISHED and not pruned (a pruned trial stopped early, by design)."""
    return runs[(runs["status"] == "FINISHED") & ~runs["pruned"]]


def left_out_reasons(runs: pd.DataFrame) -> dict[str, int]:
    """Why runs are left out of the summary: their status, or `pruned`; reason -> count."""
    reasons = Counter()
    for status, pruned in zip(runs["status"], runs["pruned"]):
        if status != "FINISHED":
            reasons[status] += 1
        elif pruned:
            reasons["pruned"] += 1
    return dict(sorted(reasons.items()))


def summarize(runs: pd.DataFrame, config_keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per configuration over its included runs: the key columns, n, then mean and SD
    (sample SD, ddof 1; NaN when n = 1) of every final metric. Configurations in trial order."""
    kept = included(runs)
    keys = config_keys or ["cell"]
    grouped = kept.groupby(keys, sort=False, dropna=False)
    summary = grouped.size().rename("n").reset_index()
    if config_keys:  # the runner's readable id of the configuration, beside the typed keys
        summary.insert(len(keys), "cell", grouped["cell"].first().to_numpy())
    if "config" in kept.columns:
        summary.insert(summary.columns.get_loc("cell") + 1, "config", grouped["config"].first().to_numpy())
    for metric in metrics:
        summary[f"{metric}_mean"] = grouped[metric].mean().to_numpy()
        summary[f"{metric}_std"] = grouped[metric].std(ddof=1).to_numpy()
    summary["n"] = summary["n"].astype("int64")
    ordered = keys + [c for c in summary.columns if c not in keys]
    return pd.DataFrame(summary[ordered]).reset_index(drop=True)


def build_tables(records: StudyRecords) -> Tables:
    """Both tables, with the study's identity in their attrs (which write_parquet stores)."""
    floor_runs = [run for run in records.trials if run.data.tags.get(FLOOR_TAG) == "true"]
    floor_ids = {run.info.run_id for run in floor_runs}
    runs, config_keys, metrics, pair = runs_table([run for run in records.trials if run.info.run_id not in floor_ids])
    summary = summarize(runs, config_keys, metrics)
    floor = runs_table(floor_runs)[0] if floor_runs else None
    tables = Tables(runs, summary, config_keys, metrics, pair, left_out_reasons(runs), floor)
    attrs = {"study": records.name, "parent_run_id": records.parent.info.run_id, "tracking_uri": store_label(records.uri),
             "config_keys": config_keys}
    runs.attrs.update(attrs)
    summary.attrs.update(attrs, left_out=sum(tables.left_out.values()), left_out_by_reason=tables.left_out)
    return tables


def write_parquet(frame: pd.DataFrame, path: Path, metadata: dict[str, Any]) -> Path:
    """Parquet through pyarrow, with `ablations.*` keys in the schema metadata (and pandas attrs)."""
    with warnings.catch_warnings():
        # pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates; the values
        # it gets are the right UTC instants, and the column keeps its UTC type in the file.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        table = pa.Table.from_pandas(frame, preserve_index=False)
    schema_metadata = dict(table.schema.metadata or {})
    schema_metadata[b"PANDAS_ATTRS"] = json.dumps(frame.attrs, default=str).encode()  # pandas reads it back
    for key, value in metadata.items():
        schema_metadata[f"ablations.{key}".encode()] = (value if isinstance(value, str) else json.dumps(value)).encode()
    pq.write_table(table.replace_schema_metadata(schema_metadata), path)
    return path


def configuration_labels(runs: pd.DataFrame, config_keys: list[str], pair: bool) -> list[str]:
    """Each run's configuration name, as MLflow names its runs and tags them (`ablations.config`) and the
    terminal prints it: `crop+color`, `temperature=0.5 batch_size=256` (tracking.cell_name of its cell id).
    A table without the cell ids (made by hand) is named by the same rule from its key columns."""
    if "cell" in runs.columns:
        return [cell_name(cell) if isinstance(cell, str) else "base" for cell in runs["cell"]]
    labels = []
    for _, row in runs.iterrows():
        parts = [pair_name((row["first"], row["second"]))] if pair else []
        parts += [f"{key.split('.')[-1]}={value_text(row[key])}" for key in config_keys if key not in PAIR_KEYS]
        labels.append(" ".join(parts) or "base")
    return labels


def history_frame(runs: pd.DataFrame, histories: dict[str, dict[str, dict[int, float]]],
                  labels: list[str]) -> pd.DataFrame:
    """One row per epoch of each included run: run_id, run_name, configuration, seed, epoch and the
    per-epoch metrics (NaN where a metric was not logged at that epoch)."""
    rows = []
    for (_, run), label in zip(runs.iterrows(), labels):
        if run["status"] != "FINISHED" or run["pruned"]:
            continue
        per_metric = histories.get(run["run_id"], {})
        epochs = sorted({step for values in per_metric.values() for step in values})
        for epoch in epochs:
            rows.append({"run_id": run["run_id"], "run_name": run["run_name"], "configuration": label,
                         "seed": run["seed"], "epoch": epoch,
                         **{key: per_metric.get(key, {}).get(epoch, math.nan) for key in EPOCH_METRICS}})
    return pd.DataFrame(rows)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _cell_value(value: Any) -> Any:
    """A varied value as a table cell: scalars as they are, a pipeline as `crop+color`, else JSON."""
    if isinstance(value, list) and all(isinstance(v, str) or (isinstance(v, dict) and "op" in v) for v in value):
        if not value:
            return "[]"
        parts = []
        for op in value:
            if isinstance(op, str):
                parts.append(op)
            else:  # {op: name, **params} as in ablations.plan.format_value
                params = ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}"
                                  for k, v in sorted(op.items()) if k != "op")
                parts.append(f"{op['op']}({params})" if params else op["op"])
        return "+".join(parts)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def _typed(values: list[Any]) -> pd.Series:
    """A column typed by its values: bool, int64 (Int64 with gaps), float64, else str."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if len(present) < len(values) else "bool")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64" if len(present) < len(values) else "int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")
