"""Optuna side of a study: storage, the study itself, claiming work exactly once, heartbeats, resume.

Units of work. Every trial carries a user attr `unit`: in a grid study `<cell id> seed=<n>`, planned
up front; in a tpe/random study `trial-<number>` of the trial that first sampled it. A unit is *done*
when one of its trials is COMPLETE or PRUNED, or FAIL with a recorded `error` (a non-finite loss, out of
memory: rerunning would fail the same way, unless the user asks for --retry-failed). A FAIL without
an error is a trial whose process died or was interrupted: its unit is run again.

Exactly once, with any number of workers and machines on one storage:
1. The process whose `create_study(load_if_exists=False)` succeeds is the creator: it enqueues every
   unit as a WAITING trial and then sets the study attr `ablations.ready`. Others load the study and
   wait (bounded) for that attr, so a fresh study is enqueued by one process only.
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
one every interval while a trial runs, and `optuna.storages.fail_stale_trials` turns RUNNING trials
whose last heartbeat is older than the grace period into FAIL and calls the storage's stale-trial
callback, `retry_stale_trial`, which enqueues a WAITING copy of the unit. The storage marks only one
process as the one that failed it, so only one copy is made. RDBStorage has heartbeats built in;
Optuna 5's JournalStorage has none, so `HeartbeatJournalStorage` adds them (the heartbeat is a trial
system attr holding the wall-clock time, so processes sharing a journal must share a clock: one machine,
or NFS between NTP-synchronised hosts). On start every process also re-enqueues units with no trial
waiting, running or done (interrupted trials, seeds added to the file), and a worker that finds nothing
left re-enqueues such units too (`requeue_orphans`), so a unit whose worker died between its FAIL and
its copy is not lost.

Many machines: `--storage postgresql://...` is an `RDBStorage` whose every call is retried through a
lost connection (`RetryingRDBStorage`, `stores.retry`): a database restart pauses the workers and they
carry on. A retried call repeats a transaction that was rolled back, so nothing is recorded twice; the
one ambiguous case, a commit whose answer was lost, is handled where it matters (`finish`). Workers
started at the same instant on a new database create Optuna's tables under an advisory lock.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

# BaseHeartbeat is the interface fail_stale_trials checks for; Optuna keeps it in a private module.
from optuna.storages._heartbeat import BaseHeartbeat

from ablations.stores import CONNECT_TIMEOUT_S, describe, mask_url, remember_secrets, retry
from ablations.study import (
    SEED_KEY, PlannedTrial, StudySpec, coerce_value, flat_config, format_value, plain_value, run_name,
    varied_plain,
)

# Trial user attrs written when a unit is planned; a retried copy inherits exactly these.
PLAN_ATTRS = ("unit", "cell", "seed", "varied", "pair", "run_name", "config", "checkpoint")
# Config keys that say where things are on one machine, not what is trained: they may differ between
# the machines (and the reruns) of one study.
PLACE_KEYS = {"data.root", "data.cache_dir", "data.download", "train.num_threads", "train.device"}
HEARTBEAT_ATTR = "ablations:heartbeat"
READY_ATTR = "ablations.ready"
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class SearchError(RuntimeError):
    """A storage or study that this run cannot use; the message says what to do."""


# ----------------------------------------------------------------------------------------------------
# Storage


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat interface its RDB storage has, so that
    `fail_stale_trials` detects trials whose process died (kill -9, power loss) on a journal file too."""

    def __init__(self, backend: JournalFileBackend, heartbeat_interval: int, grace_period: int | None = None,
                 stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or 2 * heartbeat_interval
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # A trial claimed but killed before its first heartbeat counts from its start.
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            if last is not None and now - last > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback


def open_storage(url: str | None, default_path: Path, heartbeat_interval: int,
                 grace_period: int | None = None, retry_for: float | None = None) -> BaseStorage:
    """`--storage`: None -> a journal file at default_path; `*.journal` -> that journal file;
    anything else -> an SQLAlchemy URL (sqlite:///optuna.db, postgresql://user:password@host/db),
    connected to once here so that a wrong URL, host or password is one clear error before any training."""
    if heartbeat_interval < 1:
        raise SearchError(f"--heartbeat-interval: {heartbeat_interval} is not allowed; expected seconds >= 1")
    if url is None or url.endswith(".journal"):
        # Absolute: Optuna's lock is a symlink to this path, and a relative target dangles, which
        # leaves a lock held by a killed process unbreakable (waiters spin forever; seen here).
        path = (Path(url) if url else default_path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(path)
        return HeartbeatJournalStorage(JournalFileBackend(str(path)), heartbeat_interval, grace_period,
                                       stale_trial_callback=retry_stale_trial)
    remember_secrets(url)
    shown = mask_url(url)
    if "://" not in url:
        raise SearchError(f"--storage: {shown!r} is neither a path ending in .journal nor a database URL "
                          "(sqlite:///optuna.db, postgresql://user:password@host/db)")
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()  # the driver: postgresql:// needs psycopg
    except ImportError as error:
        raise SearchError(f"--storage {shown}: the database driver is not installed ({describe(error)}); "
                          "pip install 'simclr-ablations[postgres]' installs the PostgreSQL one") from None
    except Exception as error:  # sqlalchemy.exc.ArgumentError, NoSuchModuleError
        hint = "; write postgresql://, SQLAlchemy's name for it" if url.startswith("postgres://") else ""
        raise SearchError(f"--storage {shown}: not a database URL ({describe(error)}{hint}); expected "
                          "sqlite:///optuna.db or postgresql://user:password@host:port/database") from None
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        # pool_pre_ping: a pooled connection that died with a server restart is replaced, not used.
        engine_kwargs = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings(), _schema_lock(parsed, engine_kwargs):
            warnings.simplefilter("ignore", ExperimentalWarning)
            storage = RetryingRDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                         grace_period=grace_period, heartbeat_stale_trial_callback=retry_stale_trial,
                                         retry_for=retry_for, label=f"Optuna storage {shown}")
    except Exception as error:  # refused connections, unknown hosts, wrong passwords, missing databases
        raise SearchError(f"--storage {shown}: cannot connect: {describe(error)}") from None
    if sqlite:
        _serialize_sqlite_transactions(storage.engine)
    return storage


class RetryingRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose calls are retried through a lost connection (`stores.retry`, transient
    errors only: a finished trial or a duplicated study is raised at once), for at most `retry_for`
    seconds. Each wrapped method is one transaction of its own, rolled back when the connection
    drops, so repeating it records nothing twice."""

    def __init__(self, url: str, *, retry_for: float | None, label: str, **kwargs: Any):
        self.retry_for = retry_for
        self.label = label
        super().__init__(url, **kwargs)


# The RDBStorage methods that open their own session, and the private ones that Optuna's
# _CachedStorage (the wrapper every Study puts around an RDBStorage) calls directly. Helpers that
# work inside a caller's session (`*_without_commit`) must not be retried on their own.
RETRIED_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial",
    "set_trial_param", "_set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "_get_trials", "get_best_trial", "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids",
)


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retry(method, self, *args, attempts=1, retry_for=self.retry_for, store=self.label, **kwargs)
    return call


for _name in RETRIED_CALLS:
    setattr(RetryingRDBStorage, _name, _retried(getattr(RDBStorage, _name)))


class _schema_lock:
    """Hold a PostgreSQL advisory lock while Optuna creates or checks its tables: two workers that
    start at the same instant on a new database would otherwise both CREATE TABLE and one would
    fail (seen in tests/test_distributed.py). Other databases are left as they are."""

    KEY = zlib.crc32(b"simclr-ablations optuna schema")

    def __init__(self, url, engine_kwargs: dict[str, Any]):
        self._url, self._engine_kwargs = url, engine_kwargs
        self._engine = self._connection = None

    def __enter__(self):
        if self._url.get_backend_name() != "postgresql":
            return self
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool,
                                                connect_args=self._engine_kwargs.get("connect_args", {}))
        self._connection = self._engine.connect()
        self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.KEY})
        return self

    def __exit__(self, *exc_info):
        if self._connection is not None:
            self._connection.close()  # ends the session, which releases its advisory locks
        if self._engine is not None:
            self._engine.dispose()


def _serialize_sqlite_transactions(engine) -> None:
    """Make Optuna's WAITING -> RUNNING pop atomic on SQLite.

    RDBStorage reads the trial `FOR UPDATE` and then writes it; SQLite ignores FOR UPDATE, so two
    processes can both read WAITING and both commit RUNNING, and both run the cell (seen in
    tests/test_run.py). Starting every transaction with BEGIN IMMEDIATE takes SQLite's write lock
    before the read, so the second process reads RUNNING. This serialises all access to the file,
    which is fine for the handful of workers one machine runs (SQLAlchemy's documented recipe for
    pysqlite transactions). PostgreSQL and MySQL lock the row and need none of this."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # pysqlite would otherwise issue its own BEGIN

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed


def repair_journal(path: Path) -> bool:
    """Cut a partial last line left by a process killed while appending (kill -9, power loss):
    Optuna's journal reader refuses every line after one without its newline. Done under the
    journal's own lock, so no live writer is mid-line; True if something was cut."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    lock = JournalFileSymlinkLock(str(path))
    while not lock.acquire():
        time.sleep(0.05)
    try:
        with open(path, "rb+") as journal:
            journal.seek(-1, os.SEEK_END)
            if journal.read(1) == b"\n":
                return False
            journal.seek(0)
            data = journal.read()
            journal.truncate(data.rfind(b"\n") + 1)
            return True
    finally:
        lock.release()


def retry_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Stale-trial callback: enqueue a WAITING copy of a dead trial's unit (Optuna's
    RetryHeartbeatStaleTrialCallback, less the run-time attrs of the dead attempt)."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={**_plan_attrs(trial), "retry_of": trial.number},
    ))


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
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
    previous = study.user_attrs.get("ablations.sampler")
    if previous is not None and previous != spec.search.sampler:
        raise SearchError(f"study {spec.name!r} in this storage is a {previous} search and {spec.source} asks "
                          f"for {spec.search.sampler}; give the study a new name or use another --storage")
    return study, False


def mark_ready(study: optuna.Study, units: int, parent_run_id: str | None) -> None:
    if parent_run_id:
        study.set_user_attr("ablations.mlflow_parent_run_id", parent_run_id)
    study.set_user_attr("ablations.units", units)
    study.set_user_attr(READY_ATTR, True)


def wait_until_ready(study: optuna.Study, timeout_s: float) -> bool:
    """Wait for the creator to finish enqueueing; False if it did not within timeout_s (it died)."""
    deadline = time.monotonic() + timeout_s
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def plan_attrs(planned: PlannedTrial) -> dict[str, Any]:
    return {
        "unit": planned.unit,
        "cell": planned.cell.id,
        "seed": planned.seed,
        "varied": planned.varied,
        "pair": list(planned.cell.pair) if planned.cell.pair else None,
        "run_name": planned.run_name,
        "config": planned.config.to_plain(),
    }


def _plan_attrs(trial: FrozenTrial) -> dict[str, Any]:
    attrs = {key: trial.user_attrs[key] for key in PLAN_ATTRS if key in trial.user_attrs}
    attrs["unit"] = unit_of(trial)
    return attrs


def unit_of(trial: FrozenTrial) -> str:
    return trial.user_attrs.get("unit") or f"trial-{trial.number}"


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


def prepare(study: optuna.Study, spec: StudySpec, *, retry_failed: bool = False) -> Prepared:
    """Resume: fail dead trials, refuse a changed configuration, and enqueue every unit that has no
    trial waiting, running or done (new seeds or cells, interrupted trials, --retry-failed)."""
    failed = fail_stale(study)
    trials = study.get_trials(deepcopy=False)
    planned = spec.trials() if spec.search.sampler == "grid" else []
    _check_drift(spec, planned, trials)
    covered = {unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or is_done(t, retry_failed)}
    enqueued = 0
    for unit in planned:
        if unit.unit not in covered:
            study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=plan_attrs(unit)))
            covered.add(unit.unit)
            enqueued += 1
    # Units known only from trials (sampled ones, or cells since removed from the file) come back too.
    enqueued += requeue_orphans(study, retry_failed)
    units = len({unit_of(t) for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("duplicate_of")})
    if spec.search.n_trials:
        units = max(units, spec.search.n_trials)
    done = len({unit_of(t) for t in study.get_trials(deepcopy=False) if is_done(t)})
    return Prepared(units=units, done=done, enqueued=enqueued, failed_stale=failed)


def enqueue_plan(study: optuna.Study, spec: StudySpec) -> int:
    """The creator's first enqueue: every planned unit, in plan order."""
    planned = spec.trials() if spec.search.sampler == "grid" else []
    study.add_trials([optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=plan_attrs(p))
                      for p in planned])
    return len(planned)


