"""Study-wide inference: a study's runs as a randomized complete block design, the rule's contrasts
judged together with simultaneous intervals, and a guard that keeps the pool from hiding a noisy pair.

Why not one paired t-test per comparison: with 3 seeds each has 2 degrees of freedom, and after a
multiplicity correction over 47 comparisons (aug_pairs) even a 14-point gap with a 1-point spread stays
open. The study knows more than each pair does: every configuration ran on the same seeds.

The method, for a metric (probe_h) over the trained runs of a study (the untrained floor left out):
1. Model. y(cell, seed) = mu(cell) + b(seed) + e, e ~ N(0, sigma^2): cells are the study's
   configurations, seeds are blocks (one seed is the same initial weights, image order and op draws in
   every cell). Fitted by least squares (statsmodels OLS; unbalanced studies, e.g. cells given an extra
   seed by confirmation, are fitted as they are). sigma is pooled over every cell of the study, with
   n - cells - seeds + 1 degrees of freedom (aug_pairs: 95 against 2 for one pair).
2. Contrasts. A rule names linear contrasts of cell means (crop->color - crop->sobel; a difference of
   differences for "the gap grows"); each has an estimate, a standard error from the model, and the
   per-seed values it takes on the seeds where all its cells ran.
3. The guards. A cell whose own variance (of its seed-adjusted values, n - 1 df) exceeds the pool's at
   p < 0.05 (F-test, one-sided) keeps it: every contrast that involves the cell uses it, its degrees of
   freedom combined with the pool's by Welch-Satterthwaite. Then a contrast's own per-seed variance is
   compared with the variance the model implies for it: F = own / implied on (n - 1, model df). Where
   they differ at p < 0.05 (two-sided), the model does not describe this pair: noisier, the pool would
   understate its noise; steadier, the pair shares its randomness more than the study's cells do (as
   two heads trained on the same views). The contrast is then judged on its own per-seed values: mean,
   SD / sqrt(n), Student t with n - 1 degrees of freedom (a paired t-test). A contrast between two
   metrics of one cell (probe_h - probe_z) has no pool and is always judged on its own values.
4. Multiplicity. The rule's contrasts are one family at 95 %. Those on the pool share one
   multivariate t: simultaneous intervals estimate +- c * SE, where c is the 95 % quantile of
   max |T_j| for T ~ t(R, df), R the contrasts' correlation under the model (the single-step max-t
   method of Hothorn, Bretz & Westfall 2008, "Simultaneous inference in general parametric models";
   for many-to-one contrasts it is Dunnett's 1955 test; scipy.stats.multivariate_t gives the
   distribution). Contrasts on their own values get Bonferroni's share: the pooled set is tested at
   alpha * m_pooled / m, each own contrast at alpha / m (so the family's error stays at most alpha).
   A contrast is decided where its simultaneous interval excludes 0: "above" or "below"; the adjusted
   p-value agrees with the interval by construction.
5. No decision on fewer than MIN_SEEDS seeds: a contrast with a cell of fewer seeds (or fewer shared
   seeds, on its own values) is "too few seeds", whatever its p.
6. Checks, reported beside (`model_checks`): residual SD per cell, Bartlett's and Levene's (median)
   tests of equal variance over cells, the rank correlation of cell SD with cell mean, and Tukey's
   one-degree-of-freedom test for non-additivity of cell and seed.

`best_candidates` gives Hsu's multiple comparisons with the best (Hsu 1996, "Multiple Comparisons",
ch. 4): the cells whose mean could still be the largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats

from ablations.paired import probability_of_improvement

LEVEL = 0.95
MIN_SEEDS = 3  # never decide on fewer seeds per side
NOISY_P = 0.05  # the guards' F-test level (cells: one-sided; pairs: two-sided)
# Random state for scipy's quasi-Monte Carlo multivariate t integration, so a report is reproducible.
_QMC_SEED = 20261206
# Past this Bonferroni bound an adjusted p is printed as the bound: the exact value would cost a
# high-dimensional integral and change no decision.
_EXACT_P_ABOVE = 1e-3

DECIDED = ("above", "below")


@dataclass(frozen=True)
class Term:
    cell: str
    weight: float
    metric: str = "probe_h"


@dataclass(frozen=True)
class Contrast:
    """A linear combination of cell means the rule asks about, e.g. crop->color - crop->sobel."""

    name: str  # how tables name it: `crop+color − crop+sobel`
    terms: tuple[Term, ...]
    margin: float | None = None  # the paper's value of the same contrast, in accuracy units (0.103); None: no figure
    better: str = ""  # for pairwise contrasts, the cell hoped to be larger (tables, confirmation)
    worse: str = ""

    @classmethod
    def pair(cls, better: str, worse: str, name: str, margin: float | None = None, metric: str = "probe_h") -> "Contrast":
        return cls(name, (Term(better, 1.0, metric), Term(worse, -1.0, metric)), margin, better, worse)

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(term.cell for term in self.terms))


@dataclass(frozen=True)
class Estimate:
    """A contrast judged within its family."""

    contrast: Contrast
    estimate: float  # model estimate (pooled) or mean of the per-seed values (own)
    se: float
    df: float
    basis: str  # "pooled" | "own" (the guard, or a contrast with no pool)
    n: int  # seeds: the fewest any of its cells has (pooled) or the shared seeds (own)
    low: float  # simultaneous 95 % interval
    high: float
    critical: float  # c: the interval is estimate +- c * se
    p_adjusted: float  # family-wise; an upper bound where marked by p_bound
    p_bound: bool
    decision: str  # "above" | "below" | "undecided" | "too few seeds"
    own_sd: float  # SD of the per-seed values (NaN under 2 seeds)
    implied_sd: float  # the SD the pool implies for them (NaN with no pool)
    noisy_p: float  # the pair guard's two-sided F-test p (NaN where not tested)
    per_seed: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # seed -> value
    seeds_needed: int | None = None  # seeds per cell at which, if this estimate and SD held, it would be decided

    @property
    def decided(self) -> bool:
        return self.decision in DECIDED

    @property
    def p_improvement(self) -> float:
        """The share of seeds on which the contrast was above 0 (ties half): P(better > worse) for a pair."""
        return probability_of_improvement(self.per_seed)

    @property
    def margin_relation(self) -> str:
        """Where the paper's value of this contrast lies against the interval: "includes", "excludes
        (below the paper)" (the interval ends under the paper's margin), "excludes (above the paper)",
        or "no paper figure"."""
        margin = self.contrast.margin
        if margin is None or math.isnan(self.low):
            return "no paper figure" if margin is None else "no interval"
        if self.high < margin:
            return "excludes (below the paper)"
        if self.low > margin:
            return "excludes (above the paper)"
        return "includes"


@dataclass(frozen=True)
class BlockModel:
    """y(cell, seed) = mu(cell) + b(seed) + e, fitted to a study's runs of one metric."""

    metric: str
    cells: list[str]
    seeds: list
    coefficients: np.ndarray  # one per cell (relative to the first seed's block), then seed effects
    covariance: np.ndarray  # of `coefficients`
    sigma: float  # pooled residual SD
    df: int  # residual degrees of freedom
    data: pd.DataFrame  # the runs used: cell, seed, the metric, fitted, residual
    seeds_per_cell: dict[str, int]
    # Each cell's own variance of its block-adjusted values (y - seed effect), n - 1 degrees of freedom,
    # and the cells whose own variance exceeds the pool's (the cell guard); their contrasts use it.
    cell_variance: dict[str, float] = field(default_factory=dict)
    noisy_cells: dict[str, float] = field(default_factory=dict)  # cell -> its F-test p

    def variance_terms(self, contrast: Contrast) -> list[tuple[float, float]]:
        """The contrast's variance (of its estimate) as independent parts with their degrees of freedom:
        the pooled cells' share (sigma^2 * sum w^2 / n, model df) and each noisy cell's own
        (s_c^2 * w^2 / n_c, n_c - 1 df)."""
        pooled = 0.0
        parts = []
        for cell in contrast.cells:
            weight = sum(t.weight for t in contrast.terms if t.cell == cell)
            n = self.seeds_per_cell[cell]
            if cell in self.noisy_cells:
                parts.append((weight ** 2 * self.cell_variance[cell] / n, n - 1))
            else:
                pooled += weight ** 2 * self.sigma ** 2 / n
        return ([(pooled, self.df)] if pooled > 0 else []) + parts

    def per_seed_variance(self, contrast: Contrast) -> float:
        """The variance the model implies for the contrast's value on one seed."""
        return sum(sum(t.weight for t in contrast.terms if t.cell == cell) ** 2
                   * (self.cell_variance[cell] if cell in self.noisy_cells else self.sigma ** 2)
                   for cell in contrast.cells)

    def contrast_vector(self, contrast: Contrast) -> np.ndarray:
        vector = np.zeros(len(self.coefficients))
        for term in contrast.terms:
            vector[self.cells.index(term.cell)] += term.weight
        return vector

    def covers(self, contrast: Contrast) -> bool:
        """Whether the model can judge `contrast`: every term on its metric and cells, weights summing to
        zero (a contrast of cells, free of the block effects)."""
        return (all(term.metric == self.metric and term.cell in self.cells for term in contrast.terms)
                and abs(sum(term.weight for term in contrast.terms)) < 1e-12)


