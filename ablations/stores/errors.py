"""The two stores a study writes to, the Optuna storage and the MLflow tracking store, as seen by a
worker that may share them with many others over a network (PostgreSQL, `mlflow server`).

- Before any training, `check_tracking_server` and `search.open_storage` try the URLs once, with a
  short timeout, and fail with one message that names the URL with its password masked.
- Every call to either store goes through `retry`: a transient failure (connection refused or
  dropped, a server restarting, SQLite's "database is locked", an HTTP 5xx) is retried with
  jittered exponential backoff for at most `retry_for` seconds; past that the worker stops with
  `StoreUnavailable` (exit status 75). Errors that retrying cannot fix are raised at once.
- Each call through `retry` is a `store_call`, during which a Ctrl-C waits for the call to return.
- Passwords found in store URLs are remembered (`messages.remember_secrets`) so that `messages.redact` can
  take them out of anything printed or recorded (error messages end up in MLflow tags).
"""

from __future__ import annotations

import errno
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ablations.messages import redact

# How long a worker retries a store that stopped answering before it gives up (--retry-for).
DEFAULT_RETRY_FOR_S = 120.0
# The startup check of a URL: long enough for a database across a continent, short enough that a
# wrong host is reported before anyone wonders.
CONNECT_TIMEOUT_S = 10
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 4.0
# MLflow error codes that retrying cannot fix.
PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                    "BAD_REQUEST", "PERMISSION_DENIED", "UNAUTHENTICATED"}
# MLflow error codes of a store that is there but cannot answer now (its database is down or locked).
TRANSIENT_ERRORS = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
# PEP 249 names these for lost or refused connections, server shutdowns, deadlocks and locks, in
# every driver (psycopg, sqlite3, pymysql) and in SQLAlchemy's wrappers of them.
TRANSIENT_DB_ERRORS = {"OperationalError", "InterfaceError", "DisconnectionError"}
T = TypeVar("T")


class SearchError(RuntimeError):
    """An Optuna storage or study that this run cannot use; the message says what to do. (Here, with the
    stores' other errors, so that the command line names it without importing Optuna.)"""


class StoreUnavailable(RuntimeError):
    """A store stopped answering for longer than the retry window; what it recorded is safe."""

    def __init__(self, store: str, seconds: float, error: BaseException):
        self.store = store
        super().__init__(
            f"{store} did not answer for {seconds:.0f} s ({describe(error)}); stopping this worker. "
            "Nothing it recorded is lost: rerun the same command once the server is back "
            "(--retry-for sets how long to wait)")


class StoreCannotWrite(StoreUnavailable):
    """A local store's disk refused a write (full, read-only, over a size limit): waiting will not help,
    so the worker stops at once, as it does for a lost server; what was recorded before is intact.
    `path` is the file or folder it was writing, where the error names none (else the SQLite file its
    label's URL names)."""

    def __init__(self, store: str, error: BaseException, path: str | os.PathLike | None = None):
        self.store = store
        database = sqlite_path(store.rsplit(" ", 1)[-1])  # the label ends with the store's URL
        if database is not None and not os.path.exists(os.path.expanduser(database)):
            # SQLite says "readonly database" when its file was deleted under an open connection: the
            # runs it held went with the file, so "nothing is lost" would be false.
            RuntimeError.__init__(
                self, f"{store} cannot write: its file {database} is gone (deleted or moved while the study ran), "
                "and the records it held are gone with it unless it is restored. Stopping this worker; restore "
                "the file and rerun the same command, or rerun with another --tracking-uri to record the study "
                "anew (its Optuna storage keeps the results)")
            return
        # The file the error names is the surest; else the one the caller was writing, else the database.
        path = _filename_in(error) or (os.fspath(path) if path is not None else database)
        if path is not None and is_disk_full(error):
            # "[Errno 28] No space left on device" named no file: say which disk, and what can go.
            RuntimeError.__init__(
                self, f"{store} cannot write: the disk holding {os.path.abspath(os.path.expanduser(path))} is full "
                f"({_free_space(path)} free). Stopping this worker; nothing recorded before is lost: free space "
                "on that disk (finished studies' runs/<study>/ folders, old reports/, MLflow artifacts of runs "
                "you deleted) and rerun the same command to go on where it stopped")
            return
        where = f" ({path})" if path is not None and path not in store else ""
        RuntimeError.__init__(
            self, f"{store}{where} cannot write ({describe(error)}): is its disk full or read-only? Stopping this "
            "worker; nothing recorded before is lost: free space (or make it writable) and rerun the same command")


