"""Graceful stop of training on SIGINT (Ctrl-C) or SIGTERM (``kill``, a batch scheduler).

The first signal only sets ``StopRequest.signum``: the loop finishes the current step, writes a
resumable checkpoint and raises ``Interrupted``. A second signal abandons the work at once
(``Interrupted`` is raised from the handler; an atomic write in progress removes its temp file),
leaving the last complete checkpoint. ``kill -9`` cannot be caught: the last complete checkpoint
is left, since every checkpoint is written atomically.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from endoxai.errors import Interrupted

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager that installs the handlers (main thread only; elsewhere it does nothing)
    and restores the previous ones on exit. ``signum`` is the first signal received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            raise Interrupted(signum, f"second {name}: stopped at once; the last complete "
                                      "checkpoint is kept")
        self.signum = signum
        log.warning("%s received: stopping after the current step and saving a resumable "
                    "checkpoint (send it again to stop at once)", name)
