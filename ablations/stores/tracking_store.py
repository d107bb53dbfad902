"""Reaching an MLflow tracking store before the study's records are touched: which URIs name a store (checked
without importing MLflow, so that a bad --tracking-uri is refused on the light path) and opening an SQLite
store safely (its schema made by one process at a time, interrupts held meanwhile, a read-only file refused).
`tracking.Tracker` opens its store here."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.messages import remember_secrets
from ablations.stores.errors import StoreReplaced, mask_url, sqlite_path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which and why."""


def resolve_tracking_uri(cli_value: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else MLflow 3's own default, sqlite:///mlflow.db;
    TrackingError for one that names no store MLflow can open (checked without importing MLflow)."""
    if cli_value is not None and not cli_value.strip():  # '' read as "the default" before, silently
        raise TrackingError(f"--tracking-uri: {cli_value!r} is not allowed; {TRACKING_EXPECTED} (leave the flag "
                            f"out for $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})")
    uri = cli_value or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    check_tracking_uri(uri, "--tracking-uri" if cli_value else "MLFLOW_TRACKING_URI")
    return uri


# What MLflow opens as a study's tracking store: its database stores (SQLAlchemy URLs, where a driver may
# follow the dialect, postgresql+psycopg://) and its tracking server. MLflow 3 opens no file stores, so a
# path (or file://) is none either; MLflow's own words for both ("KeyError: 'foo'", a text on migrating
# file stores) never say so.
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")
TRACKING_EXPECTED = ("expected sqlite:///path/mlflow.db, http://host:port (an `mlflow server`) or "
                     "postgresql://user:password@host/database")


def check_tracking_uri(uri: str, source: str = "--tracking-uri") -> None:
    """TrackingError naming `source` and the URI (password masked) unless its scheme is a store's."""
    scheme, sep, _ = uri.partition("://")
    scheme = scheme.split("+", 1)[0].lower() if sep else uri.lower()
    if scheme in TRACKING_SCHEMES:
        return
    remember_secrets(uri)
    if not sep or scheme == "file":
        hint = f" (an SQLite store there is sqlite:///{uri})" if uri.endswith(".db") else ""
        raise TrackingError(f"{source} {mask_url(uri)}: a path is not a tracking store (MLflow 3 opens no file "
                            f"stores){hint}; {TRACKING_EXPECTED}")
    raise TrackingError(f"{source} {mask_url(uri)}: unknown scheme {scheme!r}; {TRACKING_EXPECTED}")


def open_sqlite_store(uri: str) -> Any:
    """An MlflowClient on an SQLite store, its schema created (or migrated) by one process at a time.

    MLflow creates the tables when a store is first opened, and two processes doing that at once race in
    its migrations ("Online migration expected to match one row", "table _alembic_tmp_tags already
    exists"); the loser dies and can leave the file half-migrated for good. An exclusive lock on a file
    beside the database serialises the opening; later processes find the schema current and wait only
    for the lock. A store already left half-migrated (alembic's temporary tables still there, seen under
    the lock, so not another process's migration in flight) is reported, not touched: those tables may
    hold the only copy of a table's rows."""
    from mlflow import MlflowClient

    path = Path(sqlite_path(uri)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_writable(path)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists():
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                    leftovers = [row[0] for row in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '_alembic_tmp_%'")]
                if leftovers:
                    raise TrackingError(
                        f"MLflow store {path} was left half-migrated by an interrupted schema update (tables "
                        f"{', '.join(leftovers)}); back it up, then run `mlflow db upgrade sqlite:///{path}` or "
                        "start from a new file (--tracking-uri sqlite:///other.db)")
            # Ctrl-C (or SIGTERM) in the middle of the schema's creation left the file half-migrated for
            # good (seen: a first start interrupted at 9 s); the signal waits until the schema is whole.
            with _interrupts_held():
                client = MlflowClient(uri)
                client.search_experiments(max_results=1)  # creates or migrates the schema, under the lock
            return client
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _interrupts_held:
    """SIGINT and SIGTERM held while the block runs, then given to the handler the caller had (a Ctrl-C
    raises its KeyboardInterrupt as the block ends). Python runs signal handlers in the main thread
    whichever thread the signal reached, so replacing the handlers holds them there (blocking the signal
    would hold it in one thread only); elsewhere than the main thread nothing is held."""

    def __enter__(self) -> _interrupts_held:
        self.received: list[int] = []
        self.previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(signum) is not None:  # None: a handler not set from Python, left alone
                    self.previous[signum] = signal.signal(signum, lambda number, frame: self.received.append(number))
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.received:
            signum = self.received[0]
            handler = self.previous[signum]
            if callable(handler):
                handler(signum, None)  # Python's own for SIGINT: KeyboardInterrupt, here
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


@dataclass(frozen=True)
class StoreFile:
    """An SQLite store's file as it was opened (device and inode), to tell when another file takes its place
    under the same name: SQLite itself notices only a file deleted or moved, not one put in its stead."""

    path: str
    identity: tuple[int, int]

    @classmethod
    def of(cls, uri: str) -> StoreFile | None:
        """The store's file now; None for a store that is not an SQLite file."""
        path = sqlite_path(uri)
        if path is None:
            return None
        stat = os.stat(os.path.expanduser(path))
        return cls(path, (stat.st_dev, stat.st_ino))

    def check(self, store: str) -> None:
        """StoreReplaced where another file now has this one's name."""
        try:
            stat = os.stat(os.path.expanduser(self.path))
        except FileNotFoundError:
            return  # deleted: the next write fails and says so (stores.StoreCannotWrite)
        if (stat.st_dev, stat.st_ino) != self.identity:
            raise StoreReplaced(store, self.path)


def _check_writable(path: Path) -> None:
    """A study writes every trial to its store, and SQLite writes beside the file too (its journal, and
    here the lock): a store this user may only read is refused now, naming it and the ways out, not met
    as a PermissionError on mlflow.db.lock or as a failed write after the first trial."""
    lock = path.with_name(path.name + ".lock")
    blocked = next((p for p in (path, lock) if p.exists() and not os.access(p, os.W_OK)), None)
    if blocked is None and not os.access(path.parent, os.W_OK):
        blocked = path.parent
    if blocked is not None:
        raise TrackingError(
            f"MLflow store {path} is read-only for this user ({blocked} cannot be written): a study records every "
            "trial there; make it writable (or run as its owner), or give another --tracking-uri "
            "(sqlite:///other/mlflow.db)")
