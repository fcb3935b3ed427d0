"""One ``fit`` per run folder at a time: a lock file the OS releases even after ``kill -9``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from endoxai.errors import UserError
from endoxai.fileio import remove_stale_temps

LOCK_FILE = ".lock"  # inside the run folder


def hold(run_dir: Path, held: contextlib.ExitStack) -> None:
    """Lock ``run_dir`` until ``held`` closes (UserError if another fit holds it); then remove the
    temp files of killed writes, which only the lock holder may do."""
    held.enter_context(locked(run_dir))
    remove_stale_temps(run_dir)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released by the OS even after kill -9)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a second fit in one folder is not caught
        yield
        return
    with open(run_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise UserError(f"{run_dir} is in use by another endoxai train") from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
