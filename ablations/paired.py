"""Paired statistics over seeds: pure functions of result tables, tested against values worked by hand.

A study's seed means the same randomness in every configuration (the engine's common random numbers:
the same initial weights, image order and base crops), so two configurations are compared on the seeds
they share, seed by seed: d_s = metric(A, s) - metric(B, s). From those differences:
- the mean difference and its 95 % interval, Student's t on the paired differences,
  mean +- t(0.975, n - 1) * sd / sqrt(n); with n shared seeds the interval is that wide, and with one
  seed there is none;
- the probability of improvement P(A > B): the share of shared seeds on which A beat B (a tie counts
  one half), as rliable defines it for paired runs;
- a two-sided p-value of the same t-test, and where one configuration is compared against many, the
  p-values corrected for multiple comparisons by Holm's step-down method.
A comparison is decided when its (corrected) p-value is under 0.05: "above" (A better) or "below";
otherwise it is "undecided", with an estimate of the shared seeds that would decide it if the observed
mean and SD held.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # two-sided: intervals at 95 %, decisions at p < 0.05 (after Holm where several)
MAX_SEEDS_NEEDED = 1000  # above this, a difference is too small to decide by adding seeds


@dataclass(frozen=True)
class Comparison:
    better: str  # the configuration hoped to be better (A)
    worse: str  # the one it is compared against (B)
    n: int  # seeds the two share
    mean: float  # mean of A - B over the shared seeds
    sd: float  # sample SD of the differences (NaN for n < 2)
    low: float  # 95 % interval of the mean difference (NaN for n < 2)
    high: float
    p_improvement: float  # share of shared seeds where A > B, ties one half
    p_value: float  # two-sided paired t-test (NaN for n < 2)
    p_corrected: float  # after Holm over the comparisons judged together (= p_value alone)
    decision: str  # "above" | "below" | "undecided"
    seeds_needed: int | None  # shared seeds that would decide it at the observed mean and SD; None if decided

    @property
    def decided(self) -> bool:
        return self.decision != "undecided"


def paired_differences(runs: pd.DataFrame, better: str, worse: str, *, metric: str = "probe_h",
                       config: str = "config", seed: str = "seed") -> pd.Series:
    """metric(better, s) - metric(worse, s) for every seed s both have a value for, indexed by seed.
    A configuration with several runs of one seed (should not happen) has them averaged."""
    def by_seed(name: str) -> pd.Series:
        rows = runs[(runs[config] == name) & runs[metric].notna()]
        return rows.groupby(seed)[metric].mean()

    a, b = by_seed(better), by_seed(worse)
    shared = a.index.intersection(b.index)
    return (a[shared] - b[shared]).sort_index()


def compare(differences: Sequence[float] | pd.Series, better: str = "A", worse: str = "B") -> Comparison:
    """The paired comparison of A against B from their per-seed differences A - B."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    p_improvement = float(((d > 0).sum() + 0.5 * (d == 0).sum()) / n) if n else math.nan
    if n < 2:
        sd = low = high = p_value = math.nan
    else:
        sd = float(d.std(ddof=1))
        half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        if sd == 0:  # every seed gave the same difference: certain up to the seeds run
            p_value = 0.0 if mean != 0 else 1.0
        else:
            p_value = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return _decide(Comparison(better, worse, n, mean, sd, low, high, p_improvement, p_value, p_value,
                              "undecided", None))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: sort the m p-values, multiply the i-th smallest (from 0) by m - i,
    keep the running maximum, cap at 1. NaN (no test possible) stays NaN and does not count in m."""
    values = [float(p) for p in p_values]
    tested = sorted((p, index) for index, p in enumerate(values) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def corrected(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons judged together, their p-values Holm-corrected and decisions remade."""
    adjusted = holm([c.p_value for c in comparisons])
    m = sum(not math.isnan(c.p_value) for c in comparisons) or 1
    return [_decide(replace(c, p_corrected=p), m) for c, p in zip(comparisons, adjusted)]


def seeds_needed(mean: float, sd: float, m: int = 1) -> int | None:
    """The smallest n for which a paired t-test at the observed mean and SD reaches p < 0.05/m (Holm's
    strictest step for m comparisons); None if it cannot be estimated (fewer than 2 seeds) or exceeds
    MAX_SEEDS_NEEDED (a difference too small for seeds to decide)."""
    if math.isnan(sd) or math.isnan(mean) or mean == 0:
        return None
    if sd == 0:
        return 2
    alpha = (1 - LEVEL) / m
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        if stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) < abs(mean):
            return n
    return None


def _decide(comparison: Comparison, m: int = 1) -> Comparison:
    """Decision from the corrected p-value; an undecided comparison gets the seeds that would pass
    Holm's strictest step among m comparisons (a conservative estimate)."""
    p = comparison.p_corrected
    if not math.isnan(p) and p < 1 - LEVEL:
        return replace(comparison, decision="above" if comparison.mean > 0 else "below", seeds_needed=None)
    return replace(comparison, decision="undecided", seeds_needed=seeds_needed(comparison.mean, comparison.sd, m))


def table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row per comparison, the columns documented in reports/README.md (`comparisons.parquet`)."""
    rows = [{
        "better": c.better, "worse": c.worse, "n": c.n, "mean_diff": c.mean, "sd_diff": c.sd,
        "ci_low": c.low, "ci_high": c.high, "p_improvement": c.p_improvement, "p_value": c.p_value,
        "p_holm": c.p_corrected, "decision": c.decision,
        "seeds_needed": pd.NA if c.seeds_needed is None else c.seeds_needed,
    } for c in comparisons]
    frame = pd.DataFrame(rows, columns=["better", "worse", "n", "mean_diff", "sd_diff", "ci_low", "ci_high",
                                        "p_improvement", "p_value", "p_holm", "decision", "seeds_needed"])
    return frame.astype({"n": "int64", "seeds_needed": "Int64"})
