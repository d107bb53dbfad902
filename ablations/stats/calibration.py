"""How often a verdict method decides where there is nothing to decide, and how often it decides what
is there: studies simulated in the shape of a real one, judged by its rule.

A shape is a real study's trained runs (its cells, seeds, the columns its rule reads) with probe_h
replaced by draws from the block model y = mu(cell) + b(seed) + sigma(cell) * e:
- under the null every mu(cell) is the same, so any decided contrast is a false decision; the
  family-wise error rate is the share of simulated studies with at least one;
- for power, mu(cell) is the study's own estimate of each cell's mean, and a contrast whose true value
  is not 0 is found when it is decided in its true direction.
The cells' SDs are either one SD for all (the study's pooled residual SD) or each cell's own residual SD
as observed. Observed SDs on 2 degrees of freedom spread far more than the true SDs do, so the second
is a harsher test of a method than the study itself is. Seed effects are drawn with the SD the study's
seed effects had. The simulations use fewer Monte Carlo draws for the critical values than a report does
(`draws`): that adds noise to each simulated decision, not a bias.

`benchmarks/calibration.py` prints the table for the shipped studies; `tests/test_calibration.py` runs a
small version of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ablations.stats import inference
from ablations.stats.block_model import fit_blocks
from ablations.stats.verdicts import RULES

# A method: (runs, contrasts) -> one decision per contrast ("above", "below", or anything else).
Method = Callable[[pd.DataFrame, list], list[str]]


def moderated(draws: int = 20_000) -> Method:
    """This project's method (`ablations.stats.inference.judge`), with `draws` Monte Carlo draws."""
    return lambda runs, contrasts: [e.decision for e in inference.judge(runs, contrasts, draws=draws)]


@dataclass(frozen=True)
class Shape:
    """A study's design and the parameters its simulations draw from."""

    name: str
    rule: str
    runs: pd.DataFrame  # the trained runs: cell, seed and the rule's columns (probe_h is replaced)
    means: dict[str, float]  # the study's estimate of each cell's mean (for power)
    pooled_sd: float
    cell_sd: dict[str, float]  # each cell's own residual SD
    seed_sd: float

    @classmethod
    def of(cls, name: str, rule: str, runs: pd.DataFrame) -> "Shape":
        runs = runs.dropna(subset=["probe_h"]).reset_index(drop=True)
        if "probe_z" in runs.columns:  # h - z has no model to simulate: the shape is probe_h's alone
            runs = runs.assign(probe_z=math.nan)
        model = fit_blocks(runs, moderate=False)
        means = model.relative_means()
        seed_effects = np.asarray(model.coefficients[len(model.cells):], dtype=float)
        seed_sd = float(np.std(np.concatenate([[0.0], seed_effects]), ddof=1)) if len(seed_effects) else 0.0
        cell_sd = {c: math.sqrt(v) if math.isfinite(v) else model.sigma for c, v in model.cell_variance.items()}
        return cls(name, rule, runs, means, model.sigma, cell_sd, seed_sd)

    def contrasts(self, runs: pd.DataFrame) -> list:
        plan = RULES[self.rule].plan(runs)
        return [c for part in plan.parts for c in part.contrasts]

    def simulate(self, rng: np.random.Generator, null: bool, observed_sds: bool) -> pd.DataFrame:
        runs = self.runs.copy()
        seeds = sorted(runs["seed"].unique())
        seed_effect = dict(zip(seeds, rng.normal(0.0, self.seed_sd, len(seeds))))
        sd = runs["cell"].map(self.cell_sd if observed_sds else {c: self.pooled_sd for c in self.cell_sd})
        mean = 0.5 if null else runs["cell"].map(self.means) + 0.5
        runs["probe_h"] = mean + runs["seed"].map(seed_effect) + sd * rng.standard_normal(len(runs))
        return runs


@dataclass(frozen=True)
class Rate:
    """A share of simulated studies (or contrasts) with its 95 % Wilson interval."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        if not self.total:
            return math.nan, math.nan
        z = float(stats.norm.ppf(0.975))
        p, n = self.value, self.total
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value * 100:.1f} % [{low * 100:.1f}, {high * 100:.1f}] ({self.hits}/{self.total})"


def family_error(shape: Shape, method: Method, studies: int, observed_sds: bool, seed: int = 0) -> Rate:
    """The share of null studies in which `method` decides at least one of the rule's contrasts."""
    rng = np.random.default_rng(seed)
    errors = 0
    for _ in range(studies):
        runs = shape.simulate(rng, null=True, observed_sds=observed_sds)
        errors += any(d in inference.DECIDED for d in method(runs, shape.contrasts(runs)))
    return Rate(errors, studies)


@dataclass(frozen=True)
class Power:
    found: Rate  # contrasts with a true value other than 0 decided in its direction
    wrong_way: Rate  # decided against it
    true_contrasts: int  # per study


def power(shape: Shape, method: Method, studies: int, observed_sds: bool, seed: int = 1) -> Power:
    """With the study's own cell means as the truth: how many of the rule's contrasts are decided, and
    how many the wrong way. A contrast's truth is its value under those means."""
    rng = np.random.default_rng(seed)
    found = wrong = total = 0
    for _ in range(studies):
        runs = shape.simulate(rng, null=False, observed_sds=observed_sds)
        contrasts = shape.contrasts(runs)
        truths = [sum(t.weight * shape.means[t.cell] for t in c.terms) for c in contrasts]
        for truth, decision in zip(truths, method(runs, contrasts)):
            if abs(truth) < 1e-12:
                continue
            total += 1
            right = "above" if truth > 0 else "below"
            found += decision == right
            wrong += decision in inference.DECIDED and decision != right
    per_study = total // studies if studies else 0
    return Power(Rate(found, total), Rate(wrong, total), per_study)
