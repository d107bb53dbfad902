"""Opening Optuna storages: a journal file, SQLite or PostgreSQL, each with heartbeats (for finding
trials whose process died) and each safe for many workers at once.

- `*.journal` (the default, one machine or a shared file system): `HeartbeatJournalStorage`, Optuna's
  journal storage plus heartbeats, which Optuna 5 gives only to RDB storages. A heartbeat is a trial
  system attr holding the wall-clock time, so processes sharing a journal must share a clock (one
  machine, or NFS between NTP-synchronised hosts). `repair_journal` first cuts a line torn by a
  process killed mid-append.
- `sqlite:///...`, `postgresql://...`: `RetryingRDBStorage`, Optuna's RDBStorage (heartbeats built
  in, on the database's clock) whose every call is retried through a lost connection
  (`errors.retry`): a database restart pauses the workers and they carry on. A retried call repeats
  a transaction that was rolled back, so nothing is recorded twice. Workers started at the same
  instant on a new PostgreSQL database create Optuna's tables under an advisory lock
  (`_schema_lock`); SQLite transactions are serialised so that claiming a trial is atomic there too.

While a trial trains, `Heartbeat` records its heartbeat every interval in a thread. What to do with a
dead trial is the caller's `stale_trial_callback` (`resume.retry_stale_trial`).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from ablations.stores.optuna_private import RDB_BACKEND_CALLS
from ablations.messages import remember_secrets
from ablations.stores.errors import (
    CONNECT_TIMEOUT_S, SearchError, StoreCannotWrite, check_storage, describe, is_disk_error, mask_url, retry,
)

HEARTBEAT_ATTR = "ablations:heartbeat"
StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage):
    """Optuna's journal storage with heartbeats: the methods RDBStorage has for them
    (`record_heartbeat`, `get_heartbeat_interval`, `get_heartbeat_stale_trial_callback`) and
    `fail_stale_trials`, which does for a journal what `optuna.storages.fail_stale_trials` does for
    an RDB storage, so that trials whose process died (kill -9, power loss) are found here too.
    Built on public storage methods only, not on Optuna's private heartbeat interface."""

    def __init__(self, backend: JournalFileBackend, heartbeat_interval: int, grace_period: int | None = None,
                 stale_trial_callback: StaleTrialCallback | None = None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or 2 * heartbeat_interval
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleTrialCallback | None:
        return self.stale_trial_callback

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose last heartbeat is older than the grace period."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # A trial claimed but killed before its first heartbeat counts from its start.
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            if last is not None and now - last > self.grace_period:
                stale.append(self.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        return stale

    def fail_stale_trials(self, study: optuna.Study) -> None:
        """FAIL every stale trial of the study, then call the stale-trial callback on each this
        process failed: the journal accepts only the first FAIL written for a trial and raises
        UpdateFinishedTrialError in every other process, so one process alone makes the retry."""
        failed = []
        for trial_id in self.stale_trial_ids(self.get_study_id_from_name(study.study_name)):
            try:
                if self.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    failed.append(trial_id)
            except UpdateFinishedTrialError:  # another process failed it first
                pass
        if self.stale_trial_callback is not None:
            for trial_id in failed:
                self.stale_trial_callback(study, copy.deepcopy(self.get_trial(trial_id)))


class Heartbeat:
    """Records the trial's heartbeat every interval in a daemon thread while training runs:
    `with Heartbeat(storage, trial_id):`, or `with claim.heartbeat():` (search.Claim)."""

    def __init__(self, storage: BaseStorage, trial_id: int):
        self.storage = storage
        self.trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = heartbeat_interval_of(self.storage)

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except UpdateFinishedTrialError:
                return  # declared dead by another process; finish() will notice
            except Exception:  # a storage hiccup: the next beat retries
                continue

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            # Short: a beat waiting out a lost storage (errors.retry) need not hold up this worker;
            # the thread is a daemon and records nothing once the trial has ended.
            self._thread.join(timeout=5)


def record_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    """One heartbeat of the trial, where the storage keeps them."""
    if heartbeat_interval_of(storage):
        storage.record_heartbeat(trial_id)


def heartbeat_interval_of(storage: BaseStorage) -> int | None:
    """The storage's heartbeat interval; None where it keeps no heartbeats (an in-memory storage)."""
    return storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None


def open_storage(url: str | None, default_path: Path, heartbeat_interval: int, grace_period: int | None = None,
                 retry_for: float | None = None, *, stale_trial_callback: StaleTrialCallback | None = None
                 ) -> BaseStorage:
    """`--storage`: None -> a journal file at default_path; `*.journal` -> that journal file;
    anything else -> an SQLAlchemy URL (sqlite:///optuna.db, postgresql://user:password@host/db),
    connected to once here so that a wrong URL, host or password is one clear error before any training.
    `stale_trial_callback(study, trial)` is called on each trial this process finds dead."""
    if heartbeat_interval < 1:
        raise SearchError(f"--heartbeat-interval: {heartbeat_interval} is not allowed; expected seconds >= 1")
    if url is None or url.endswith(".journal"):
        # Absolute: Optuna's lock is a symlink to this path, and a relative target dangles, which
        # leaves a lock held by a killed process unbreakable (waiters spin forever; seen here).
        path = (Path(url) if url else default_path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(path)
        check_journal(path)
        return HeartbeatJournalStorage(JournalFile(path), heartbeat_interval, grace_period,
                                       stale_trial_callback=stale_trial_callback)
    return _open_database(url, heartbeat_interval, grace_period, retry_for, stale_trial_callback)


def _open_database(url: str, heartbeat_interval: int, grace_period: int | None, retry_for: float | None,
                   stale_trial_callback: StaleTrialCallback | None) -> RetryingRDBStorage:
    """An SQLAlchemy URL's RDBStorage, connected to once; SearchError naming the URL, password masked."""
    remember_secrets(url)
    shown = mask_url(url)
    check_storage(url)
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
                                         grace_period=grace_period, heartbeat_stale_trial_callback=stale_trial_callback,
                                         retry_for=retry_for, label=f"Optuna storage {shown}")
    except Exception as error:  # refused connections, unknown hosts, wrong passwords, missing databases
        raise SearchError(f"--storage {shown}: cannot connect: {describe(error)}") from None
    if sqlite:
        _serialize_sqlite_transactions(storage.engine)
    return storage


class RetryingRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose calls are retried through a lost connection (`errors.retry`, transient
    errors only: a finished trial or a duplicated study is raised at once), for at most `retry_for`
    seconds. Each wrapped method is one transaction of its own, rolled back when the connection
    drops, so repeating it records nothing twice."""

    def __init__(self, url: str, *, retry_for: float | None, label: str, **kwargs: Any):
        self.retry_for = retry_for
        self.label = label
        super().__init__(url, **kwargs)


# The RDBStorage methods that open their own session, and (optuna_private) the private ones that
# Optuna's _CachedStorage calls on it directly. Helpers that work inside a caller's session
# (`*_without_commit`) must not be retried on their own.
RETRIED_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_param",
    "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_trial_id_from_study_id_trial_number", "get_trial",
    "get_all_trials", "get_best_trial", "record_heartbeat",
) + RDB_BACKEND_CALLS


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
    tests/test_run_workers.py). Starting every transaction with BEGIN IMMEDIATE takes SQLite's write lock
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


def check_journal(path: Path) -> None:
    """A line damaged in the middle of a journal (an editor, a bad copy) stops Optuna's reader with a JSON
    error on every open; say which line, and leave the file as it is: the lines after it are the rest of
    the study's record."""
    if not path.exists():
        return
    with open(path, "rb") as journal:
        for number, line in enumerate(journal, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                raise SearchError(
                    f"Optuna journal {path}: line {number} is damaged (not one JSON record); keep a copy of the "
                    "file, then fix or delete that line (every other line is still the study's record), or start "
                    "over with another --storage") from None


class JournalFile(JournalFileBackend):
    """Optuna's journal file, whose appends a full (or read-only) disk refuses with one message naming the
    file, instead of Optuna's bare "[Errno 28] No space left on device"."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            super().append_logs(logs)
        except OSError as error:
            if not is_disk_error(error):
                raise
            # The write may have stopped mid-line; another worker's next line would then follow a torn
            # one, which Optuna's reader refuses with everything after it. Cutting it frees, not takes, space.
            try:
                repair_journal(self.path)
            except OSError:
                pass  # the next start repairs it (open_storage)
            raise StoreCannotWrite(f"Optuna journal {self.path}", error, self.path) from error


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
