"""Resuming a study on Optuna: what a start does before any trial is claimed, and what a worker does
to units whose trials died. `prepare` checks the study file against the study (`identity`), writes back
the results MLflow holds and Optuna lost (`reconcile`), fails dead trials (`fail_stale`) and enqueues a
WAITING trial for every unit that has none waiting, running or done; `retry_stale_trial` is the storage's
stale-trial callback and `requeue_orphans` its safety net. The rules they follow (what a done unit is,
why a dead trial's copy is made once) are in `search`'s docstring; claiming and finishing trials are
`search`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ablations.stores import reconcile
from ablations.stores.identity import DONE_STATES, changed_failures, check_identity, unit_of
from ablations.stores.optuna_private import storage_of
from ablations.stores.optuna_storage import HeartbeatJournalStorage
from ablations.design.plan import PlannedTrial, StudySpec

# Trial user attrs written when a unit is planned; a retried copy inherits exactly these.
PLAN_ATTRS = ("unit", "cell", "seed", "varied", "pair", "run_name", "config", "checkpoint", "floor", "confirm",
              "seed_of", "rung", "race")


def retry_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Stale-trial callback: enqueue a WAITING copy of a dead trial's unit (Optuna's
    RetryHeartbeatStaleTrialCallback, less the run-time attrs of the dead attempt)."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={**_plan_attrs(trial), "retry_of": trial.number},
    ))


def plan_attrs(planned: PlannedTrial, confirm: str | None = None, race: str = "survivor") -> dict[str, Any]:
    """A unit's user attrs; `confirm` says why the confirmation step added it; in a race, `rung` (its
    training length) and `race`: "survivor" (the race sent the cell on) or "audit" (an eliminated cell
    run at the last rung to measure what elimination assumes)."""
    attrs = {
        "unit": planned.unit,
        "cell": planned.cell.id,
        "seed": planned.seed,
        "varied": planned.varied,
        "pair": list(planned.cell.pair) if planned.cell.pair else None,
        "run_name": planned.run_name,
        "config": planned.config.to_plain(),
    }
    if planned.cell.floor:
        attrs["floor"] = True
    if confirm:
        attrs["confirm"] = confirm
    if planned.rung is not None:
        attrs["rung"] = planned.rung
        attrs["race"] = race
    return attrs


def _plan_attrs(trial: FrozenTrial) -> dict[str, Any]:
    attrs = {key: trial.user_attrs[key] for key in PLAN_ATTRS if key in trial.user_attrs}
    attrs["unit"] = unit_of(trial)
    return attrs


def is_done(trial: FrozenTrial, retry_failed: bool = False) -> bool:
    """COMPLETE or PRUNED, or FAIL with a recorded error (a result, unless the user retries failures)."""
    if trial.state in DONE_STATES:
        return True
    return trial.state == TrialState.FAIL and "error" in trial.user_attrs and not retry_failed


@dataclass
class Prepared:
    units: int  # units known to the study (planned, sampled or budgeted)
    done: int
    enqueued: int  # units put (back) in the queue by this call
    failed_stale: list[int]  # trial numbers found dead by this call
    replanned: int = 0  # waiting trials given the study file's edited configuration by this call
    # An edited study file: units it plans that the study had never seen (new cells or seeds), and the
    # cells of recorded trials it no longer plans (kept in the records). Grid studies only.
    added: list[PlannedTrial] = field(default_factory=list)
    dropped_cells: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # runs finished in MLflow whose results Optuna had lost
    # Failed trials kept as results whose configuration the file has since changed: number -> the change.
    changed_failures: dict[int, str] = field(default_factory=dict)


def prepare(study: optuna.Study, spec: StudySpec, *, retry_failed: bool = False,
            storage: BaseStorage | None = None, finished: Iterable[reconcile.FinishedRun] = ()) -> Prepared:
    """Resume: refuse a changed configuration, write back the results MLflow holds `finished` and Optuna
    lost (`reconcile.recover`), fail dead trials, and enqueue every unit that has no trial waiting,
    running or done (new seeds or cells, interrupted trials, --retry-failed).
    `storage` is the one the study was opened with (see `fail_stale`)."""
    storage = storage if storage is not None else storage_of(study)
    # The design and the results it made are checked before anything is planned: a refused edit leaves
    # the study as it was.
    planned, replanned = check_identity(study, spec, study.get_trials(deepcopy=False), storage)
    recovered = reconcile.recover(study, spec, storage, list(finished))  # before a lost end looks like a death
    failed = fail_stale(study, storage)
    trials = study.get_trials(deepcopy=False)
    covered = {unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or is_done(t, retry_failed)}
    seen = {unit_of(t) for t in trials}
    added = [unit for unit in planned if unit.unit not in seen]
    planned_cells = {unit.cell.id for unit in planned}
    dropped = sorted({t.user_attrs["cell"] for t in trials if "cell" in t.user_attrs} - planned_cells) if planned else []
    enqueued = 0
    for unit in planned:
        if unit.unit not in covered:
            study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=plan_attrs(unit)))
            covered.add(unit.unit)
            enqueued += 1
    # Units known only from trials (sampled ones, or cells since removed from the file) come back too.
    enqueued += requeue_orphans(study, retry_failed)
    units = units_known(study)
    if spec.search.n_trials:
        units = max(units, spec.search.n_trials * len(spec.seeds))
    done = len({unit_of(t) for t in study.get_trials(deepcopy=False) if is_done(t)})
    return Prepared(units=units, done=done, enqueued=enqueued, failed_stale=failed, replanned=replanned,
                    added=added if trials else [], dropped_cells=dropped, recovered=recovered,
                    changed_failures={} if retry_failed else changed_failures(study.get_trials(deepcopy=False), spec))


def requeue_orphans(study: optuna.Study, retry_failed: bool = False) -> int:
    """Enqueue a WAITING copy of every unit whose last trial ended FAIL without an error and that has no
    trial waiting, running or done: a worker died between failing a dead trial and enqueueing its copy,
    or a worker was interrupted. Returns how many were enqueued."""
    trials = study.get_trials(deepcopy=False)
    covered = {unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or is_done(t, retry_failed)}
    latest: dict[str, FrozenTrial] = {}
    for trial in trials:
        if "duplicate_of" not in trial.user_attrs:
            latest[unit_of(trial)] = trial
    orphans = [t for unit, t in latest.items() if unit not in covered and t.state == TrialState.FAIL]
    for trial in orphans:
        retry_stale_trial(study, trial)
    return len(orphans)


def fail_stale(study: optuna.Study, storage: BaseStorage | None = None) -> list[int]:
    """FAIL the study's trials whose heartbeat stopped, and enqueue their units again (the storage's
    stale-trial callback); returns the numbers of the trials this call failed (dead workers).
    `storage`: the one the study was opened with (a caller that leaves it out gets the study's own)."""
    storage = storage if storage is not None else storage_of(study)
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    if isinstance(storage, HeartbeatJournalStorage):
        storage.fail_stale_trials(study)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(running - still)


def units_known(study: optuna.Study) -> int:
    """Units the study holds a trial for (planned, sampled, or added by confirmation), each once."""
    return len({unit_of(t) for t in study.get_trials(deepcopy=False) if "duplicate_of" not in t.user_attrs})


def units_done(study: optuna.Study) -> int:
    return len({unit_of(t) for t in study.get_trials(deepcopy=False) if is_done(t)})
