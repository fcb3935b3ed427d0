"""Exceptions that the CLI turns into one-line messages (no traceback unless --debug)."""

from __future__ import annotations

import signal


class UserError(Exception):
    """A problem the user can fix: bad path, bad config value, unreadable file, ..."""


class ItemError(UserError):
    """One input item (an image, a mask) failed; batch commands report it and go on."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class Interrupted(KeyboardInterrupt):
    """The command was stopped by SIGINT or SIGTERM; the CLI exits with 128 + ``signum``
    (130 for SIGINT, 143 for SIGTERM). ``str(err)`` says what was kept (e.g. the checkpoint)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "") -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.message = message or f"interrupted by {signal.Signals(self.signum).name}"

    def __str__(self) -> str:
        return self.message
