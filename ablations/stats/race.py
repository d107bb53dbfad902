"""Racing over budgets (issue 28): which cells of a grid go on to a longer training length, decided on a
results table (enqueueing them on Optuna is `ablations.stores.race`'s; the study file's `race:` is
`design.plan.RaceSpec`).

A race has rungs of training length (say 2, 6, 24 epochs), every rung with the study's seeds. Every cell
runs at the first rung. When every unit (cell x seed) of a rung is settled (a result, or a failure kept as
one), the study's rule is judged on that rung's runs alone, with the project's inference (`verdicts.decide`:
block model, simultaneous intervals, no decision on fewer than 3 seeds), and the cells it still needs go on:
- the cells that could still be best (Hsu's MCB, `Verdict.candidates`), for a rule that names a best;
- the cells of every contrast it leaves open (undecided, at the edge, too few seeds).
The others stop at that rung, with their estimate and interval there. A rung on which the rule cannot be
judged (its note: no comparison it needs has runs) decides nothing and stops no cell. The claim's regime
(B.9's 300 epochs) is not judged at a rung: a rung is a step of the race, not the study's length.

The audit: when the race reaches its last rung, `audit_cells` of the cells eliminated so far are drawn
(Python's `random.Random(audit_seed)`, over the eliminated cells in plan order, so every worker draws the
same) and run at the last rung too, recorded as audit units. `rank_agreement` and `audit_survivors` then
measure what elimination assumes: that a cell's rank at a short rung holds at the last, and that no
eliminated cell would have been needed there.

Everything here is a deterministic function of the recorded results, so whichever worker finds a rung
complete computes the same next rung.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from ablations.design.plan import cell_name
from ablations.stats.verdicts import Verdict, cell_of, decide

RUNG_COLUMN = "rung"  # the results table's column of a race's training length (epochs)
# Fieller, Hartley and Pearson (1957): Fisher's z of a Spearman correlation has a variance of about
# 1.06 / (n - 3); the interval is made on z and mapped back (needs n > 3).
SPEARMAN_Z_VARIANCE = 1.06
LEVEL = 0.95


def needed_cells(rule: str, runs: pd.DataFrame) -> tuple[list[str], Verdict]:
    """The cells of one rung's runs that `rule` still needs (in the runs' order), and the verdict it was
    judged by: the cells that could be best and the cells of its open contrasts. Every cell where the rule
    cannot be judged on these runs."""
    cells = list(dict.fromkeys(runs["cell"]))
    verdict = decide(rule, runs)  # no regime: a rung is a step of the race, not the study's length
    if verdict.note or not verdict.parts:
        return cells, verdict
    need = set(verdict.candidates)
    need |= {cell_of(side) for part in verdict.parts for e in part.open for side in e.contrast.cells}
    return [cell for cell in cells if cell in need], verdict


@dataclass
class Rung:
    epochs: int
    cells: list[str]  # the cells raced at this rung (all at the first; the survivors of the one before)
    complete: bool  # every unit (cell x seed) settled
    go_on: list[str] | None = None  # the cells sent on (decided once complete; None at the last rung)
    verdict: Verdict | None = None  # the rule judged on this rung's runs, where it decided the next


@dataclass
class RaceState:
    """Where a race stands: the rungs reached (in order), each cell that stopped and at which rung, and
    the audited cells (drawn when the last rung is reached)."""

    rungs: list[Rung] = field(default_factory=list)
    stopped: dict[str, int] = field(default_factory=dict)  # cell -> epochs of the rung it stopped at
    audit: list[str] = field(default_factory=list)

    def units(self, seeds: list[int]) -> list[tuple[str, int, int, str]]:
        """(cell, epochs, seed, role) of every unit the race has asked for so far; role "survivor" or "audit"."""
        units = [(cell, rung.epochs, seed, "survivor") for rung in self.rungs for cell in rung.cells for seed in seeds]
        if self.audit:
            last = self.rungs[-1].epochs
            units += [(cell, last, seed, "audit") for cell in self.audit for seed in seeds]
        return units


def race_state(rule: str, runs: pd.DataFrame, cells: list[str], rungs: list[int], seeds: list[int],
               settled: set[tuple[str, int, int]], audit_cells: int = 0, audit_seed: int = 0) -> RaceState:
    """The race as far as its results take it. `runs`: the study's results (one row per finished run, with
    `RUNG_COLUMN`); `cells`: every cell of the grid in plan order; `settled`: the (cell, epochs, seed)
    units that are done (a result or a kept failure). A rung's decision is taken only once all its units
    are settled, on its own runs of the cells raced there."""
    state = RaceState()
    current = list(cells)
    if RUNG_COLUMN not in runs:  # no race unit finished yet (or only units run before the study raced)
        runs = runs.assign(**{RUNG_COLUMN: math.nan})
    for index, epochs in enumerate(rungs):
        complete = all((cell, epochs, seed) in settled for cell in current for seed in seeds)
        rung = Rung(epochs, current, complete)
        state.rungs.append(rung)
        if index == len(rungs) - 1 or not complete:
            break
        at = runs[(runs[RUNG_COLUMN] == epochs) & runs["cell"].isin(current)]
        go_on, rung.verdict = needed_cells(rule, at) if not at.empty else ([], None)
        rung.go_on = go_on
        state.stopped.update({cell: epochs for cell in current if cell not in go_on})
        current = go_on
        if index + 1 == len(rungs) - 1:
            state.audit = draw_audit([cell for cell in cells if cell in state.stopped], audit_cells, audit_seed)
    return state


def draw_audit(eliminated: list[str], count: int, seed: int) -> list[str]:
    """`count` of the eliminated cells (all where fewer), drawn with `seed`, in the given (plan) order."""
    drawn = set(random.Random(seed).sample(eliminated, min(count, len(eliminated))))
    return [cell for cell in eliminated if cell in drawn]


# --------------------------------------------------------------------------------------------------
# What the audit measures


@dataclass(frozen=True)
class Agreement:
    """Spearman's rank correlation of the cells' mean probe_h between two rungs, over the cells run at
    both, with its 95 % interval (Fisher's z with Fieller's variance; None with 3 cells or fewer)."""

    short: int
    long: int
    n: int
    rho: float
    low: float | None
    high: float | None


def rank_agreement(runs: pd.DataFrame, short: int, long: int) -> Agreement | None:
    """How well the cells' order at `short` epochs predicts their order at `long`; None with fewer than 3
    cells run at both."""
    means = runs.groupby([RUNG_COLUMN, "cell"])["probe_h"].mean()
    if short not in means.index.get_level_values(0) or long not in means.index.get_level_values(0):
        return None
    both = pd.concat([means.loc[short], means.loc[long]], axis=1, join="inner").dropna()
    n = len(both)
    if n < 3:
        return None
    rho = float(stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)
    if n == 3 or not math.isfinite(rho):  # no spread on z (or a constant rung): no interval
        return Agreement(short, long, n, rho, None, None)
    # A perfect order (rho = +-1) has an infinite z: it is taken at +-0.999 so the interval still says how
    # little n cells can show.
    z = math.atanh(max(-0.999, min(0.999, rho)))
    half = float(stats.norm.ppf(0.5 + LEVEL / 2)) * math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3))
    return Agreement(short, long, n, rho, math.tanh(z - half), math.tanh(z + half))


def audit_survivors(rule: str, last_runs: pd.DataFrame, audited: list[str]) -> list[str]:
    """The audited cells the rule would have needed at the last rung (could be best, or in an open
    contrast), judged on the last rung's runs of the survivors and the audited cells together."""
    if last_runs.empty or not audited:
        return []
    needed, _ = needed_cells(rule, last_runs)
    return [cell for cell in audited if cell in needed]


def describe(state: RaceState) -> list[str]:
    """The race's decisions in lines, one per decided rung, and the audit."""
    lines = []
    for rung in state.rungs:
        if rung.go_on is None:
            continue
        stopped = [cell for cell in rung.cells if cell not in rung.go_on]
        lines.append(f"race: after {rung.epochs} epochs, {len(rung.go_on)} of {len(rung.cells)} cells go on ("
                     + ", ".join(cell_name(c) for c in rung.go_on) + f"); {len(stopped)} stop there")
    if state.audit:
        lines.append(f"race: audit: {', '.join(cell_name(c) for c in state.audit)} (eliminated) run at "
                     f"{state.rungs[-1].epochs} epochs too, to measure what elimination assumes")
    return lines
