"""Study-wide inference: a study's runs as a randomized complete block design with one variance per cell,
moderated towards the study's, and the rule's contrasts judged together with simultaneous intervals.

Why not one paired t-test per comparison: with 3 seeds each has 2 degrees of freedom, and after a
multiplicity correction over 47 comparisons (aug_pairs) even a 14-point gap with a 1-point spread stays
open. The study knows more than each pair does: every configuration ran on the same seeds, and its
cells' variances say how noisy a cell of this study is. Why not one pooled variance: cells differ (a
pair grid's SDs run from 0.3 to 1.2 points), and a pool hides a noisy cell's noise in every contrast
that touches it.

The method, for a metric (probe_h) over the trained runs of a study (the untrained floor left out):
1. Model. y(cell, seed) = mu(cell) + b(seed) + e, e ~ N(0, sigma_cell^2): cells are the study's
   configurations, seeds are blocks (one seed is the same initial weights, image order and op draws in
   every cell). The means by least squares (unbalanced studies, e.g. cells given an
   extra seed by confirmation, are fitted as they are).
2. Variances, moderated (empirical Bayes; Smyth 2004, "Linear models and empirical Bayes methods for
   assessing differential expression", limma's squeezeVar). Each cell's own residual variance
   s_c^2 = SS_c / d_c, where d_c is the sum over its runs of 1 - leverage (so the d_c add up to the
   residual degrees of freedom: about (seeds - 1)(cells - 1) / cells each in a balanced study). A scaled
   inverse chi-square prior (d0, s0^2) is fitted to the cells' s_c^2 by moments on the log scale
   (limma's fitFDist); each cell's variance is then the posterior (d0 s0^2 + d_c s_c^2) / (d0 + d_c) on
   d0 + d_c degrees of freedom (at most the residual df). Cells alike: d0 is large and every cell gets
   the pool; cells unlike: d0 is small and each keeps mostly its own. One formula weighs a cell's own
   evidence against the study's; no test switches a cell or a pair from one basis to another.
3. Contrasts. A rule names linear contrasts of cell means (crop->color - crop->sobel; a difference of
   differences for "the gap grows"). Each has its estimate L'b, its variance L'A diag(v) A'L (A the
   least-squares map (X'X)^-1 X', v each run's cell variance from 2; for a balanced study this is
   sum_c w_c^2 v_c / n), and Welch-Satterthwaite degrees of freedom over the cells' variances. The
   per-seed values of a contrast (its paired view) are kept beside it as information. A contrast between
   two metrics of one cell (probe_h - probe_z) has no model and is judged on its own per-seed values.
4. Multiplicity. The rule's contrasts are one family at 95 %: simultaneous intervals estimate +- c * SE,
   c the 95 % quantile of max |T_j| for T ~ t(R, df), R the contrasts' correlation from 3, df the
   smallest of theirs (the single-step max-t method of Hothorn, Bretz & Westfall 2008, "Simultaneous
   inference in general parametric models"; Dunnett's 1955 test for many-to-one). The quantile and each
   contrast's adjusted p come from the same Monte Carlo draws of T with a fixed seed, so the same data
   give the same decisions on every run, and p < 0.05 exactly when the interval excludes 0. The
   draws' own error is stated: c's 99.9 % order-statistic interval; a contrast whose |t| falls inside
   it is "at the edge" and not decided. Contrasts on their own values take Bonferroni's share (the
   modelled set is tested at alpha * m_model / m, each own contrast at alpha / m).
5. No decision on fewer than MIN_SEEDS seeds: a contrast with a cell of fewer seeds (or fewer shared
   seeds, on its own values) is "too few seeds", whatever its p.
6. Checks, reported beside (`model_checks`): residual SD per cell, Bartlett's and Levene's (median)
   tests of equal variance over cells, the rank correlation of cell SD with cell mean, and Tukey's
   one-degree-of-freedom test for non-additivity of cell and seed.
The method's family-wise error under nulls shaped like the shipped studies, and its power, are measured
by `benchmarks/calibration.py` (figures in benchmarks/RESULTS.md; a fast version is a test).

`best_candidates` gives Hsu's multiple comparisons with the best (Hsu 1996, "Multiple Comparisons",
ch. 4): the cells whose mean could still be the largest.
"""