class StoreReplaced(StoreUnavailable):
    """An SQLite store's file replaced by another file while the study ran (moved over, restored from a
    backup): its pooled connections would write to the old file and new ones to the new, so the worker stops
    before its next call, as for a lost store (its trial runs again on the rerun)."""

    def __init__(self, store: str, path: str):
        self.store = store
        RuntimeError.__init__(
            self, f"{store}: its file {path} was replaced by another file while the study ran; stopping this "
            f"worker before it records anything more. What it recorded before is in the file that was replaced "
            f"(kept only if it was moved, not overwritten), not in the one now at {path}, which holds nothing of "
            "this run; the Optuna storage keeps every finished trial's result. Put the original file back and "
            "rerun the same command, or rerun with another --tracking-uri to record the study anew")


# SQLite's words (sqlite3 and SQLAlchemy repeat them) for a write its file system refused, and the
# errno values of the same from the operating system.
DISK_ERROR_TEXTS = ("database or disk is full", "disk i/o error", "readonly database", "file too large")
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


# The same, for a disk with no space left (or a quota used up) only.
FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(error: BaseException) -> bool:
    """A write refused for want of space (not a read-only or failing disk)."""
    return any((isinstance(link, OSError) and link.errno in FULL_ERRNOS)
               or any(text in str(link).lower() for text in FULL_TEXTS) for link in _chain(error))


def _filename_in(error: BaseException) -> str | None:
    """The file an OSError in the chain names, if any."""
    return next((os.fspath(link.filename) for link in _chain(error)
                 if isinstance(link, OSError) and link.filename is not None), None)


def _free_space(path: str | os.PathLike) -> str:
    """Free space on the file system holding `path` (its nearest existing folder), e.g. `12.0 MB`."""
    import shutil

    folder = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    if free < 1000:
        return f"{free} B"
    for unit in ("kB", "MB"):
        free /= 1000
        if free < 1000:
            return f"{free:.1f} {unit}"
    return f"{free / 1000:.1f} GB"


def is_disk_error(error: BaseException) -> bool:
    """A write the disk refused: waiting for the store to answer again would not help."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in DISK_ERRNOS:
            return True
        if any(text in str(link).lower() for text in DISK_ERROR_TEXTS):
            return True
    return False


# ----------------------------------------------------------------------------------------------------
# URLs and passwords


def check_storage(url: str | None) -> None:
    """`--storage` by its shape, with nothing imported: a path ending in .journal, or a URL with a scheme
    (the database itself is reached later, by optuna_storage.open_storage). SearchError otherwise."""
    if url is None or url.endswith(".journal"):
        return
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise SearchError(f"--storage: {mask_url(url)!r} is neither a path ending in .journal nor a database URL "
                          "(sqlite:///optuna.db, postgresql://user:password@host/db)")


def mask_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db; other URLs unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact(url)
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


SQLITE_PREFIX = "sqlite:///"


def sqlite_path(uri: str) -> str | None:
    """The file of an SQLite store's URI (`sqlite:///runs/mlflow.db` -> `runs/mlflow.db`), as given; None
    for any other store."""
    return uri[len(SQLITE_PREFIX):] if uri.startswith(SQLITE_PREFIX) else None


def store_label(uri: str) -> str:
    """A store's URI as a reader of a report can use it: an SQLite file relative to the working folder
    (`sqlite:///mlflow.db`, `sqlite:///../runs/mlflow.db`) rather than an absolute path on the machine that
    wrote it, a server's URL without its password."""
    path = sqlite_path(uri)
    if path is not None:
        return SQLITE_PREFIX + (os.path.relpath(path) if os.path.isabs(path) else path)
    return mask_url(uri)


def describe(error: BaseException) -> str:
    """The root cause of an error that says something (SQLAlchemy's pool adds an empty one), on one
    line, without passwords or SQLAlchemy's help links."""
    root = error
    for link in _chain(error):
        if str(link).strip("() \n"):
            root = link
    text = " ".join(str(root).split()).split(" (Background on this error at:")[0]
    text = f"{type(root).__name__}: {text}" if text else type(root).__name__
    text = redact(text)
    return text[:300] + ("..." if len(text) > 300 else "")


# ----------------------------------------------------------------------------------------------------
# Retrying


