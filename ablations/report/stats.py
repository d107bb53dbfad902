"""Statistics of the report's tables, as pure functions: mean, SD and n per cell,
Spearman's rank correlation, and whether a curve rises. The README and the figure readings only
format what these return; the verdicts' paired comparisons are `ablations.stats.paired`'s.

Accuracies are fractions in [0, 1]; SDs are sample SDs (ddof 1) over seeds.
"""

from __future__ import annotations

import math

import pandas as pd

from ablations.report.tables import OBJECTIVE, included


def cell_stats(runs: pd.DataFrame, keys: list[str], metric: str = OBJECTIVE) -> pd.DataFrame:
    """Mean, SD (ddof 1) and n of `metric` over the included runs of each combination of `keys`
    (averaging over any other varied key), in trial order."""
    kept = included(runs).dropna(subset=[metric])
    grouped = kept.groupby(keys, sort=False)[metric]
    stats = grouped.agg(mean="mean", std="std", n="count").reset_index()
    stats["n"] = stats["n"].astype("int64")
    return stats


def spearman(a, b) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (no SciPy needed); NaN under 3
    pairs or when either side is constant."""
    frame = pd.DataFrame({"a": list(a), "b": list(b)}).dropna()
    if len(frame) < 3 or frame["a"].nunique() < 2 or frame["b"].nunique() < 2:
        return math.nan
    return float(frame["a"].rank().corr(frame["b"].rank(), method="pearson"))


def is_monotonic(values) -> bool:
    """Every value at least the one before it (a non-decreasing curve)."""
    values = list(values)
    return all(b >= a for a, b in zip(values, values[1:]))
