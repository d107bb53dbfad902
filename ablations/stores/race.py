"""A race on Optuna (issue 28): the study's results and settled units read from its trials, and the next
rung's units (and the audit's) enqueued. Which cells go on, and why, is `ablations.stats.race`'s.

Every worker that finds nothing waiting or running calls `enqueue_rung`: it computes the race's state from
the trials every worker and machine shares (a deterministic function of the recorded results, so any
worker computes the same) and adds each unit the state asks for that has no trial waiting, running or
done. Two workers that do so at once may each add a copy of a unit; `search.claim_next`'s duplicate check
runs it once. A unit records its rung (user attr `rung`, MLflow tag `ablations.rung` and param
`train.epochs`) and its role (`race`: survivor or audit), so the report can read the race back.
"""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ablations.design.plan import PlannedTrial, StudySpec, expand_cells
from ablations.stats import race
from ablations.stats.race import RaceState
from ablations.stores import confirm, resume
from ablations.stores.identity import unit_of


def settled_units(trials: list[FrozenTrial]) -> set[tuple[str, int, int]]:
    """(cell, epochs, seed) of every race unit with a result or a kept failure, duplicates left out."""
    return {(t.user_attrs["cell"], int(t.user_attrs["rung"]), int(t.user_attrs["seed"])) for t in trials
            if "rung" in t.user_attrs and "duplicate_of" not in t.user_attrs and resume.is_done(t)}


def state_of(spec: StudySpec, trials: list[FrozenTrial], frame: pd.DataFrame | None = None) -> RaceState:
    """Where the study's race stands, from its trials (`frame`: their results table, where already read)."""
    frame = confirm.results_frame(trials) if frame is None else frame
    cells = [cell.id for cell in expand_cells(spec.search)]
    return race.race_state(spec.verdict, frame, cells, spec.race.rungs, spec.seeds, settled_units(trials),
                           spec.race.audit_cells, spec.race.audit_seed)


def enqueue_rung(study: optuna.Study, spec: StudySpec) -> tuple[list[PlannedTrial], list[str]]:
    """Enqueue the units the race now asks for that have no trial waiting, running or done; returns those
    added and the lines that say what the race decided."""
    trials = study.get_trials(deepcopy=False)
    state = state_of(spec, trials)
    covered = {unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or resume.is_done(t)}
    cells = {cell.id: cell for cell in expand_cells(spec.search)}
    added = []
    for cell, epochs, seed, role in state.units(spec.seeds):
        planned = spec.planned(cells[cell], seed, epochs)
        if planned.unit in covered:
            continue
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                                  user_attrs=resume.plan_attrs(planned, race=role)))
        covered.add(planned.unit)
        added.append(planned)
    return added, race.describe(state) if added else []