def fit_blocks(runs: pd.DataFrame, metric: str = "probe_h", cell: str = "cell", block: str | None = "seed") -> BlockModel:
    """Least squares fit of cell + block to the runs that have `metric` (block=None: a one-way model,
    cells only, as for independent samples)."""
    data = runs.dropna(subset=[metric])[[cell, metric] + ([block] if block else [])].copy()
    data = data.rename(columns={cell: "cell", metric: "y", **({block: "seed"} if block else {})})
    if not block:
        data["seed"] = 0
    cells = list(dict.fromkeys(data["cell"]))
    seeds = sorted(data["seed"].unique())
    cell_dummies = pd.get_dummies(pd.Categorical(data["cell"], categories=cells), dtype=float)
    design = cell_dummies
    if block and len(seeds) > 1:
        seed_dummies = pd.get_dummies(pd.Categorical(data["seed"], categories=seeds), dtype=float).iloc[:, 1:]
        design = pd.concat([cell_dummies, seed_dummies], axis=1)
    design.index = data.index
    fit = sm.OLS(data["y"].to_numpy(), design.to_numpy()).fit()
    data["fitted"], data["residual"] = fit.fittedvalues, fit.resid
    df = int(round(fit.df_resid))
    sigma = math.sqrt(fit.scale) if df > 0 else math.nan
    params = np.asarray(fit.params)
    seed_effect = dict(zip(seeds, [0.0] + list(params[len(cells):]))) if design.shape[1] > len(cells) else {}
    adjusted = data["y"] - data["seed"].map(seed_effect).fillna(0.0)
    cell_variance = adjusted.groupby(data["cell"]).var(ddof=1).dropna().to_dict()
    # Seeds per cell; runs per cell where there are no blocks (independent samples).
    counts = (data.groupby("cell")["seed"].nunique() if block else data.groupby("cell").size()).to_dict()
    noisy = {}
    if df > 0 and sigma > 0:
        for name, variance in cell_variance.items():
            p = float(stats.f.sf(variance / sigma ** 2, counts[name] - 1, df))
            if p < NOISY_P:
                noisy[name] = p
    covariance = np.asarray(fit.cov_params()) if df > 0 else np.full((design.shape[1],) * 2, np.nan)
    quiet = data[~data["cell"].isin(noisy)]
    if noisy and quiet["cell"].nunique() >= 2:
        # The pool without the noisy cells (they carry their own variance now): otherwise it would
        # overstate every other cell's noise. Refitted on the quiet cells alone; the means stay the
        # full fit's, their covariance rescaled to the quiet pool.
        rest = fit_blocks(runs[~runs[cell].isin(noisy)], metric, cell, block)
        if rest.df > 0:
            covariance = covariance * (rest.sigma / sigma) ** 2
            sigma, df = rest.sigma, rest.df
    return BlockModel(metric, cells, list(seeds), params, covariance, sigma, df, data, counts, cell_variance, noisy)