from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ablations.stats.block_model import BlockModel, SeedTable, fit_blocks
from ablations.stats.contrasts import Contrast
from ablations.stats.paired import Comparison, compare, probability_of_improvement

LEVEL = 0.95
MIN_SEEDS = 3  # never decide on fewer seeds per side
# Monte Carlo draws of the family's max |T| and their seed: the same data give the same critical value
# and p on every run (200,000 draws put c within about +-0.03 of its exact value at 99.9 %).
DRAWS = 200_000
_DRAW_SEED = 20261207
_EDGE_Z = 3.29  # the critical value's order-statistic interval, two-sided 99.9 %

DECIDED = ("above", "below")
DECISIONS = ("above", "below", "undecided", "at the edge", "too few seeds")


@dataclass(frozen=True)
class Estimate:
    """A contrast judged within its family."""

    contrast: Contrast
    estimate: float  # model estimate (moderated) or mean of the per-seed values (own)
    se: float
    df: float
    basis: str  # "moderated" (the block model with moderated cell variances) | "own" (no model: two metrics)
    n: int  # seeds: the fewest any of its cells has (moderated) or the shared seeds (own)
    low: float  # simultaneous 95 % interval
    high: float
    critical: float  # c: the interval is estimate +- c * se
    critical_low: float  # c's 99.9 % Monte Carlo interval (equal to c where c is exact)
    critical_high: float
    p_adjusted: float  # family-wise
    p_bound: bool  # p_adjusted is an upper bound (no draw reached |t|)
    decision: str  # one of DECISIONS
    own_sd: float  # SD of the per-seed values (NaN under 2 seeds)
    implied_sd: float  # the SD the model implies for them (NaN with no model)
    per_seed: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # seed -> value
    seeds_needed: int | None = None  # seeds per cell at which, if this estimate and SD held, it would be decided

    @property
    def decided(self) -> bool:
        return self.decision in DECIDED

    @property
    def t(self) -> float:
        """|estimate| / SE: what the critical value is held against."""
        return abs(self.estimate) / self.se if self.se > 0 else math.inf

    @property
    def p_improvement(self) -> float:
        """The share of seeds on which the contrast was above 0 (ties half): P(better > worse) for a pair."""
        return probability_of_improvement(self.per_seed)

    @cached_property
    def paired(self) -> Comparison:
        """The per-seed view of this contrast alone (`ablations.stats.paired`), beside the family's judgement."""
        return compare(self.per_seed.to_numpy())

    @property
    def margin_relation(self) -> str:
        """Where the paper's value of this contrast lies against the interval: "includes", "excludes
        (below the paper)" (the interval ends under the paper's margin), "excludes (above the paper)",
        or "no paper figure". For a bound ("at least"), the interval excludes it only from below, and
        "includes" means the interval reaches the bound's side."""
        margin = self.contrast.margin
        if margin is None or math.isnan(self.low):
            return "no paper figure" if margin is None else "no interval"
        if self.high < margin:
            return "excludes (below the paper)"
        if self.contrast.margin_kind == "value" and self.low > margin:
            return "excludes (above the paper)"
        return "includes"


@dataclass(frozen=True)
class MaxT:
    """Monte Carlo draws of max_j |T_j| (or max_j T_j, one-sided) for T ~ multivariate t(correlation, df),
    sorted, from a fixed seed."""

    draws: np.ndarray

    @classmethod
    def of(cls, correlation: np.ndarray, df: float, two_sided: bool = True, draws: int | None = None) -> "MaxT":
        m = len(correlation)
        size = draws or DRAWS
        rng = np.random.default_rng(_DRAW_SEED)
        values, vectors = np.linalg.eigh(correlation)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))  # singular correlations (dependent contrasts) too
        z = rng.standard_normal((size, m)) @ root.T
        scale = np.sqrt(rng.chisquare(df, size) / df) if math.isfinite(df) else np.ones(size)
        statistic = (np.abs(z) if two_sided else z).max(axis=1) / scale
        return cls(np.sort(statistic))

    def quantile(self, level: float) -> tuple[float, float, float]:
        """The level-quantile and its 99.9 % distribution-free interval (order statistics)."""
        n = len(self.draws)
        k = min(n - 1, max(0, math.ceil(level * n) - 1))
        spread = math.ceil(_EDGE_Z * math.sqrt(n * level * (1 - level)))
        return (float(self.draws[k]), float(self.draws[max(0, k - spread)]),
                float(self.draws[min(n - 1, k + spread)]))

    def p(self, statistic: float) -> tuple[float, bool]:
        """P(max >= statistic) from the draws; the flag True where no draw reached it (the value is then
        the bound 1 / (draws + 1))."""
        n = len(self.draws)
        beyond = n - int(np.searchsorted(self.draws, statistic, side="left"))
        return (max(beyond, 1) / (n + (beyond == 0))), beyond == 0