def _check_drift(spec: StudySpec, planned: list[PlannedTrial], trials: list[FrozenTrial]) -> None:
    """A trial done with another configuration than the file now gives its values would mix two
    studies under one name (say train.epochs changed): refuse to resume. Places (PLACE_KEYS) may differ."""
    by_unit = {p.unit: p.config for p in planned}
    for trial in trials:
        attrs = trial.user_attrs
        if not is_done(trial) or "config" not in attrs or "varied" not in attrs:
            continue
        expected = by_unit.get(unit_of(trial))
        if expected is None:  # a sampled trial, or a cell since removed from the file
            values = {key: coerce_value(key, value, spec.source, key)
                      for key, value in attrs["varied"].items() if key != SEED_KEY}
            expected = spec.config_for(values, attrs["varied"].get(SEED_KEY, spec.seeds[0]))
        before = {k: v for k, v in _flat_plain(attrs["config"]).items() if k not in PLACE_KEYS}
        now = {k: v for k, v in flat_config(expected).items() if k not in PLACE_KEYS}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            examples = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:3])
            raise SearchError(
                f"study {spec.name!r} already ran {unit_of(trial)!r} with another configuration ({examples}); "
                f"give the study a new name, or remove runs/{spec.name} (or the --storage study) to start over")


def _flat_plain(plain: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{name}": value for section, fields in plain.items() for name, value in fields.items()}


def requeue_orphans(study: optuna.Study, retry_failed: bool = False) -> int:
    """Enqueue a WAITING copy of every unit whose last trial ended FAIL without an error and that has no
    trial waiting, running or done: a worker died between failing a dead trial and enqueueing its copy,
    or a worker was interrupted. Returns how many were enqueued."""
    trials = study.get_trials(deepcopy=False)
    covered = {unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or is_done(t, retry_failed)}
    latest: dict[str, FrozenTrial] = {}
    for trial in trials:
        if not trial.user_attrs.get("duplicate_of"):
            latest[unit_of(trial)] = trial
    orphans = [t for unit, t in latest.items() if unit not in covered and t.state == TrialState.FAIL]
    for trial in orphans:
        retry_stale_trial(study, trial)
    return len(orphans)


def fail_stale(study: optuna.Study) -> list[int]:
    """Optuna's fail_stale_trials; returns the numbers of the trials it failed (dead workers)."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(running - still)


# ----------------------------------------------------------------------------------------------------
# Claiming work


@dataclass
class Claim:
    trial: optuna.Trial
    attrs: dict[str, Any]  # the plan attrs: unit, cell, seed, varied, pair, config, checkpoint

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def run_name(self) -> str:
        return self.attrs["run_name"]

    @property
    def varied(self) -> dict[str, Any]:
        return self.attrs["varied"]


def claim_next(study: optuna.Study, spec: StudySpec) -> Claim | None:
    """A trial this process now owns, or None when nothing is waiting (and, for tpe/random, the
    budget of n_trials units is spent)."""
    storage = study._storage  # Optuna's own pop (Study._pop_waiting_trial_id) works on the storage
    beats = hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval()
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            # A heartbeat before the claim: RDBStorage never declares dead a RUNNING trial that has
            # none, so a worker killed between its claim and its first beat (or a claim committed
            # whose answer was lost) would otherwise hold the cell forever. A losing claimer's beat
            # on a trial that someone else runs is harmless: that one beats too.
            if beats:
                storage.record_heartbeat(frozen._trial_id)
            if not storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                continue  # another process popped it first
        except UpdateFinishedTrialError:
            continue
        try:
            claim = _own(study, optuna.Trial(study, frozen._trial_id), spec)
        except UpdateFinishedTrialError:  # declared dead or a duplicate by another process meanwhile
            continue
        if claim is not None:
            return claim
    if spec.search.sampler == "grid":
        return None
    units = {unit_of(t) for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("duplicate_of")}
    if len(units) >= spec.search.n_trials:
        return None
    # With several workers the budget can be overshot by at most workers - 1 trials, as with
    # Optuna's own MaxTrialsCallback.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "heartbeat is supposed to be used with optimize"
        trial = study.ask()
    return _own(study, trial, spec)


def _own(study: optuna.Study, trial: optuna.Trial, spec: StudySpec) -> Claim | None:
    """First steps after a claim: heartbeat, the duplicate check, and for sampled studies the sample."""
    storage = study._storage
    if hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial._trial_id)  # before anything can die: RDB ignores unbeaten trials
    frozen = storage.get_trial(trial._trial_id)
    unit = unit_of(frozen)
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or unit_of(other) != unit:
            continue
        if is_done(other) or (other.state == TrialState.RUNNING and other.number < trial.number):
            trial.set_user_attr("duplicate_of", other.number)
            study.tell(trial, state=TrialState.FAIL)
            return None
    attrs = dict(frozen.user_attrs)
    if "config" not in attrs:  # a fresh tpe/random trial (or the retry of one that died unsampled)
        try:
            values = {key: suggest(trial, param) for key, param in spec.search.params.items()}
        except ValueError as error:  # Optuna: a parameter's distribution changed since the study began
            study.tell(trial, state=TrialState.FAIL)
            raise SearchError(f"{spec.source}: search.params no longer match study {spec.name!r} "
                              f"({_one_line(error)}); give the study a new name") from None
        seed = spec.seeds[0]
        config = spec.config_for(values, seed)
        attrs.update(unit=unit, cell=" ".join(f"{k}={format_value(v)}" for k, v in values.items()),
                     seed=seed, varied=varied_plain(values, seed), pair=None, run_name=run_name(values, seed),
                     config=config.to_plain())
    if "checkpoint" not in attrs:
        attrs["checkpoint"] = f"trial-{trial.number}"
    attrs["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    for key in PLAN_ATTRS + ("worker",):
        if frozen.user_attrs.get(key) != attrs.get(key):
            trial.set_user_attr(key, attrs.get(key))
    return Claim(trial, attrs)


def suggest(trial: optuna.Trial, param) -> Any:
    """Sample one ParamSpec. Categorical choices that are not scalars (pipelines) go to Optuna as
    JSON strings, so optuna-dashboard shows them, and come back decoded."""
    if param.type == "float":
        return trial.suggest_float(param.key, param.low, param.high, log=param.log)
    if param.type == "int":
        return trial.suggest_int(param.key, param.low, param.high, step=param.step or 1, log=param.log)
    encoded = [_encode_choice(c) for c in param.choices]
    picked = trial.suggest_categorical(param.key, encoded)
    return param.choices[encoded.index(picked)]


def _encode_choice(value: Any) -> Any:
    plain = plain_value(value)
    if plain is None or isinstance(plain, (bool, int, float, str)):
        return plain
    return json.dumps(plain, separators=(",", ":"))


def finish(study: optuna.Study, claim: Claim, *, value: float | None = None, state: TrialState,
           attrs: dict[str, Any] | None = None) -> bool:
    """Record a trial's end; False if another process had already declared it dead (its result is
    then dropped: the retried copy is the one that counts)."""
    try:
        for key, item in (attrs or {}).items():
            claim.trial.set_user_attr(key, item)
        study.tell(claim.trial, value if state == TrialState.COMPLETE else None, state=state)
        return True
    except UpdateFinishedTrialError:
        # Finished already: by another process that declared it dead, or by this very call, when the
        # database committed it but its answer was lost and the retry found the trial finished.
        recorded = study._storage.get_trial(claim.trial._trial_id)
        return recorded.state == state and "duplicate_of" not in recorded.user_attrs and \
            (state != TrialState.COMPLETE or recorded.value == value)


class Heartbeat:
    """Records the trial's heartbeat every interval in a daemon thread while training runs."""

    def __init__(self, study: optuna.Study, trial_id: int):
        self._storage = study._storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interval = self._storage.get_heartbeat_interval() if hasattr(self._storage, "get_heartbeat_interval") else None
        self.interval = interval

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except UpdateFinishedTrialError:
                return  # declared dead by another process; finish() will notice
            except Exception:  # a storage hiccup: the next beat retries
                continue

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            # Short: a beat waiting out a lost storage (stores.retry) need not hold up this worker;
            # the thread is a daemon and records nothing once the trial has ended.
            self._thread.join(timeout=5)


# ----------------------------------------------------------------------------------------------------
# Reading the study back (progress, summary)


def work_left(study: optuna.Study, spec: StudySpec) -> tuple[int, int]:
    """(waiting, running) trial counts."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return waiting, len(trials) - waiting


def units_done(study: optuna.Study) -> int:
    return len({unit_of(t) for t in study.get_trials(deepcopy=False) if is_done(t)})


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + ("..." if len(text) > 300 else "") or type(error).__name__