def per_seed_values(runs: pd.DataFrame, contrast: Contrast, cell: str = "cell", seed: str = "seed") -> pd.Series:
    """The contrast's value on every seed where all its terms have a result, indexed by seed (none for
    runs without seeds: independent samples)."""
    if seed not in runs.columns:
        return pd.Series(dtype=float)
    columns = []
    for term in contrast.terms:
        rows = runs[(runs[cell] == term.cell) & runs[term.metric].notna()]
        columns.append(rows.groupby(seed)[term.metric].mean() * term.weight)
    if not columns:
        return pd.Series(dtype=float)
    frame = pd.concat(columns, axis=1, join="inner")
    return frame.sum(axis=1).sort_index()


def max_t_critical(correlation: np.ndarray, df: float, level: float = LEVEL) -> float:
    """c with P(max_j |T_j| <= c) = level for T ~ multivariate t(correlation, df); Student's t quantile
    for one contrast; Bonferroni's bound where the correlation is singular (dependent contrasts)."""
    m = len(correlation)
    single = stats.t.ppf(0.5 + level / 2, df)
    if m == 1:
        return float(single)
    bonferroni = float(stats.t.ppf(1 - (1 - level) / (2 * m), df))
    if np.linalg.matrix_rank(correlation) < m:
        return bonferroni
    distribution = stats.multivariate_t(shape=correlation, df=df)

    def coverage(c: float) -> float:
        return distribution.cdf(np.full(m, c), lower_limit=np.full(m, -c), random_state=_QMC_SEED) - level

    return float(optimize.brentq(coverage, single, bonferroni + 1e-9, xtol=1e-4))


