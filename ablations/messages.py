"""What the harness says to people: one-line errors, durations, exit statuses, and the wrapper that
turns a command's known errors into one line and an exit status (never a traceback).

Both commands (`python -m ablations.run`, `python -m ablations.report`) and the search and tracking
modules format through here, so a message reads the same wherever it is printed or recorded.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from urllib.parse import unquote, urlsplit

# Passwords seen in store URLs, taken out of everything the harness says or records (`redact`).
_secrets: set[str] = set()

EXIT_BAD_INPUT = 2  # a study file, flag, data set or store the command cannot use
EXIT_STORE_LOST = 75  # EX_TEMPFAIL: a store stopped answering; try again later
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


def exit_with(status: int) -> None:
    """End a command with `status`; after an interruption (130), one that cannot turn into a SIGINT.

    Not `sys.exit(130)` then: CPython (3.11, and gh-128130 keeps it so in 3.14) remembers a
    KeyboardInterrupt that escaped code it ran through its C API, `exec` of a string among them, and at
    exit ends the process by SIGINT (status -2) whatever the status asked for. Imports run such code
    (dataclasses builds each `__repr__` with `exec`), so a Ctrl-C landing in an import, caught and said in
    the command's one line, ended about 1 start in 8 with -2 on a loaded machine. What a normal exit does
    (threads joined, exit handlers run, streams flushed) is done here, then os._exit."""
    if status != EXIT_INTERRUPTED:
        sys.exit(status)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while the stores' clients close waits
    # As the interpreter's own exit: the thread pools' exit hooks first (concurrent.futures tells its idle
    # workers to stop: torch.compile leaves one, which a bare join would wait on for ever), then the
    # non-daemon threads joined, then the exit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()  # MLflow's and torch's own exit handlers
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def one_line(error: BaseException, *, limit: int = 300, with_type: bool = False) -> str:
    """The error's message on one line, without passwords, cut at `limit` characters; the exception's
    class name where the message is empty (or always, with `with_type`, for records of failures)."""
    text = redact(" ".join(str(error).split()))
    if with_type or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:limit] + ("..." if len(text) > limit else "")


def duration(seconds: float) -> str:
    """`4.2 s`, `38 s`, `12.5 min`, `3.10 h`; `n/a` for a missing value."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


# What a person can do about a file-system error, by errno.
DISK_ADVICE = {
    errno.EACCES: "this user may not write there (permissions); choose another folder or make it writable",
    errno.EPERM: "this user may not write there; choose another folder or make it writable",
    errno.EROFS: "the file system is read-only; choose a folder on a writable one",
    errno.ENOSPC: "the disk is full; free space and run the same command again (what was recorded is kept)",
    errno.EDQUOT: "the disk quota is used up; free space and run the same command again (what was recorded is kept)",
    errno.ENOTDIR: "a file is in the way of a folder; move it or choose another folder",
    errno.EEXIST: "a file is in the way of a folder; move it or choose another folder",
}


def describe_os_error(error: OSError) -> str:
    """`<path>: <what happened>; <what to do>` for a file-system error that names a path."""
    what = error.strerror or type(error).__name__
    where = f"{error.filename}" + (f" -> {error.filename2}" if error.filename2 else "")
    advice = DISK_ADVICE.get(error.errno)
    return f"{where}: {what}" + (f"; {advice}" if advice else "")


@contextmanager
def writing_to(path: str | os.PathLike) -> Iterator[None]:
    """An OSError raised in the block that names no file is raised again naming `path`: a full disk says
    only "[Errno 28] No space left on device" when a write (not an open) fails, from pyarrow, matplotlib
    and Python's own files alike."""
    try:
        yield
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise OSError(error.errno, os.strerror(error.errno), os.fspath(path)) from error


def print_error(error: BaseException) -> None:
    """`error: ...` on standard error, one line whatever the message ("Looked at:\\n  - path" lists
    become "Looked at: - path"), without passwords; a file-system error as its path, what happened and
    what to do about it."""
    text = describe_os_error(error) if isinstance(error, OSError) and error.filename else str(error)
    print("error: " + redact(" ".join(line.strip() for line in text.splitlines() if line.strip())), file=sys.stderr)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None,
                body: Callable[[argparse.Namespace], int],
                exits: Mapping[type[BaseException], int]) -> int:
    """Parse argv and run body(args); an error of a type in `exits` prints one line and returns its
    status. argparse's own usage errors keep argparse's message and status."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    try:
        return body(args)
    except tuple(exits) as error:
        print_error(error)
        return next(status for kind, status in exits.items() if isinstance(error, kind))


def remember_secrets(*urls: str | None) -> None:
    """Remember the passwords in these URLs, for `redact` to take out of any text."""
    for url in urls:
        try:
            password = urlsplit(url).password if url else None
        except ValueError:
            password = None
        if password:
            _secrets.update({password, unquote(password)})


def redact(text: str) -> str:
    """The text with every remembered password replaced by ***."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
