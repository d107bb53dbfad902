"""Scheduling a study's trials on Optuna: the study itself, claiming work exactly once, heartbeats.
Opening the storage (journal, SQLite, PostgreSQL) is `optuna_storage`'s; preparing a study at a start
(resume) and retrying dead trials are `resume`'s; the functions that read or write trial rows directly
take that storage as an argument.

Units of work. Every trial carries a user attr `unit`: in a grid study `<cell id> seed=<n>`, planned
up front; in a tpe/random study `trial-<number>` of the trial that first sampled it (and
`trial-<number> seed=<n>` for each further seed of the file, queued when it samples: `SEED_OF`). A unit is *done*
when one of its trials is COMPLETE or PRUNED, or FAIL with a recorded `error` (a non-finite loss, out of
memory: rerunning would fail the same way, unless the user asks for --retry-failed). A FAIL without
an error is a trial whose process died or was interrupted: its unit is run again.

Exactly once, with any number of workers and machines on one storage:
1. The process whose `create_study(load_if_exists=False)` succeeds is the creator: it enqueues every
   unit as a WAITING trial (`join`, through `resume.prepare`), opens the study's MLflow records and then sets
   the study attr `ablations.ready`. Others load the study and wait (bounded) for that attr, so a fresh
   study is enqueued, and its parent run made, by one process only.
2. Workers claim WAITING trials through the storage's WAITING -> RUNNING transition, which succeeds for
   one process only (a row lock in RDB storages, the first log line in the journal). `study.ask()` is
   not used for grids: with nothing waiting it would create a fresh, unplanned trial.
3. After claiming, a worker checks its unit: if another trial of the unit is done, or RUNNING with a
   lower number, it backs off (FAIL with `duplicate_of`) before any training or MLflow run. Duplicate
   WAITING copies can only come from two processes re-enqueueing one unit at the same moment
   (the steps below); the lowest-number rule makes exactly one of them run, whatever the interleaving,
   because each worker's RUNNING write precedes its own check.
Optuna's GridSampler is not used: under concurrency it can hand the same grid point to two workers.

Dead trials. Heartbeats as Optuna defines them (`heartbeat_interval`, `grace_period`): a thread records
one every interval while a trial runs, and `resume.fail_stale` turns RUNNING trials whose last heartbeat is
older than the grace period into FAIL (`optuna.storages.fail_stale_trials` for RDB storages,
`HeartbeatJournalStorage.fail_stale_trials` for a journal, which Optuna gives no heartbeats) and calls
the stale-trial callback, `resume.retry_stale_trial`, which enqueues a WAITING copy of the unit. The storage
marks only one process as the one that failed it, so only one copy is made. On start every process
also re-enqueues units with no trial waiting, running or done (interrupted trials, seeds added to the
file), and a worker that finds nothing left re-enqueues such units too (`resume.requeue_orphans`), so a unit
whose worker died between its FAIL and its copy is not lost.

Many machines: `--storage postgresql://...` is retried through a lost connection
(`optuna_storage.RetryingRDBStorage`). A retried call repeats a transaction that was rolled back, so
nothing is recorded twice; the one ambiguous case, a commit whose answer was lost, is handled where it
matters (`finish`).

Optuna's private names are used only through `optuna_private`; here, only where a caller has not
passed the storage (`storage_of`).

What Optuna's own tools see (optuna-dashboard, `optuna.importance`, `optuna.visualization`): the objective
is named `probe_h` (`Study.set_metric_names`), a tpe/random trial's params are what it sampled, and a grid
trial records its configuration as params when it is claimed (`optuna_params.grid_params`): `first` and `second` in a
pair study, each grid key under its dotted name, all categorical over the study file's values, so that
parameter importance, slice and contour plots read grid studies too. The seed is not a param: it is the
replicate, and the spread over seeds is what importance measures against.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ablations.stores import optuna_storage, reconcile, resume
from ablations.stores.identity import DONE_STATES, check_ops, unit_of
from ablations.messages import one_line
from ablations.stores.optuna_params import grid_params, suggest
from ablations.stores.optuna_private import storage_of
from ablations.stores.errors import SearchError
from ablations.stores.optuna_storage import Heartbeat, record_heartbeat
from ablations.design.plan import StudySpec, format_value, run_name, varied_plain

# The study's own id (a uuid), set by its creator: MLflow runs and checkpoint folders are keyed by it.
UID_ATTR = "ablations.uid"
READY_ATTR = "ablations.ready"
# On a tpe/random trial of a seed after the first: the trial that sampled its configuration.
SEED_OF = "seed_of"
# The objective's name, where Optuna's tools would say "Objective 0".
METRIC_NAMES = ["probe_h"]
# What a trial's intermediate values are (optuna-dashboard names them only "Intermediate Values"; it shows
# a study's user attrs on the study's page).
INTERMEDIATE_ATTR = "ablations.intermediate_values"
INTERMEDIATE_TEXT = "knn_acc: the kNN monitor's top-1 accuracy on h (weighted kNN, cosine), at each epoch it runs"


def open_storage(url: str | None, default_path: Path, heartbeat_interval: int,
                 grace_period: int | None = None, retry_for: float | None = None) -> BaseStorage:
    """`optuna_storage.open_storage` (which see) with this module's stale-trial callback: a dead
    trial's unit is enqueued again."""
    return optuna_storage.open_storage(url, default_path, heartbeat_interval, grace_period, retry_for,
                                       stale_trial_callback=resume.retry_stale_trial)


