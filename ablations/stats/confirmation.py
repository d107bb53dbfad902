"""The confirmation step: seeds spent where they can change the verdict (the decision; Optuna's side,
reading the trials and enqueueing the round, is `ablations.stores.confirm`).

A study with `verdict:` and `confirm: {max_seeds: N}` runs its planned seeds, then, one round at a time,
one more seed for the cells of the comparisons that can still change its verdict, until none is left.
A round spends only where it can help, by question:
- only contrasts that are open (undecided, "at the edge", or "too few seeds") in a part that is itself open: a part
  already decided against, or a verdict outside the claim's regime, is not changed by more seeds;
- a contrast with fewer than 3 seeds per side (below which nothing is decided) gets seeds up to 3 when
  the cap allows; one with 3 or more only when its estimated need fits within the cap: the seeds per cell
  at which its simultaneous interval would exclude 0 if its estimate and spread held
  (`inference.seeds_needed`); a contrast whose need is above the cap is named, once, and not spent on;
- for a rule that names a best cell, the cells that could still be best (Hsu's MCB) are named too.
`plan_round` says all of it in lines the runner prints and `--dry-run` shows; `stores.confirm.enqueue_round` adds
the round's units. A round's seed is one past the largest seed any unit of the study has, the same for every
cell of the round, so the new runs pair with each other (common random numbers).

It reads a results table and the seeds each cell has; reading them from the Optuna study that every
worker shares, and enqueueing the round exactly once, is `ablations.stores.confirm`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ablations.design.plan import PlannedTrial, StudySpec, cell_name, expand_cells
from ablations.stats.inference import MIN_SEEDS, Estimate
from ablations.stats.verdicts import Verdict, cell_of, decide


def study_epochs(spec: StudySpec) -> int | None:
    """The study's training length where it does not vary it (a rule's regime is judged against it)."""
    return None if "train.epochs" in spec.search.varied_keys else spec.base.train.epochs


def verdict_of(spec: StudySpec, frame: pd.DataFrame) -> Verdict | None:
    """The verdict of the study's rule on its results table (one row per finished run), None without one."""
    if spec.verdict is None or frame.empty:
        return None
    if spec.race is not None and "rung" in frame:
        # A race is judged at its last rung, on the cells that reached it (audited cells left out).
        frame = frame[(frame["rung"] == spec.race.rungs[-1]) & (frame["race"] != "audit")]
        if frame.empty:
            return None
        return decide(spec.verdict, frame, spec.race.rungs[-1])
    return decide(spec.verdict, frame, study_epochs(spec))


@dataclass
class RoundPlan:
    """What the next confirmation round would spend, and why; `lines` say it to the researcher."""

    units: list[tuple[PlannedTrial, str]] = field(default_factory=list)  # each with why it is added
    lines: list[str] = field(default_factory=list)


def _need(e: Estimate) -> int | None:
    """Seeds per cell the contrast needs: up to MIN_SEEDS first, then its estimate's need."""
    if e.n < MIN_SEEDS:
        return MIN_SEEDS
    return e.seeds_needed


def plan_round(spec: StudySpec, frame: pd.DataFrame, seeds_of: dict[str, set[int]]) -> RoundPlan:
    """The units of the next round and the lines that explain it (also when it adds nothing), from the
    study's results table and the seeds each cell already has (run, running or waiting)."""
    plan = RoundPlan()
    if spec.confirm is None:
        return plan
    verdict = verdict_of(spec, frame)
    if verdict is None:
        return plan
    cap = spec.confirm.max_seeds
    if verdict.status == "outside the claim's regime":
        plan.lines.append(f"confirmation: none: {verdict.regime}; more seeds cannot change that")
        return plan
    cells = {cell.id: cell for cell in expand_cells(spec.search)}
    seed = max(set(spec.seeds).union(*seeds_of.values())) + 1
    reasons: dict[str, list[str]] = {}
    over_cap = []
    for part in verdict.parts:
        if part.status != "undecided":  # decided either way: more seeds on its open contrasts change nothing
            continue
        for e in part.open:
            sides = {cell_of(c) for c in e.contrast.cells}
            need = _need(e)
            if (need is None or need > cap or not sides <= set(cells)
                    or any(len(seeds_of.get(side, ())) >= cap for side in sides)):
                over_cap.append((e, need))
                continue
            for side in sides:
                reasons.setdefault(side, []).append(f"{e.contrast.name} (needs about {need} seeds per cell)")
    shown = 5  # the rest as a count: aug_pairs could list dozens
    for e, need in over_cap[:shown]:
        # No interval where there is no spread to make one from (too few seeds): "[+nan, +nan]" said nothing.
        interval = (f", interval [{e.low * 100:+.2f}, {e.high * 100:+.2f}]" if math.isfinite(e.low) and
                    math.isfinite(e.high) else ", no interval yet: too few seeds for a spread")
        plan.lines.append(
            f"confirmation: {e.contrast.name} is open ({e.estimate * 100:+.2f} points{interval}) and "
            + (f"needs about {need} seeds per cell" if need else "would need more seeds than can be estimated")
            + f", above the cap of {cap}: no seed spent on it")
    if len(over_cap) > shown:
        plan.lines.append(f"confirmation: {len(over_cap) - shown} more open comparison(s) need more seeds than the "
                          f"cap of {cap}: no seed spent on them")
    if verdict.candidates and verdict.status != "holds":
        plan.lines.append("confirmation: cells that could still be best: "
                          + ", ".join(cell_name(c) for c in verdict.candidates))
    for cell_id, why in reasons.items():
        reason = (f"seed {seed} added by confirmation for the open comparison{'s' if len(why) > 1 else ''} "
                  f"{'; '.join(why[:3])}{' ...' if len(why) > 3 else ''} ({verdict.rule}: {verdict.status})")
        plan.units.append((spec.planned(cells[cell_id], seed), reason))
    if plan.units:
        plan.lines.append(f"confirmation: seed {seed} for " + ", ".join(cell_name(c) for c in reasons)
                          + ": " + "; ".join(dict.fromkeys(w for why in reasons.values() for w in why)))
    return plan