def is_transient(error: BaseException) -> bool:
    """A failure that the same call may not meet again in a few seconds: the store or the network
    to it is down, restarting, overloaded or locked."""
    import requests

    for link in _chain(error):
        if isinstance(link, StoreUnavailable):
            return False
        if getattr(link, "error_code", None) in TRANSIENT_ERRORS:
            return True
        if isinstance(link, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                             requests.exceptions.RetryError, ConnectionError, TimeoutError)):
            return True
        if any(cls.__name__ in TRANSIENT_DB_ERRORS for cls in type(link).__mro__):
            return True
        if getattr(link, "connection_invalidated", False):  # SQLAlchemy: the pool dropped a dead connection
            return True
    return False


class store_call:
    """One call into a store's client, during which a Ctrl-C waits for the call to return.

    MLflow's SQLAlchemy sessions roll back on `Exception` only: a KeyboardInterrupt raised inside one (a
    Ctrl-C landing mid-write) could leave SQLite's write lock held, and the same worker's next write then
    waited 120 s for a lock nobody would release ("database is locked", seen in
    test_ctrl_c_marks_the_trial_and_a_rerun_resumes on a loaded machine). So the run's signal handler
    (`ablations.run.signals`) asks `active()` and, inside a call, only `defer()`s: the interrupt is raised
    when the outermost call returns, at most the call's own timeout later. Counted per thread: signal
    handlers run on the main thread, and only its calls can be interrupted."""

    _local = threading.local()
    _deferred = False

    def __enter__(self) -> store_call:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0 and store_call._deferred:
            store_call._deferred = False
            raise KeyboardInterrupt

    @classmethod
    def active(cls) -> bool:
        return getattr(cls._local, "depth", 0) > 0

    @classmethod
    def defer(cls) -> None:
        cls._deferred = True


def retry(call: Callable[..., T], *args: Any, attempts: int = 6, retry_for: float | None = None,
          store: str = "the store", **kwargs: Any) -> T:
    """call(*args, **kwargs), retried with jittered exponential backoff (0.2 s doubling to 4 s).

    Transient failures (`is_transient`) are retried until `retry_for` seconds (default
    DEFAULT_RETRY_FOR_S) have passed since the first attempt, then StoreUnavailable names `store`.
    MLflow errors that retrying cannot fix (PERMANENT_ERRORS) are raised at once, a write the disk
    refused as StoreCannotWrite (MLflow reports SQLite's "disk is full" as temporary); any other error is
    tried `attempts` times in all (1: raised at once)."""
    retry_for = DEFAULT_RETRY_FOR_S if retry_for is None else retry_for
    started = time.monotonic()
    other_failures = 0
    backoff = FIRST_BACKOFF_S
    lost_since: float | None = None
    while True:
        try:
            with store_call():  # a Ctrl-C waits for the call, not for the retries' pauses
                result = call(*args, **kwargs)
        except Exception as error:
            if getattr(error, "error_code", None) in PERMANENT_ERRORS or isinstance(error, StoreUnavailable):
                raise
            waited = time.monotonic() - started
            if is_disk_error(error):
                raise StoreCannotWrite(store, error) from error
            if is_transient(error):
                if waited >= retry_for:
                    raise StoreUnavailable(store, waited, error) from error
                if lost_since is None:
                    lost_since = time.monotonic()
                    _warn(f"{store} did not answer ({describe(error)}); retrying for up to {retry_for:g} s")
            else:
                other_failures += 1
                if other_failures >= attempts:
                    raise
            pause = min(MAX_BACKOFF_S, backoff) * (0.5 + random.random())
            time.sleep(max(0.0, min(pause, retry_for - waited)))
            backoff *= 2
            continue
        if lost_since is not None:
            _warn(f"{store} answers again after {time.monotonic() - lost_since:.0f} s")
        return result


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it (explicitly or while it was being handled), outermost first."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# The startup check of a tracking server


def check_tracking_server(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """GET <uri>/health of an MLflow tracking server; ValueError with the reason if it does not answer OK."""
    import requests

    parts = urlsplit(uri)
    if not parts.hostname:
        raise ValueError("it names no host (expected http://host:port)")
    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.exceptions.RequestException as error:
        raise ValueError(f"no answer: {describe(error)}") from None
    if response.status_code != 200:
        raise ValueError(f"GET /health answered {response.status_code} {response.reason}: is this an MLflow "
                         "tracking server (mlflow server)?")
