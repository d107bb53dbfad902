"""How far the block model of `inference` holds on a study's runs: residual SD per cell, equal variance
over cells (Bartlett, and Levene's robust median form), the rank correlation of cell SD with cell mean,
and Tukey's one-degree-of-freedom test for non-additivity of cell and seed. Reports print them beside
every verdict, and say when they fail."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ablations.stats.block_model import BlockModel
from ablations.stats.inference import MIN_SEEDS


@dataclass(frozen=True)
class Checks:
    """How far the block model's assumptions hold on a study's runs."""

    cell_sd: pd.DataFrame  # cell, n, mean, residual SD (ddof 1 within the cell)
    bartlett_p: float  # equal variance over cells (sensitive to non-normality)
    levene_p: float  # equal variance over cells, Brown-Forsythe (median) form: robust
    sd_mean_spearman: float  # rank correlation of cell residual SD with cell mean
    tukey_p: float  # Tukey's one-degree-of-freedom test for non-additivity
    sigma: float
    df: int
    prior_df: float = math.inf  # the moderation's prior degrees of freedom d0 (inf: every cell gets the pool)
    prior_sd: float = math.nan  # and its scale s0

    @property
    def equal_variance(self) -> bool:
        return not (self.bartlett_p < 0.05 or self.levene_p < 0.05)

    @property
    def additive(self) -> bool:
        return not self.tukey_p < 0.05


def check_model(model: BlockModel) -> Checks:
    data = model.data
    # Groups of two have equal absolute deviations from their median, which Levene's test reads as no
    # spread at all: both tests take cells with 3 runs or more.
    groups = [g["residual"].to_numpy() for _, g in data.groupby("cell", sort=False) if len(g) >= MIN_SEEDS]
    table = data.groupby("cell", sort=False).agg(n=("y", "size"), mean=("y", "mean"),
                                                  residual_sd=("residual", lambda r: r.std(ddof=1)))
    table = table.reset_index()
    bartlett = levene = math.nan
    if len(groups) >= 2 and all(np.ptp(g) > 0 for g in groups):
        bartlett = float(stats.bartlett(*groups).pvalue)
        levene = float(stats.levene(*groups, center="median").pvalue)
    valid = table.dropna(subset=["residual_sd"])
    rho = float(stats.spearmanr(valid["mean"], valid["residual_sd"]).statistic) if len(valid) >= 3 else math.nan
    # Each cell's own SD (d_c degrees of freedom) and the moderated SD its contrasts use.
    table["own_sd"] = table["cell"].map(model.cell_variance).pow(0.5)
    table["moderated_sd"] = table["cell"].map(model.moderated).pow(0.5)
    table["own_df"] = table["cell"].map(model.cell_df)
    table["moderated_df"] = table["cell"].map(model.moderated_df)
    return Checks(table, bartlett, levene, rho, _tukey_nonadditivity(model), model.sigma, model.df,
                  model.prior_df, math.sqrt(model.prior_variance))


def _tukey_nonadditivity(model: BlockModel) -> float:
    """Tukey (1949): add the product of the fitted cell and seed effects as one regressor; its F-test."""
    data = model.data
    if len(model.seeds) < 2 or len(model.cells) < 2 or model.df < 2:
        return math.nan
    cell_effect = data.groupby("cell")["fitted"].transform("mean") - data["fitted"].mean()
    seed_effect = data.groupby("seed")["fitted"].transform("mean") - data["fitted"].mean()
    product = (cell_effect * seed_effect).to_numpy()
    if np.allclose(product, 0):
        return math.nan
    base = pd.get_dummies(pd.Categorical(data["cell"], categories=model.cells), dtype=float)
    seeds = pd.get_dummies(pd.Categorical(data["seed"], categories=model.seeds), dtype=float).iloc[:, 1:]
    design = np.column_stack([base.to_numpy(), seeds.to_numpy(), product])
    fit = sm.OLS(data["y"].to_numpy(), design).fit()
    return float(fit.pvalues[-1])