def max_t_p(t_value: float, correlation: np.ndarray, df: float) -> tuple[float, bool]:
    """P(max_j |T_j| >= |t|): the single-step adjusted p of one contrast in the family; with the flag
    True when the Bonferroni bound is returned instead (it is below _EXACT_P_ABOVE)."""
    m = len(correlation)
    raw = float(2 * stats.t.sf(abs(t_value), df))
    if m == 1:
        return raw, False
    bound = min(1.0, m * raw)
    if bound < _EXACT_P_ABOVE or np.linalg.matrix_rank(correlation) < m:
        return bound, bound < _EXACT_P_ABOVE
    c = abs(t_value)
    inside = stats.multivariate_t(shape=correlation, df=df).cdf(
        np.full(m, c), lower_limit=np.full(m, -c), random_state=_QMC_SEED)
    return float(min(1.0, max(0.0, 1.0 - inside))), False


def judge(runs: pd.DataFrame, contrasts: Sequence[Contrast], *, metric: str = "probe_h",
          model: BlockModel | None = None, level: float = LEVEL) -> list[Estimate]:
    """The contrasts judged together as one family (see the module's method), in their order.
    `runs`: one row per trained run with `cell`, `seed` and the metrics."""
    model = model or fit_blocks(runs, metric)
    alpha, m = 1 - level, len(contrasts)
    if m == 0:
        return []
    first = [_first_look(runs, contrast, model) for contrast in contrasts]
    pooled = [i for i, e in enumerate(first) if e.basis == "pooled"]
    own = [i for i in range(m) if i not in pooled]
    judged = list(first)
    if pooled:
        covariance = np.array([[_covariance(model, contrasts[i], contrasts[j]) for j in pooled] for i in pooled])
        sd = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(sd, sd)
        df = min(first[i].df for i in pooled)  # the least-known contrast sets the family's t
        share = len(pooled) / m  # the pooled set's share of alpha
        c = max_t_critical(correlation, df, 1 - alpha * share)
        for i in pooled:
            e = first[i]
            p, bound = max_t_p(e.estimate / e.se, correlation, df) if e.se > 0 else (0.0, False)
            judged[i] = _decide(replace(e, low=e.estimate - c * e.se, high=e.estimate + c * e.se, critical=c,
                                        p_adjusted=min(1.0, p / share), p_bound=bound), alpha, c)
    for i in own:
        e = first[i]
        if e.n < 2 or not math.isfinite(e.se):
            judged[i] = replace(e, decision="too few seeds" if e.n < MIN_SEEDS else "undecided")
            continue
        c = float(stats.t.ppf(1 - alpha / (2 * m), e.df))
        raw = 0.0 if e.se == 0 else float(2 * stats.t.sf(abs(e.estimate) / e.se, e.df))
        judged[i] = _decide(replace(e, low=e.estimate - c * e.se, high=e.estimate + c * e.se, critical=c,
                                    p_adjusted=min(1.0, raw * m), p_bound=False), alpha, c)
    return judged


