"""The confirmation step: seeds spent where the verdict is still open.

A study with `verdict:` and `confirm: {max_seeds: N}` runs its planned seeds, then, one round at a time,
one more seed for every configuration of a comparison that its verdict leaves undecided, until every
comparison is decided or those configurations have N seeds. A round's seed is one past the largest
seed any unit of the study has, the same for every configuration of the round, so the new runs pair
with each other (common random numbers).

The decision reads only the Optuna study (the finished trials' probe results, recorded in their user
attrs), which every worker and machine shares: whichever process finds the planned work done first
enqueues the round, and a unit enqueued twice is run once (`search.claim_next`'s duplicate check).
Each added unit records why it was added (user attr and MLflow tag `ablations.confirm`).
"""

from __future__ import annotations

import math

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ablations import search
from ablations.plan import PlannedTrial, StudySpec, expand_cells
from ablations.verdicts import RULES, Verdict, cell_of, configurations_to_confirm


def results_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per finished (COMPLETE) trial of the study's configurations, the floor left out:
    cell, seed, probe_h, probe_z and the varied values (pairs as first/second), as the rules read them."""
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.COMPLETE or attrs.get("floor") or attrs.get("duplicate_of"):
            continue
        if "cell" not in attrs or attrs.get("probe_h") is None:
            continue
        row = {"cell": attrs["cell"], "seed": attrs["seed"], "probe_h": attrs["probe_h"],
               "probe_z": attrs.get("probe_z", math.nan)}
        row.update({key: value for key, value in attrs.get("varied", {}).items()
                    if not isinstance(value, (list, dict))})
        if attrs.get("pair"):
            row["first"], row["second"] = attrs["pair"]
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_of(spec: StudySpec, trials: list[FrozenTrial]) -> Verdict | None:
    frame = results_frame(trials)
    if spec.verdict is None or frame.empty:
        return None
    return RULES[spec.verdict](frame)


def next_round(spec: StudySpec, trials: list[FrozenTrial]) -> list[tuple[PlannedTrial, str]]:
    """The units of the next confirmation round, each with why it is added; [] when the verdict is
    decided, confirmation is off, or every open configuration has max_seeds seeds."""
    if spec.confirm is None:
        return []
    verdict = verdict_of(spec, trials)
    if verdict is None:
        return []
    cells = {cell.id: cell for cell in expand_cells(spec.search)}
    seeds_of: dict[str, set[int]] = {}
    for trial in trials:
        attrs = trial.user_attrs
        if "cell" in attrs and "seed" in attrs and not attrs.get("duplicate_of"):
            seeds_of.setdefault(attrs["cell"], set()).add(int(attrs["seed"]))
    seed = max(set(spec.seeds).union(*seeds_of.values())) + 1
    wanted = set(configurations_to_confirm(verdict))  # empty once the verdict is decided
    reasons: dict[str, list[str]] = {}
    for comparison in verdict.comparisons:
        sides = {cell_of(comparison.better), cell_of(comparison.worse)}
        # Both sides below the cap, or the new seed would not pair: a comparison gains a seed on both.
        if comparison.decided or not sides <= wanted or not sides <= set(cells):
            continue
        if any(len(seeds_of.get(side, ())) >= spec.confirm.max_seeds for side in sides):
            continue
        for side in sides:
            reasons.setdefault(side, []).append(f"{comparison.better} vs {comparison.worse}")
    units = []
    for cell_id, why in reasons.items():
        reason = (f"seed {seed} added by confirmation for the open comparison{'s' if len(why) > 1 else ''} "
                  f"{'; '.join(why[:3])}{' ...' if len(why) > 3 else ''} ({verdict.rule}: {verdict.status})")
        units.append((spec.planned(cells[cell_id], seed), reason))
    return units


def enqueue_round(study: optuna.Study, spec: StudySpec) -> list[PlannedTrial]:
    """Enqueue the next round's units (none already waiting, running or done); returns those added."""
    trials = study.get_trials(deepcopy=False)
    covered = {search.unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or search.is_done(t)}
    added = []
    for planned, reason in next_round(spec, trials):
        if planned.unit in covered:
            continue
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                                  user_attrs=search.plan_attrs(planned, confirm=reason)))
        added.append(planned)
    return added
