"""Signals while trials run: Ctrl-C (SIGINT) and SIGTERM end the running trial as a KeyboardInterrupt,
raised again until the trial has handled it, and a second Ctrl-C waits while a trial's end is recorded.

Used by the in-process runner and by the parent of worker processes (`ablations.run.workers`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Union

from ablations.stores.errors import store_call

# What signal.signal returns: a handler function, SIG_DFL/SIG_IGN, or None (not set from Python).
Handler = Union[Callable[[int, Union[FrameType, None]], Any], int, signal.Handlers, None]

# Seconds between raising an unhandled interrupt again: time enough for the trial's own clean-up to
# reach its handler.
RAISE_AGAIN_AFTER_S = 2.0


class interrupts:
    """Ctrl-C (SIGINT) and SIGTERM (a scheduler stopping the job) raise KeyboardInterrupt, which ends
    the running trial; until the trial's handler calls `handled()`, the signal is raised again every
    two seconds (time enough for the trial's own clean-up to reach its handler).

    Why again: Python prints a KeyboardInterrupt raised inside a weakref callback or a __del__ as
    "Exception ignored" and carries on, so one Ctrl-C can be lost. torch.compile's caches (the compiled
    colour kernel) run such callbacks; a Ctrl-C during a compile was lost in about 1 of 20 tries.
    """

    pending = False
    active = 0  # contexts open: a raise-again timer that fires after the last has closed does nothing

    def __enter__(self) -> interrupts:
        interrupts.active += 1
        self._previous: dict[int, Handler] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._raise)
            except ValueError:  # not the main thread
                pass
        return self

    @classmethod
    def _raise(cls, signum: int, frame: FrameType | None) -> None:
        cls.pending = True
        timer = threading.Timer(RAISE_AGAIN_AFTER_S, cls._again, args=(signum,))
        timer.daemon = True
        timer.start()
        if store_call.active():  # inside a store's client: raised when the call returns (stores.errors)
            store_call.defer()
            return
        raise KeyboardInterrupt

    @classmethod
    def _again(cls, signum: int) -> None:
        # Not once the contexts have closed: the command may be exiting by then, and a signal that lands
        # after Python has restored the default handlers ends the process by SIGINT (status -2) after it
        # printed its one line.
        if cls.pending and cls.active:
            os.kill(os.getpid(), signum)

    @classmethod
    def handled(cls) -> None:
        cls.pending = False

    def __exit__(self, *exc_info: object) -> None:
        # Handlers back first, then the flag: a signal between the two would otherwise set `pending`
        # again after it was cleared.
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        interrupts.active -= 1
        interrupts.handled()


class ignoring_sigint:
    """While a trial's end is being recorded, a second Ctrl-C waits (main thread only)."""

    def __enter__(self) -> ignoring_sigint:
        self._previous: Handler = None
        try:
            self._previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