def _first_look(runs: pd.DataFrame, contrast: Contrast, model: BlockModel) -> Estimate:
    """The contrast's estimate and basis before the family is judged: pooled unless the guard (or the
    absence of a pool) sends it to its own per-seed values."""
    values = per_seed_values(runs, contrast)
    n_shared = len(values)
    own_sd = float(values.std(ddof=1)) if n_shared >= 2 else math.nan
    empty = dict(low=math.nan, high=math.nan, critical=math.nan, p_adjusted=math.nan, p_bound=False,
                 decision="undecided", per_seed=values)
    if model.covers(contrast) and model.df > 0:
        vector = model.contrast_vector(contrast)
        estimate = float(vector @ model.coefficients)
        terms = model.variance_terms(contrast)
        if any(cell in model.noisy_cells for cell in contrast.cells):
            variance = sum(part for part, _ in terms)
        else:  # the block model's own variance of the estimate (exact for unbalanced studies too)
            variance = float(vector @ model.covariance @ vector)
        se = math.sqrt(variance)
        df = _satterthwaite(terms)
        implied = math.sqrt(model.per_seed_variance(contrast))
        n = min(model.seeds_per_cell.get(cell, 0) for cell in contrast.cells)
        noisy_p = _two_sided_f(own_sd ** 2 / implied ** 2, n_shared - 1, df) if n_shared >= 2 and implied > 0 \
            else math.nan
        if not (noisy_p < NOISY_P):
            return Estimate(contrast, estimate, se, df, "pooled", n, own_sd=own_sd, implied_sd=implied,
                            noisy_p=noisy_p, **empty)
    else:
        implied, noisy_p = math.nan, math.nan
    mean = float(values.mean()) if n_shared else math.nan
    se = own_sd / math.sqrt(n_shared) if n_shared >= 2 else math.nan
    return Estimate(contrast, mean, se, max(n_shared - 1, 0), "own", n_shared, own_sd=own_sd, implied_sd=implied,
                    noisy_p=noisy_p, **empty)


