"""The report's tables, built from a study's records: `runs` (one row per trial run of a configuration,
whatever its status; the untrained floor's runs apart), `summary` (one row per configuration: mean, SD
and n over the seeds of its finished runs) and the per-epoch history of the finished runs; the rules'
results table from the runs (`results`, defined in `ablations.stats.results`). `parquet` writes them.

The columns users script against are documented in reports/README.md; keep the two in step.
"""

from __future__ import annotations

import functools

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ablations.design.plan import key_labels
from ablations.report.formatting import pair_name, value_text
from ablations.report.records import FINAL_METRICS, PAIR_KEYS, StudyRecords
from ablations.stores.errors import store_label
from ablations.design.plan import cell_name
from ablations.stats.results import RunResult, counting, results_table
from ablations.stores.tracking import EPOCH_METRICS, FLOOR_ROLE

# The objective, and the metric every figure shows.
OBJECTIVE = "probe_h"


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
    # Found once, when first read: the analysis and the writers read these rather than recompute them.
    @functools.cached_property
    def counted(self) -> pd.DataFrame:
        """The runs that count (`included`)."""
        return included(self.runs)

    @functools.cached_property
    def labels(self) -> list[str]:
        """Each run's configuration name (`configuration_labels`)."""
        return configuration_labels(self.runs, self.config_keys, self.pair)

    @functools.cached_property
    def results(self) -> pd.DataFrame:
        """The rules' results table of the study's configurations (`ablations.stats.results.results_table`)."""
        return results_table(run_results(self.runs, self.config_keys))

    @property
    def has_results(self) -> bool:
        """Some run that counts has the objective: there is something to compare."""
        return bool(self.counted[OBJECTIVE].notna().any())


def included(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that count (`ablations.stats.results.counting`: finished, not pruned, one per configuration
    and seed)."""
    return runs[counting(run_results(runs))]


def run_results(runs: pd.DataFrame, config_keys: list[str] | None = None) -> list[RunResult]:
    """The runs table's rows as the rules' results (`ablations.stats.results`): this source's adapter, for
    MLflow's records and a saved runs.parquet alike; `config_keys`: the columns of the configuration's values."""
    def column(name: str, default: Any = None) -> list[Any]:
        return runs[name].tolist() if name in runs.columns else [default] * len(runs)

    def present(value: Any) -> Any:
        return None if value is None or value is pd.NA or value is pd.NaT or value != value else value

    starts = [None if pd.isna(t) else pd.Timestamp(t).value / 1e6 for t in column("start_time")]
    values = {key: column(key) for key in config_keys or []}
    return [RunResult(cell=present(cell), seed=present(seed), probe_h=present(h), probe_z=present(z),
                      finished=status == "FINISHED", pruned=bool(pruned), floor=role == FLOOR_ROLE, started=start,
                      rung=present(rung), race=present(race),
                      values={key: present(column_values[i]) for key, column_values in values.items()})
            for i, (cell, seed, h, z, status, pruned, role, start, rung, race) in enumerate(zip(
                column("cell"), column("seed"), column(OBJECTIVE), column("probe_z"), column("status"),
                column("pruned", False), column("role"), starts, column("rung"), column("race")))]


# Why a finished run is left out of n: another run of its configuration and seed finished first.
DUPLICATE = "duplicate"


def duplicates(finished: pd.DataFrame) -> pd.DataFrame:
    """The finished runs that repeat a configuration and seed already finished by an earlier run (a store
    that lost a result had the unit trained again; `ablations.stats.results.counting`)."""
    finished = finished[(finished["status"] == "FINISHED") & ~finished["pruned"]]
    return finished[[not counts for counts in counting(run_results(finished))]]


def left_out_reasons(runs: pd.DataFrame) -> dict[str, int]:
    """Why runs are left out of the summary: their status, `pruned`, or `duplicate`; reason -> count."""
    reasons = Counter()
    for status, pruned in zip(runs["status"], runs["pruned"]):
        if status != "FINISHED":
            reasons[status] += 1
        elif pruned:
            reasons["pruned"] += 1
    repeated = len(duplicates(runs[(runs["status"] == "FINISHED") & ~runs["pruned"]]))
    if repeated:
        reasons[DUPLICATE] = repeated
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


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The final-metric columns of a runs table: from probe_h up to duration_s (runs_table's order)."""
    columns = list(runs.columns)
    return columns[columns.index(FINAL_METRICS[0]):columns.index("duration_s")]


def build_tables(records: StudyRecords) -> Tables:
    """Both tables, with the study's identity in their attrs (which `parquet.write_parquet` stores)."""
    is_floor = records.runs["role"] == FLOOR_ROLE
    runs = records.runs[~is_floor].reset_index(drop=True)
    floor = records.runs[is_floor].reset_index(drop=True) if is_floor.any() else None
    config_keys, metrics = records.config_keys, metric_columns(records.runs)
    summary = summarize(runs, config_keys, metrics)
    tables = Tables(runs, summary, config_keys, metrics, records.pair, left_out_reasons(runs), floor)
    attrs = {"study": records.name, "parent_run_id": records.parent_run_id, "source": store_label(records.source),
             "config_keys": config_keys}
    runs.attrs.update(attrs)
    summary.attrs.update(attrs, left_out=sum(tables.left_out.values()), left_out_by_reason=tables.left_out)
    return tables


def configuration_labels(runs: pd.DataFrame, config_keys: list[str], pair: bool) -> list[str]:
    """Each run's configuration name, as MLflow names its runs and tags them (`ablations.config`) and the
    terminal prints it: `crop+color`, `temperature=0.5 batch_size=256` (plan.cell_name of its cell id).
    A table without the cell ids (made by hand) is named by the same rule from its key columns."""
    if "cell" in runs.columns:
        return [cell_name(cell) if isinstance(cell, str) else "base" for cell in runs["cell"]]
    labels, names = [], key_labels(key for key in config_keys if key not in PAIR_KEYS)
    for _, row in runs.iterrows():
        parts = [pair_name((row["first"], row["second"]))] if pair else []
        parts += [f"{name}={value_text(row[key])}" for key, name in names.items()]
        labels.append(" ".join(parts) or "base")
    return labels


def history_frame(runs: pd.DataFrame, histories: dict[str, dict[str, dict[int, float]]],
                  labels: list[str]) -> pd.DataFrame:
    """One row per epoch of each included run: run_id, run_name, configuration, seed, epoch and the
    per-epoch metrics (NaN where a metric was not logged at that epoch)."""
    rows = []
    counted = set(included(runs)["run_id"]) if "run_id" in runs.columns else None
    for (_, run), label in zip(runs.iterrows(), labels):
        if run["status"] != "FINISHED" or run["pruned"] or (counted is not None and run["run_id"] not in counted):
            continue
        per_metric = histories.get(run["run_id"], {})
        epochs = sorted({step for values in per_metric.values() for step in values})
        for epoch in epochs:
            rows.append({"run_id": run["run_id"], "run_name": run["run_name"], "configuration": label,
                         "seed": run["seed"], "epoch": epoch,
                         **{key: per_metric.get(key, {}).get(epoch, math.nan) for key in EPOCH_METRICS}})
    return pd.DataFrame(rows)


