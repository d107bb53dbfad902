"""Every Parquet file a report writes, from its `Analysis`: runs.parquet and history.parquet (the study's
records, which `saved.read` reads back: a rebuild needs no MLflow store), summary.parquet and
comparisons.parquet (the verdict's contrasts) or, for a study without a rule, differences.parquet (its
configurations compared), each with `ablations.*` keys in its schema metadata. The
columns are documented in reports/README.md.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablations.report.analysis import Analysis, differences_compared
from ablations.report.records import StudyRecords
from ablations.report.saved import HISTORY_COLUMNS, HISTORY_NAME, RUNS_NAME, metadata
from ablations.stores.errors import store_label
from ablations.stores.tracking import EPOCH_METRICS

COMPARISONS_NAME = "comparisons.parquet"
DIFFERENCES_NAME = "differences.parquet"
SUMMARY_NAME = "summary.parquet"


def write_tables(analysis: Analysis, study_dir: Path) -> list[Path]:
    """runs, history, summary and (where the study has a verdict) comparisons into `study_dir`; a
    comparisons table of an earlier report does not outlive its verdict."""
    records, tables = analysis.records, analysis.tables
    paths = write_records(analysis.saved or records, study_dir)
    meta = {"study": records.name, "parent_run_id": records.parent_run_id, "config_keys": tables.config_keys}
    paths.append(write_parquet(tables.summary, study_dir / SUMMARY_NAME, {
        **meta, "left_out": sum(tables.left_out.values()), "left_out_by_reason": tables.left_out,
        "included": int(tables.summary["n"].sum())}))
    if analysis.differences is None:  # nor does an earlier report's table of differences outlive its study's state
        (study_dir / DIFFERENCES_NAME).unlink(missing_ok=True)
    else:
        paths.append(write_parquet(analysis.differences, study_dir / DIFFERENCES_NAME, {
            "study": records.name, "parent_run_id": records.parent_run_id, "family": "simultaneous 95 %",
            "compared": differences_compared(analysis.differences)}))
    verdict = analysis.verdict
    if verdict is None:
        (study_dir / COMPARISONS_NAME).unlink(missing_ok=True)
        return paths
    checks = verdict.checks
    paths.append(write_parquet(analysis.comparisons, study_dir / COMPARISONS_NAME, {
        "study": records.name, "parent_run_id": records.parent_run_id, "verdict_rule": verdict.rule,
        "verdict": verdict.status, "claim": verdict.claim, "sentence": verdict.sentence,
        "best_candidates": verdict.candidates, "model_sigma": checks.sigma if checks else None,
        "model_df": checks.df if checks else None}))
    return paths


def write_records(records: StudyRecords, study_dir: Path) -> list[Path]:
    """runs.parquet (every run, floor included) and history.parquet into `study_dir`."""
    frame = records.runs.copy()
    frame.attrs = {"study": records.name, "parent_run_id": records.parent_run_id, "source": store_label(records.source),
                   "config_keys": records.config_keys}
    runs = write_parquet(frame, study_dir / RUNS_NAME, metadata(records))
    rows = [{"run_id": run_id, "epoch": epoch, **{key: per_metric.get(key, {}).get(epoch) for key in EPOCH_METRICS}}
            for run_id, per_metric in records.histories.items()
            for epoch in sorted({step for values in per_metric.values() for step in values})]
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS).astype({"run_id": "str", "epoch": "int64",
                                                                 **{key: "float64" for key in EPOCH_METRICS}})
    written = write_parquet(history, study_dir / HISTORY_NAME, {"study": records.name,
                                                               "parent_run_id": records.parent_run_id})
    return [runs, written]




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