def _two_sided_f(ratio: float, df_own: float, df_model: float) -> float:
    """Two-sided p of an F-test of a contrast's own per-seed variance against the model's: small when the
    pair is noisier than the model says (the pool would hide its noise) or steadier (it shares its
    randomness more than the study's cells do, and its own paired values say more than the pool)."""
    if not math.isfinite(ratio):
        return 0.0
    upper = float(stats.f.sf(ratio, df_own, df_model))
    return min(1.0, 2 * min(upper, 1 - upper))


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates."""
    total = sum(part for part, _ in terms)
    denominator = sum(part ** 2 / df for part, df in terms if df > 0)
    return total ** 2 / denominator if denominator > 0 else math.inf


def _covariance(model: BlockModel, a: Contrast, b: Contrast) -> float:
    """Covariance of two contrasts' estimates: the block model's where neither touches a noisy cell,
    else sum over shared cells of w_a * w_b * variance / n."""
    if not any(cell in model.noisy_cells for cell in a.cells + b.cells):
        return float(model.contrast_vector(a) @ model.covariance @ model.contrast_vector(b))
    total = 0.0
    for cell in set(a.cells) & set(b.cells):
        wa = sum(t.weight for t in a.terms if t.cell == cell)
        wb = sum(t.weight for t in b.terms if t.cell == cell)
        variance = model.cell_variance[cell] if cell in model.noisy_cells else model.sigma ** 2
        total += wa * wb * variance / model.seeds_per_cell[cell]
    return total


def _decide(e: Estimate, alpha: float, critical: float) -> Estimate:
    if e.n < MIN_SEEDS:
        return replace(e, decision="too few seeds", seeds_needed=None)
    if e.low > 0:
        return replace(e, decision="above", seeds_needed=None)
    if e.high < 0:
        return replace(e, decision="below", seeds_needed=None)
    return replace(e, decision="undecided", seeds_needed=seeds_needed(e, critical))


def seeds_needed(e: Estimate, critical: float, limit: int = 1000) -> int | None:
    """Seeds per cell at which the interval would exclude 0 if the estimate and the per-seed SD held
    (SE shrinking as 1/sqrt(n), the critical value held at today's); None above `limit` or for a zero
    estimate. A planning figure, no more: the estimate itself is uncertain."""
    if not (math.isfinite(e.se) and e.se > 0 and e.estimate != 0 and e.n >= 1):
        return None
    needed = math.ceil(e.n * (critical * e.se / abs(e.estimate)) ** 2)
    return needed if needed <= limit else None


# --------------------------------------------------------------------------------------------------
# Hsu's multiple comparisons with the best


def best_candidates(runs: pd.DataFrame, model: BlockModel, level: float = LEVEL) -> list[str]:
    """The cells that could still have the largest mean (Hsu's MCB, constrained intervals): cell i stays
    when, against every other cell j, mean_i - mean_j + d_i * SE_ij > 0, where d_i is the one-sided
    many-to-one (Dunnett) critical value with i as the control, on the same variances as `judge` (the
    cell guard included); a pair the pair guard sends to its own values uses them with Bonferroni's
    one-sided t. Ordered by mean, largest first."""
    cells = model.cells
    means = {c: float(model.contrast_vector(Contrast.pair(c, cells[0], "")) @ model.coefficients) for c in cells}
    ordered = sorted(cells, key=lambda c: -means[c])
    k = len(cells)
    if k < 2:
        return ordered
    alpha = 1 - level
    candidates = []
    for i in ordered:
        looks = [_first_look(runs, Contrast.pair(i, j, ""), model) for j in cells if j != i]
        # Below some cell even at Bonferroni's (looser) one-sided bound: not best, without the exact d.
        if any(e.estimate + float(stats.t.ppf(1 - alpha / (k - 1), e.df)) * e.se <= 0 for e in looks):
            continue
        pooled = [e for e in looks if e.basis == "pooled"]
        d = 0.0
        if pooled:
            covariance = np.array([[_covariance(model, a.contrast, b.contrast) for b in pooled] for a in pooled])
            sd = np.sqrt(np.diag(covariance))
            d = _one_sided_critical(covariance / np.outer(sd, sd), min(e.df for e in pooled), level)
        if all(e.estimate + (d if e.basis == "pooled" else float(stats.t.ppf(1 - alpha / (k - 1), e.df))) * e.se > 0
               for e in looks):
            candidates.append(i)
    return candidates


def _one_sided_critical(correlation: np.ndarray, df: float, level: float) -> float:
    """d with P(max_j T_j <= d) = level (one-sided many-to-one)."""
    m = len(correlation)
    if m == 1:
        return float(stats.t.ppf(level, df))
    if np.linalg.matrix_rank(correlation) < m:
        return float(stats.t.ppf(1 - (1 - level) / m, df))
    distribution = stats.multivariate_t(shape=correlation, df=df)

    def coverage(d: float) -> float:
        return distribution.cdf(np.full(m, d), random_state=_QMC_SEED) - level

    return float(optimize.brentq(coverage, float(stats.t.ppf(level, df)),
                                 float(stats.t.ppf(1 - (1 - level) / m, df)) + 1e-9, xtol=1e-4))
