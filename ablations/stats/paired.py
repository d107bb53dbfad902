"""The per-seed view of one comparison: its own paired statistics over seeds, uncorrected, shown beside
the study-wide judgement of `ablations.stats.inference` (which decides), and tested against values worked by hand.

A study's seed means the same randomness in every configuration (common random numbers: the same initial
weights, image order and op draws), so a contrast takes one value per seed, d_s. From those values alone:
- the mean and its 95 % interval, Student's t on the values, mean +- t(0.975, n - 1) * sd / sqrt(n); with
  n seeds the interval is that wide, and with one seed there is none;
- the probability of improvement P(d > 0): the share of seeds on which it was above 0 (a tie counts one
  half), as rliable defines it for paired runs;
- the two-sided p-value of the same t-test, for this comparison alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # two-sided: intervals at 95 %


@dataclass(frozen=True)
class Comparison:
    n: int  # seeds
    mean: float  # mean of the per-seed values
    sd: float  # their sample SD (NaN for n < 2)
    low: float  # 95 % interval of the mean, this comparison alone (NaN for n < 2)
    high: float
    p_improvement: float  # share of seeds above 0, ties one half
    p_value: float  # two-sided one-sample t-test of the mean against 0 (NaN for n < 2)


def probability_of_improvement(values: Sequence[float] | pd.Series) -> float:
    """The share of seeds on which the value was above 0, ties one half (NaN with no seed)."""
    d = np.asarray(values, dtype=float)
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / len(d)) if len(d) else math.nan


def compare(values: Sequence[float] | pd.Series) -> Comparison:
    """The paired view of a contrast from its per-seed values (A - B on each seed)."""
    d = np.asarray(values, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    p_improvement = probability_of_improvement(d)
    if n < 2:
        return Comparison(n, mean, math.nan, math.nan, math.nan, p_improvement, math.nan)
    sd = float(d.std(ddof=1))
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
    if sd == 0:  # every seed gave the same value: certain up to the seeds run
        p_value = 0.0 if mean != 0 else 1.0
    else:
        p_value = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return Comparison(n, mean, sd, mean - half, mean + half, p_improvement, p_value)
