"""Atomic file writes: a temp file in the target folder, fsync, then rename over the target.

A kill at any moment leaves either the old file or the complete new one, never half a file; a
``kill -9`` can leave a hidden temp file ``.<name>.<8 hex>.tmp`` behind (remove_stale_temps).
Also here: the guards that keep outputs from overwriting inputs (``file_ids`` / ``is_one_of``)
or from landing where a rerun would read them as inputs (``check_output_outside``), and
``output_folder``, which removes an output folder that a failed command left empty, and
``json_safe``, the one NaN policy of the JSON files endoxai writes (NaN is written as null), and
``read_json``, which reads them back with one clear error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from endoxai.errors import UserError

log = logging.getLogger(__name__)

_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically; OS failures (disk full, no permission) -> UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with mode 0o666 honours the umask (mkstemp would force 0o600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8; file names that are not valid UTF-8 (surrogate escapes) keep their original bytes."""
    atomic_write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def json_safe(value: Any) -> Any:
    """``value`` with NaN as None (JSON has no NaN: strict readers refuse it), numpy scalars as
    Python numbers and tuples as lists, through nested dicts and lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def read_json(path: str | Path, what: str, keys: Iterable[str] = (),
              kind: str | None = None) -> Any:
    """The JSON in ``path``. UserError naming ``what`` (e.g. "split file") when it is missing or
    unreadable, and, with ``keys``, when it is not an object holding them: "not a ``kind``"
    (default: the file's name)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"{what} not found: {path}") from err
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read {what} ({err})") from err
    keys = list(keys)
    if keys and (not isinstance(data, dict) or not set(keys) <= data.keys()):
        raise UserError(f"{path}: not a {kind or path.name} (needs {', '.join(keys)})")
    return data


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files a killed atomic write left directly in ``folder``; returns them.

    Only call this on a folder no other process is writing to (a locked run folder).
    """
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if _TEMP.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temp file(s) left by an interrupted write in %s", len(removed), folder)
    return removed


def file_ids(paths: Iterable[str | Path]) -> frozenset[tuple[int, int]]:
    """(device, inode) of every existing file in ``paths``: identifies a file whatever the path
    spelling (symlinks, ``..``, hard links, case-insensitive file systems)."""
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return frozenset(ids)


def is_one_of(path: str | Path, ids: frozenset[tuple[int, int]]) -> bool:
    """True if ``path`` exists and is one of the files in ``ids`` (see file_ids)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in ids


def check_output_outside(output: str | Path, inputs: str | Path, flag: str = "--output") -> None:
    """UserError when ``inputs`` is a folder and ``output`` is that folder or inside it: a rerun
    would list the files written there as new inputs (masks of masks). A single input file may
    share its folder with the outputs."""
    source = Path(inputs).expanduser()
    if not source.is_dir():
        return
    source, target = source.resolve(), Path(output).expanduser().resolve()
    if target == source or source in target.parents:
        where = ("is the input folder" if target == source
                 else f"is inside the input folder {source}")
        raise UserError(f"{flag} {output} {where}: a rerun would read the files written there as "
                        "new inputs; choose a folder outside it")


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Create ``path`` (with its parents) for a command's outputs; when the command ends, remove
    again every folder this call created that is still empty (a failed or interrupted command, or
    one whose every input failed, leaves no empty folder behind). UserError if it cannot be made.
    """
    path = Path(path).expanduser()
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {path}: {err.strerror or err}") from err
    try:
        yield path
    finally:
        for folder in created:  # deepest first; rmdir only removes an empty folder
            try:
                folder.rmdir()
            except OSError:
                break