def judge(runs: pd.DataFrame, contrasts: Sequence[Contrast], *, metric: str = "probe_h",
          model: BlockModel | None = None, level: float = LEVEL, draws: int | None = None) -> list[Estimate]:
    """The contrasts judged together as one family (see the module's method), in their order.
    `runs`: one row per trained run with `cell`, `seed` and the metrics."""
    model = model or fit_blocks(runs, metric)
    alpha, m = 1 - level, len(contrasts)
    if m == 0:
        return []
    seeds = SeedTable(runs)
    first = [_first_look(seeds, contrast, model) for contrast in contrasts]
    modelled = [i for i, e in enumerate(first) if e.basis == "moderated"]
    judged = list(first)
    if modelled:
        covariance = model.covariance_matrix([contrasts[i] for i in modelled])
        sd = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(sd, sd)
        df = min(first[i].df for i in modelled)  # the least-known contrast sets the family's t
        share = len(modelled) / m  # the modelled set's share of alpha
        if len(modelled) == 1:  # one contrast: Student's t, exact
            c = float(stats.t.ppf(1 - alpha * share / 2, df))
            c_low = c_high = c
            distribution = None
        else:
            distribution = MaxT.of(correlation, df, draws=draws)
            c, c_low, c_high = distribution.quantile(1 - alpha * share)
        for i in modelled:
            e = first[i]
            if distribution is None:
                p, bound = float(2 * stats.t.sf(e.t, df)), False
            else:
                p, bound = distribution.p(e.t)
            judged[i] = _decide(replace(e, low=e.estimate - c * e.se, high=e.estimate + c * e.se, critical=c,
                                        critical_low=c_low, critical_high=c_high,
                                        p_adjusted=min(1.0, p / share), p_bound=bound))
    for i in range(m):
        if i in modelled:
            continue
        judged[i] = _bonferroni(first[i], alpha, m)
    return judged


def _bonferroni(e: Estimate, alpha: float, family: int) -> Estimate:
    """`e` judged alone at Bonferroni's share of a family of `family` contrasts (two-sided alpha / family)."""
    if e.n < 2 or not math.isfinite(e.se) or e.df <= 0:
        return replace(e, decision="too few seeds" if e.n < MIN_SEEDS else "undecided")
    c = float(stats.t.ppf(1 - alpha / (2 * family), e.df))
    raw = 0.0 if e.se == 0 else float(2 * stats.t.sf(abs(e.estimate) / e.se, e.df))
    return _decide(replace(e, low=e.estimate - c * e.se, high=e.estimate + c * e.se, critical=c, critical_low=c,
                           critical_high=c, p_adjusted=min(1.0, raw * family), p_bound=False))


def judge_within(runs: pd.DataFrame, contrasts: Sequence[Contrast], family: int, *, metric: str = "probe_h",
                 model: BlockModel | None = None, level: float = LEVEL) -> list[Estimate]:
    """The contrasts judged as part of a larger family of `family` contrasts, each at Bonferroni's share
    (alpha / family, two-sided), on the same model and variances as `judge`. For contrasts the data chose
    (each cell against the one whose mean came out highest) the family must be every contrast they were
    chosen from, every pair: a family of only the k - 1 chosen ones would not cover the choice (under a null
    of 13 equal cells, max-t over those k - 1 found a difference in 16 % of 200 simulated studies, this in 2 %;
    tests/test_report_differences.py)."""
    model = model or fit_blocks(runs, metric)
    seeds = SeedTable(runs)
    return [_bonferroni(_first_look(seeds, contrast, model), 1 - level, family) for contrast in contrasts]