# ----------------------------------------------------------------------------------------------------
# Study


def open_study(spec: StudySpec, storage: BaseStorage) -> tuple[optuna.Study, bool]:
    """Create the study (and return created=True) or load the existing one with this name."""
    sampler = (optuna.samplers.TPESampler() if spec.search.sampler == "tpe" else optuna.samplers.RandomSampler())
    pruner = (optuna.pruners.MedianPruner() if spec.search.pruner == "median" else optuna.pruners.NopPruner())
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="maximize", load_if_exists=False)
        study.set_user_attr("ablations.sampler", spec.search.sampler)
        study.set_user_attr("ablations.objective", "probe_h (linear probe top-1 on h)")
        name_values(study)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
    previous = study.user_attrs.get("ablations.sampler")
    if previous is not None and previous != spec.search.sampler:
        raise SearchError(f"study {spec.name!r} in this storage is a {previous} search and {spec.source} asks "
                          f"for {spec.search.sampler}; give the study a new name or use another --storage")
    if study.metric_names != METRIC_NAMES:  # a study begun before they were named
        name_values(study)
    return study, False


def name_values(study: optuna.Study) -> None:
    """The objective's name and what the intermediate values are, for Optuna's tools."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # set_metric_names: experimental since 3.2
        study.set_metric_names(METRIC_NAMES)
    study.set_user_attr(INTERMEDIATE_ATTR, INTERMEDIATE_TEXT)


# How long a process that found an existing study waits for its creator to finish planning it.
READY_TIMEOUT_S = 300


@dataclass
class Joined:
    """The Optuna side of a start: the study, its uid, and what this process did to it."""

    study: optuna.Study
    uid: str  # the study's own id (UID_ATTR)
    prepared: resume.Prepared | None  # where this process planned or prepared the study
    ready: bool  # marked ready before this process came; else this one marks it once its records are open


def join(spec: StudySpec, storage: BaseStorage, *, setup: bool, retry_failed: bool = False,
         ready_timeout_s: float = READY_TIMEOUT_S, on_wait: Callable[[str], None] | None = None,
         recorded: reconcile.Records | None = None) -> Joined:
    """Open the study and check its identity, in one visit: create it or join it (waiting for its creator
    to finish planning it, at most ready_timeout_s; at once when that process is found gone, and then this
    one plans it), make sure it has its uid, and `prepare` it where this process sets the study up (setup)
    or plans it, with what MLflow `recorded` of it (read before, `reconcile.read_records`). Nothing here
    touches MLflow: the caller opens the study's records next, then calls
    `mark_ready` where `ready` is False, so that a process joining the study finds both stores in place."""
    study, created = open_study(spec, storage)
    ready = False
    if created:
        mark_creator(study)
    else:
        ready = wait_until_ready(study, ready_timeout_s, on_wait=on_wait)
        if not ready and on_wait is not None:
            on_wait(f"study {spec.name!r}: its creator stopped before planning it; this process plans it")
    uid = study.user_attrs.get(UID_ATTR)
    if uid is None:  # a new study, or its creator died before getting this far
        uid = uuid.uuid4().hex
        study.set_user_attr(UID_ATTR, uid)
    if not (setup or not ready):  # a worker joining a study set up by another: its ops must be the study's
        check_ops(study, spec, write=False)
    prepared = (resume.prepare(study, spec, retry_failed=retry_failed, storage=storage,
                        finished=recorded.finished_of(uid) if recorded and not created else ())
                if setup or not ready else None)
    return Joined(study, uid, prepared, ready)


def mark_ready(study: optuna.Study, units: int, parent_run_id: str | None) -> None:
    if parent_run_id:
        study.set_user_attr("ablations.mlflow_parent_run_id", parent_run_id)
    study.set_user_attr("ablations.units", units)
    study.set_user_attr(READY_ATTR, True)


CREATOR_ATTR = "ablations.creator"


def mark_creator(study: optuna.Study) -> None:
    """Who is planning the study (`host:pid`), so that a process that joins it can tell whether to wait."""
    study.set_user_attr(CREATOR_ATTR, f"{socket.gethostname()}:{os.getpid()}")


def creator_gone(study: optuna.Study) -> bool:
    """The study's creator ran on this machine and its process no longer exists."""
    host, _, pid = str(study.user_attrs.get(CREATOR_ATTR, "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's (or unknown): only its silence can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def wait_until_ready(study: optuna.Study, timeout_s: float,
                     on_wait: Callable[[str], None] | None = None) -> bool:
    """Wait for the creator to finish enqueueing; False if it did not within timeout_s, or at once when
    its process is known to be gone (it died). `on_wait` is told once what is awaited."""
    deadline = time.monotonic() + timeout_s
    told = False
    while not study.user_attrs.get(READY_ATTR):
        if creator_gone(study) or time.monotonic() > deadline:
            return False
        if not told and on_wait is not None:
            creator = study.user_attrs.get(CREATOR_ATTR, "another process")
            on_wait(f"waiting for {creator}, which created study {study.study_name!r}, to finish planning it "
                    f"(at most {timeout_s:.0f} s; sooner if that process is found gone)")
            told = True
        time.sleep(0.5)
    return True


# ----------------------------------------------------------------------------------------------------
# Claiming work


@dataclass
class Claim:
    trial: optuna.Trial
    attrs: dict[str, Any]  # the plan attrs: unit, cell, seed, varied, pair, config, checkpoint
    trial_id: int  # the storage's id of the trial, for the storage calls (heartbeats, finish)
    storage: BaseStorage  # the storage the trial was claimed through

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def run_name(self) -> str:
        return self.attrs["run_name"]

    @property
    def varied(self) -> dict[str, Any]:
        return self.attrs["varied"]

    def heartbeat(self) -> Heartbeat:
        """`with claim.heartbeat():` records this trial's heartbeat while the block runs."""
        return Heartbeat(self.storage, self.trial_id)


def claim_next(study: optuna.Study, spec: StudySpec, storage: BaseStorage | None = None) -> Claim | None:
    """A trial this process now owns, or None when nothing is waiting (and, for tpe/random, the
    budget of n_trials units is spent). `storage`: the one the study was opened with (a caller that
    leaves it out gets the study's own)."""
    storage = storage if storage is not None else storage_of(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            # A heartbeat before the claim: RDBStorage never declares dead a RUNNING trial that has
            # none, so a worker killed between its claim and its first beat (or a claim committed
            # whose answer was lost) would otherwise hold the cell forever. A losing claimer's beat
            # on a trial that someone else runs is harmless: that one beats too.
            record_heartbeat(storage, trial_id)
            # The storage's WAITING -> RUNNING transition, as Optuna's own Study.ask pops a waiting
            # trial: True for one process only.
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue  # another process popped it first
        except UpdateFinishedTrialError:
            continue
        try:
            claim = _own(study, optuna.Trial(study, trial_id), trial_id, spec, storage)
        except UpdateFinishedTrialError:  # declared dead or a duplicate by another process meanwhile
            continue
        if claim is not None:
            return claim
    if spec.search.sampler == "grid":
        return None
    units = {unit_of(t) for t in study.get_trials(deepcopy=False)
             if "duplicate_of" not in t.user_attrs and SEED_OF not in t.user_attrs}  # n_trials counts samples
    if len(units) >= spec.search.n_trials:
        return None
    # With several workers the budget can be overshot by at most workers - 1 trials, as with
    # Optuna's own MaxTrialsCallback.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "heartbeat is supposed to be used with optimize"
        trial = study.ask()
    return _own(study, trial, storage.get_trial_id_from_study_id_trial_number(study_id, trial.number), spec, storage)


def _own(study: optuna.Study, trial: optuna.Trial, trial_id: int, spec: StudySpec,
         storage: BaseStorage) -> Claim | None:
    """First steps after a claim: heartbeat, the duplicate check, and for sampled studies the sample."""
    record_heartbeat(storage, trial_id)  # before anything can die: RDB ignores unbeaten trials
    frozen = storage.get_trial(trial_id)
    unit = unit_of(frozen)
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or unit_of(other) != unit:
            continue
        # A result (COMPLETE, PRUNED) or an earlier claim of the unit makes this one a duplicate; a failure
        # does not: a unit is enqueued again after one only on purpose (--retry-failed).
        if other.state in DONE_STATES or (other.state == TrialState.RUNNING and other.number < trial.number):
            trial.set_user_attr("duplicate_of", other.number)
            study.tell(trial, state=TrialState.FAIL)
            return None
    attrs = dict(frozen.user_attrs)
    if "config" not in attrs:  # a fresh tpe/random trial (or the retry of one that died unsampled)
        values = _sample(study, trial, spec)
        attrs.update(_sampled_attrs(spec, values, spec.seeds[0]), unit=unit)
        # The study's other seeds of the same sample: one unit each, queued for any worker.
        for seed in spec.seeds[1:]:
            study.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
                user_attrs={**_sampled_attrs(spec, values, seed), "unit": f"{unit} seed={seed}", SEED_OF: trial.number}))
    elif spec.search.sampler == "grid" and not frozen.params:  # a planned unit (a retry inherits its params)
        for name, (value, distribution) in grid_params(spec, attrs).items():
            try:
                storage.set_trial_param(trial_id, name, distribution.to_internal_repr(value), distribution)
            except ValueError:
                # The study's earlier trials recorded this param over other values (the file's grid has
                # since been extended): Optuna keeps one distribution per param, so this trial goes without.
                pass
    if "checkpoint" not in attrs:
        # Under the study's uid: another study of the same name (another --storage) may share runs/<study>/,
        # and its trial 3 is not this one's.
        uid = study.user_attrs.get(UID_ATTR)
        attrs["checkpoint"] = f"{uid[:12]}/trial-{trial.number}" if uid else f"trial-{trial.number}"
    attrs["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    for key in resume.PLAN_ATTRS + ("worker",):
        if frozen.user_attrs.get(key) != attrs.get(key):
            trial.set_user_attr(key, attrs.get(key))
    return Claim(trial, attrs, trial_id, storage)


def _sample(study: optuna.Study, trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """A tpe/random trial's values, drawn now."""
    try:
        return {key: suggest(trial, param) for key, param in spec.search.params.items()}
    except ValueError as error:  # Optuna: a parameter's distribution changed since the study began
        study.tell(trial, state=TrialState.FAIL)
        raise SearchError(f"{spec.source}: search.params no longer match study {spec.name!r} "
                          f"({one_line(error)}); give the study a new name") from None


def _sampled_attrs(spec: StudySpec, values: dict[str, Any], seed: int) -> dict[str, Any]:
    """A sampled configuration at one seed as plan attrs (unit aside)."""
    config = spec.config_for(values, seed)
    return {"cell": " ".join(f"{k}={format_value(v)}" for k, v in values.items()), "seed": seed,
            "varied": varied_plain(values, seed), "pair": None, "run_name": run_name(values, seed),
            "config": config.to_plain()}


def finish(study: optuna.Study, claim: Claim, *, value: float | None = None, state: TrialState,
           attrs: dict[str, Any] | None = None) -> bool:
    """Record a trial's end; False if another process had already declared it dead (its result is
    then dropped: the retried copy is the one that counts)."""
    try:
        for key, item in (attrs or {}).items():
            claim.trial.set_user_attr(key, item)
        study.tell(claim.trial, value if state == TrialState.COMPLETE else None, state=state)
        return True
    except (UpdateFinishedTrialError, ValueError) as error:
        # Finished already: by another process that declared it dead, or by this very call, when the
        # database committed it but its answer was lost and the retry found the trial finished.
        # (study.tell says ValueError "Cannot tell a FAIL trial" where the trial was failed before
        # it looked; any other ValueError is a bad value, raised as it is.)
        recorded = claim.storage.get_trial(claim.trial_id)
        if isinstance(error, ValueError) and not recorded.state.is_finished():
            raise
        return recorded.state == state and "duplicate_of" not in recorded.user_attrs and \
            (state != TrialState.COMPLETE or recorded.value == value)


# ----------------------------------------------------------------------------------------------------
# Reading the study back (progress, summary)


def work_left(study: optuna.Study, spec: StudySpec) -> tuple[int, int]:
    """(waiting, running) trial counts."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return waiting, len(trials) - waiting
