"""The results table the rules read, and which runs count: one definition for both sources.

During a run the results come from Optuna's trials (`ablations.stores.confirm`), afterwards from the
MLflow records or a report's runs.parquet (`ablations.report.tables`); each source only turns its records
into `RunResult`s, in its own order of the runs (trial number), and the table is built here. A test holds
the two equal for the same runs (tests/test_results.py).

A run counts when it finished (MLflow FINISHED, Optuna COMPLETE) and was not pruned (a pruned trial
stopped early, by design), and it is the first run of its unit (cell and seed, and a race's rung) to have
started: a store that lost a result had the unit trained again, and one seed's result counted twice would
shrink the spread and raise n. The results table holds the runs that count of the study's configurations
(the untrained floor is none), with a cell and the objective; a race's runs carry their rung and role
(`ablations.stats.race`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# The columns every results table starts with; the configuration's values (pairs as first/second) follow.
COLUMNS = ("cell", "seed", "probe_h", "probe_z")


@dataclass(frozen=True)
class RunResult:
    """One run as a source recorded it, in plain values."""

    cell: str | None  # the configuration's id (`plan.Cell.id`); None where the record names none
    seed: int | None
    probe_h: float | None  # None or NaN where the run recorded none
    probe_z: float | None
    finished: bool  # ran to its end: MLflow FINISHED, Optuna COMPLETE (and no duplicate of another trial)
    pruned: bool = False
    floor: bool = False  # the untrained floor: no configuration of the study
    started: float | None = None  # start time (any clock the source shares over its runs); None: unknown, last
    rung: int | None = None  # a race's unit: the rung's training length (epochs)
    race: str | None = None  # and its role there: survivor (the default) or audit
    # The configuration's values the rules read, as the report's tables show them (`plan.table_value`):
    # `first`, `second` for a pair study, then the varied keys but the seed (and the pipeline of a pair study).
    values: Mapping[str, Any] = field(default_factory=dict)


def counting(runs: Sequence[RunResult]) -> list[bool]:
    """Which of the runs count (the module's docstring): finished, not pruned, and the first of its unit
    (cell, rung, seed) by start time (then by its place in `runs`)."""
    counts = [run.finished and not run.pruned for run in runs]
    named = [i for i, run in enumerate(runs) if counts[i] and run.cell is not None and run.seed is not None]
    seen = set()
    for i in sorted(named, key=lambda i: (runs[i].started is None, runs[i].started or 0.0, i)):
        unit = (runs[i].cell, runs[i].rung, runs[i].seed)
        if unit in seen:
            counts[i] = False
        seen.add(unit)
    return counts


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def results_table(runs: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run of the study's configurations that counts and has a cell and probe_h, in the runs'
    order: `cell`, `seed`, `probe_h`, `probe_z` (NaN where not recorded), then the configuration's values
    (NaN where a run has none), then, where some run is a race's, `rung` and `race`."""
    trained = [run for run in runs if not run.floor]
    rows = [run for run, counts in zip(trained, counting(trained))
            if counts and run.cell is not None and not _missing(run.probe_h)]
    keys = list(dict.fromkeys(key for run in rows for key in run.values))
    raced = any(run.rung is not None for run in rows)
    records = [{"cell": run.cell, "seed": run.seed, "probe_h": float(run.probe_h),
                "probe_z": math.nan if _missing(run.probe_z) else float(run.probe_z),
                **{key: math.nan if _missing(run.values.get(key)) else run.values[key] for key in keys},
                **({"rung": math.nan if run.rung is None else run.rung,
                    "race": None if run.rung is None else run.race or "survivor"} if raced else {})}
               for run in rows]
    return pd.DataFrame(records, columns=[*COLUMNS, *keys, *(["rung", "race"] if raced else [])])


@dataclass(frozen=True)
class Best:
    """The best configuration by its mean over seeds: on h, and on z where some run recorded z."""

    cell: str
    probe_h: float
    configurations: int  # how many configurations the table has
    cell_z: str | None = None
    probe_z: float | None = None


def best_of(table: pd.DataFrame) -> Best | None:
    """The best configuration of a results table by mean probe_h (and by mean probe_z); None when empty."""
    if table.empty:
        return None
    means = table.groupby("cell")[["probe_h", "probe_z"]].mean()
    best = means["probe_h"].idxmax()
    if not means["probe_z"].notna().any():
        return Best(best, float(means.loc[best, "probe_h"]), len(means))
    best_z = means["probe_z"].idxmax()
    return Best(best, float(means.loc[best, "probe_h"]), len(means), best_z, float(means.loc[best_z, "probe_z"]))
