"""The block model of a study's runs, with one variance per cell moderated towards the study's
(`ablations.stats.inference`'s method, steps 1 to 3), and the contrasts a rule asks of it.

y(cell, seed) = mu(cell) + b(seed) + e, e ~ N(0, sigma_cell^2). The means by least squares; each cell's
own residual variance s_c^2 = SS_c / d_c (d_c: the sum over its runs of 1 - leverage, so the d_c add up
to the residual df); a scaled inverse chi-square prior (d0, s0^2) fitted to the cells' variances by
moments on the log scale (limma's fitFDist; Smyth 2004, "Linear models and empirical Bayes methods for
assessing differential expression", section 6.2); each cell's variance the posterior
(d0 s0^2 + d_c s_c^2) / (d0 + d_c). Why this and not a test that moves a cell between "pooled" and "its
own": a test at p < 0.05 on 2 degrees of freedom is a cliff (a small change in the data flips a cell and
every verdict that touches it), while the posterior moves smoothly with the evidence, and where the
cells differ no more than chance makes them (d0 infinite) it is the pooled model exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import optimize, special

from ablations.stats.contrasts import Contrast


@dataclass(frozen=True)
class BlockModel:
    """y(cell, seed) = mu(cell) + b(seed) + e, e ~ N(0, sigma_cell^2), fitted to a study's runs of one
    metric, with each cell's variance moderated towards the study's (the module's method, step 2)."""

    metric: str
    cells: list[str]
    seeds: list
    coefficients: np.ndarray  # one per cell (relative to the first seed's block), then seed effects
    projection: np.ndarray  # A = (X'X)^-1 X': coefficients = A y
    sigma: float  # the residual SD pooled over every cell (the homoscedastic model's)
    df: int  # residual degrees of freedom
    data: pd.DataFrame  # the runs used: cell, seed, the metric, fitted, residual
    seeds_per_cell: dict[str, int]
    cell_variance: dict[str, float]  # each cell's own residual variance, SS_c / d_c
    cell_df: dict[str, float]  # d_c: its share of the residual df
    prior_df: float  # d0 (inf: the cells are no more unlike than chance makes them; every cell gets the pool)
    prior_variance: float  # s0^2
    moderated: dict[str, float]  # each cell's posterior variance
    moderated_df: dict[str, float]  # and its degrees of freedom

    @cached_property
    def cell_index(self) -> np.ndarray:
        """Each run's cell as its position in `cells`."""
        return pd.Categorical(self.data["cell"], categories=self.cells).codes.astype(np.int64)

    @cached_property
    def run_variance(self) -> np.ndarray:
        return self.data["cell"].map(self.moderated).to_numpy(dtype=float)

    @cached_property
    def covariance(self) -> np.ndarray:
        """Covariance of the coefficients under the moderated cell variances: A diag(v) A'."""
        return (self.projection * self.run_variance) @ self.projection.T

    def contrast_vector(self, contrast: Contrast) -> np.ndarray:
        vector = np.zeros(len(self.coefficients))
        for cell, weight in contrast.cell_weights().items():
            vector[self.cells.index(cell)] = weight
        return vector

    def relative_means(self) -> dict[str, float]:
        """Each cell's fitted mean less the first cell's (the seeds' shared level is not separable from
        the cells' under the block model: only differences of cells are estimable)."""
        first = self.cells[0]
        return {cell: float(self.contrast_vector(Contrast.pair(cell, first, "")) @ self.coefficients)
                for cell in self.cells}

    def run_weights(self, contrast: Contrast) -> np.ndarray:
        """The contrast's estimate as a weighted sum of the runs: L'A."""
        return self.contrast_vector(contrast) @ self.projection

    def variance(self, contrast: Contrast) -> tuple[float, float]:
        """The variance of the contrast's estimate and its degrees of freedom. Each cell's moderated
        variance is the prior's share (on d0 df, common to every cell) plus its own share (on d_c df,
        independent of the other cells'); Welch-Satterthwaite over those parts gives d0 + d_c for one
        cell, as limma's moderated t has, and never more than the residual df."""
        weights = dict(zip(self.cells, np.bincount(self.cell_index, self.run_weights(contrast) ** 2,
                                                    minlength=len(self.cells))))
        total = float(sum(w * self.moderated[cell] for cell, w in weights.items()))
        if math.isinf(self.prior_df):
            return total, float(self.df)
        prior = sum(w * self.prior_df / (self.prior_df + self.cell_df[cell]) for cell, w in weights.items())
        parts = [(float(prior) * self.prior_variance, self.prior_df)]
        parts += [(float(w) * self.cell_df[cell] / (self.prior_df + self.cell_df[cell]) * self.cell_variance[cell],
                   self.cell_df[cell]) for cell, w in weights.items() if self.cell_df[cell] > 1e-9]
        return total, min(_satterthwaite(parts), float(self.df))

    def covariance_matrix(self, contrasts: Sequence[Contrast]) -> np.ndarray:
        """The covariance of the contrasts' estimates under the moderated cell variances."""
        weights = np.array([self.run_weights(c) for c in contrasts])
        return (weights * self.run_variance) @ weights.T

    def per_seed_variance(self, contrast: Contrast) -> float:
        """The variance the model implies for the contrast's value on one seed."""
        return sum(w ** 2 * self.moderated[cell] for cell, w in contrast.cell_weights().items())

    def covers(self, contrast: Contrast) -> bool:
        """Whether the model can judge `contrast`: every term on its metric and cells, weights summing to
        zero (a contrast of cells, free of the block effects)."""
        return (all(term.metric == self.metric and term.cell in self.cells for term in contrast.terms)
                and abs(sum(term.weight for term in contrast.terms)) < 1e-12)


def fit_blocks(runs: pd.DataFrame, metric: str = "probe_h", cell: str = "cell", block: str | None = "seed",
               moderate: bool = True) -> BlockModel:
    """Least squares fit of cell + block to the runs that have `metric` (block=None: a one-way model,
    cells only, as for independent samples), with moderated cell variances (moderate=False: one pooled
    variance for every cell, the homoscedastic model, as Dunnett's test assumes)."""
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
    x = design.to_numpy()
    y = data["y"].to_numpy(dtype=float)
    # Least squares through the pseudo-inverse, which the moderated covariance needs anyway: A = (X'X)^-1 X'
    # for a design of full column rank (tests check the fit against statsmodels OLS).
    projection = np.linalg.pinv(x)
    params = projection @ y
    data["fitted"] = x @ params
    data["residual"] = y - data["fitted"]
    leverage = np.einsum("ij,ji->i", x, projection)
    df = len(y) - int(round(leverage.sum()))  # the hat matrix's trace is the design's rank
    sigma = math.sqrt(float(data["residual"].pow(2).sum()) / df) if df > 0 else math.nan
    by_cell = pd.DataFrame({"cell": data["cell"].to_numpy(), "ss": data["residual"].to_numpy() ** 2,
                            "d": 1.0 - leverage}).groupby("cell", sort=False).sum()
    cell_df = {c: float(max(d, 0.0)) for c, d in by_cell["d"].items()}
    cell_variance = {c: float(ss / cell_df[c]) if cell_df[c] > 1e-9 else math.nan for c, ss in by_cell["ss"].items()}
    # Seeds per cell; runs per cell where there are no blocks (independent samples).
    counts = (data.groupby("cell")["seed"].nunique() if block else data.groupby("cell").size()).to_dict()
    prior_df, prior_variance = math.inf, sigma ** 2 if df > 0 else math.nan
    if moderate and df > 0:
        prior_df, prior_variance = squeeze_prior(cell_variance, cell_df, sigma ** 2)
    moderated, moderated_df = {}, {}
    for c in cells:
        own, d = cell_variance[c], cell_df[c]
        if math.isinf(prior_df) or not d > 1e-9 or math.isnan(own):
            moderated[c], moderated_df[c] = prior_variance, float(df) if math.isinf(prior_df) else prior_df
        else:
            moderated[c] = (prior_df * prior_variance + d * own) / (prior_df + d)
            moderated_df[c] = prior_df + d
        moderated_df[c] = min(moderated_df[c], float(df))  # no cell knows more than the whole study
    return BlockModel(metric, cells, list(seeds), params, projection, sigma, df, data, counts,
                      cell_variance, cell_df, prior_df, prior_variance, moderated, moderated_df)


def squeeze_prior(variances: dict[str, float], dfs: dict[str, float], pooled: float) -> tuple[float, float]:
    """(d0, s0^2) of a scaled inverse chi-square prior fitted to the cells' variances by moments on the
    log scale (limma's fitFDist; Smyth 2004, section 6.2). Where the cells' variances spread no more
    than chance would make them, d0 is infinite and s0^2 the pooled variance (limma since 2017)."""
    keys = [k for k, v in variances.items() if dfs[k] > 1e-9 and math.isfinite(v)]
    if len(keys) < 3 or not pooled > 0:
        return math.inf, pooled
    x = np.array([variances[k] for k in keys])
    d = np.array([dfs[k] for k in keys])
    x = np.maximum(x, 1e-5 * np.median(x)) if np.median(x) > 0 else np.maximum(x, 1e-12)  # log of 0 (limma's floor)
    e = np.log(x) - special.digamma(d / 2) + np.log(d / 2)
    e_mean = float(e.mean())
    e_var = float(e.var(ddof=1) - special.polygamma(1, d / 2).mean())
    if e_var <= 0:
        return math.inf, pooled
    d0 = 2 * trigamma_inverse(e_var)
    return d0, float(math.exp(e_mean + special.digamma(d0 / 2) - math.log(d0 / 2)))


def trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (trigamma falls from +inf to 0 on y > 0)."""
    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    return float(optimize.brentq(lambda y: float(special.polygamma(1, y)) - x, 1e-8, 1e8, xtol=1e-12, rtol=1e-12))


class SeedTable:
    """A study's runs as one cell x seed table per metric (the mean where a cell ran a seed twice), from
    which any contrast's per-seed values are read without going back to the runs."""

    def __init__(self, runs: pd.DataFrame, cell: str = "cell", seed: str = "seed"):
        self.runs, self.cell, self.seed = runs, cell, seed
        self.tables: dict[str, tuple[dict, list, np.ndarray]] = {}

    def table(self, metric: str) -> tuple[dict, list, np.ndarray]:
        """cell -> row, the seeds, and the cell x seed array of the metric (NaN where a cell lacks a seed)."""
        if metric not in self.tables:
            rows = self.runs.dropna(subset=[metric])
            frame = rows.groupby([self.cell, self.seed])[metric].mean().unstack(self.seed)
            self.tables[metric] = ({c: i for i, c in enumerate(frame.index)}, list(frame.columns),
                                   frame.to_numpy(dtype=float))
        return self.tables[metric]

    def values(self, contrast: Contrast) -> pd.Series:
        """The contrast's value on every seed where all its terms have a result, indexed by seed (none for
        runs without seeds: independent samples)."""
        if self.seed not in self.runs.columns or not contrast.terms:
            return pd.Series(dtype=float)
        seeds = self.table(contrast.terms[0].metric)[1]
        total = np.zeros(len(seeds))
        for term in contrast.terms:
            index, term_seeds, array = self.table(term.metric)
            if term.cell not in index:
                return pd.Series(dtype=float)
            if term_seeds != seeds:  # another metric's seeds: align on the first's
                row = pd.Series(array[index[term.cell]], index=term_seeds).reindex(seeds).to_numpy()
            else:
                row = array[index[term.cell]]
            total = total + term.weight * row  # a seed missing on either side drops out (NaN)
        kept = np.isfinite(total)
        return pd.Series(total[kept], index=[s for s, k in zip(seeds, kept) if k], dtype=float)


def per_seed_values(runs: pd.DataFrame, contrast: Contrast, cell: str = "cell", seed: str = "seed") -> pd.Series:
    """The contrast's value on every seed where all its terms have a result (SeedTable.values)."""
    return SeedTable(runs, cell, seed).values(contrast)


def _satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates."""
    total = sum(part for part, _ in parts)
    denominator = sum(part ** 2 / df for part, df in parts if df > 0 and math.isfinite(df))
    return total ** 2 / denominator if denominator > 0 else math.inf