def _first_look(seeds: SeedTable, contrast: Contrast, model: BlockModel, paired_view: bool = True) -> Estimate:
    """The contrast's estimate, SE and df before the family is judged: the model's where it covers the
    contrast, else the contrast's own per-seed values (a paired t). paired_view=False: without the
    per-seed values where the model covers the contrast (MCB's many looks need only the model's)."""
    values = seeds.values(contrast) if paired_view or not model.covers(contrast) else pd.Series(dtype=float)
    n_shared = len(values)
    own_sd = float(values.std(ddof=1)) if n_shared >= 2 else math.nan
    empty = dict(low=math.nan, high=math.nan, critical=math.nan, critical_low=math.nan, critical_high=math.nan,
                 p_adjusted=math.nan, p_bound=False, decision="undecided", per_seed=values)
    if model.covers(contrast) and model.df > 0:
        estimate = float(model.contrast_vector(contrast) @ model.coefficients)
        variance, df = model.variance(contrast)
        n = min(model.seeds_per_cell.get(cell, 0) for cell in contrast.cells)
        return Estimate(contrast, estimate, math.sqrt(variance), df, "moderated", n, own_sd=own_sd,
                        implied_sd=math.sqrt(model.per_seed_variance(contrast)), **empty)
    mean = float(values.mean()) if n_shared else math.nan
    se = own_sd / math.sqrt(n_shared) if n_shared >= 2 else math.nan
    return Estimate(contrast, mean, se, max(n_shared - 1, 0), "own", n_shared, own_sd=own_sd, implied_sd=math.nan,
                    **empty)


def _decide(e: Estimate) -> Estimate:
    if e.n < MIN_SEEDS:
        return replace(e, decision="too few seeds", seeds_needed=None)
    if e.critical_low <= e.t <= e.critical_high and e.critical_low < e.critical_high:
        return replace(e, decision="at the edge", seeds_needed=seeds_needed(e, e.critical))
    if e.low > 0:
        return replace(e, decision="above", seeds_needed=None)
    if e.high < 0:
        return replace(e, decision="below", seeds_needed=None)
    return replace(e, decision="undecided", seeds_needed=seeds_needed(e, e.critical))


def seeds_needed(e: Estimate, critical: float, limit: int = 1000) -> int | None:
    """Seeds per cell at which the interval would exclude 0 if the estimate and the per-seed SD held
    (SE shrinking as 1/sqrt(n), the critical value held at today's); None above `limit` or for a zero
    estimate. A planning figure, no more: the estimate itself is uncertain."""
    if not (math.isfinite(e.se) and e.se > 0 and e.estimate != 0 and e.n >= 1):
        return None
    # The interval excludes 0 only when n is strictly above n * (c * SE / estimate)^2; where that is a whole
    # number, ceil alone would give the n at which the interval just touches 0: the 1e-4 nudge takes the next.
    needed = math.ceil(e.n * (critical * e.se / abs(e.estimate)) ** 2 * 1.0001)
    return needed if needed <= limit else None


# --------------------------------------------------------------------------------------------------
# Hsu's multiple comparisons with the best


def best_candidates(runs: pd.DataFrame, model: BlockModel, level: float = LEVEL) -> list[str]:
    """The cells that could still have the largest mean (Hsu's MCB, constrained intervals): cell i stays
    when, against every other cell j, mean_i - mean_j + d_i * SE_ij > 0, where d_i is the one-sided
    many-to-one (Dunnett) critical value with i as the control, on the same moderated variances as
    `judge`. Ordered by mean, largest first."""
    cells = model.cells
    means = model.relative_means()
    ordered = sorted(cells, key=lambda c: -means[c])
    k = len(cells)
    if k < 2:
        return ordered
    alpha = 1 - level
    seeds = SeedTable(runs)
    candidates = []
    for i in ordered:
        looks = [_first_look(seeds, Contrast.pair(i, j, ""), model, paired_view=False) for j in cells if j != i]
        # Below some cell even at Bonferroni's (looser) one-sided bound: not best, without the exact d.
        if any(e.estimate + float(stats.t.ppf(1 - alpha / (k - 1), e.df)) * e.se <= 0 for e in looks):
            continue
        covariance = model.covariance_matrix([e.contrast for e in looks])
        sd = np.sqrt(np.diag(covariance))
        df = min(e.df for e in looks)
        d = (float(stats.t.ppf(level, df)) if len(looks) == 1 else
             MaxT.of(covariance / np.outer(sd, sd), df, two_sided=False).quantile(level)[0])
        if all(e.estimate + d * e.se > 0 for e in looks):
            candidates.append(i)
    return candidates
