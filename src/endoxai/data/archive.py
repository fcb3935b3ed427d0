"""A read-only view of a dataset folder or archive (zip, tar[.gz]); archive members stay in memory.

Nothing is ever extracted to disk. A folder's files are read from disk when decoded; a zip's
members are read on demand; a tar's members (tar.gz has no random access) are read once into
memory when the archive is opened. An archive *inside* the tree whose name is an image or mask
folder name (Kvasir-Instrument's ``images.tar.gz`` / ``masks.tar.gz``) is opened too and its
members appear where ``tar -xf`` run in that folder would put them.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Union

from endoxai.data.io import IMAGE_SUFFIXES, Source
from endoxai.errors import ItemError, UserError

# Folder names recognised as the image / mask side of a pair, in order of preference. Kept short on
# purpose: each extra name is one more way to pair the wrong folders.
IMAGE_DIRS = ("images", "image", "img", "imgs")
MASK_DIRS = ("masks", "mask", "labels", "label")
SPLIT_FILES = ("train.txt", "val.txt", "test.txt")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_DIR_DEPTH = 3  # a folder is searched this many levels down for images/ + masks/ folders

logger = logging.getLogger(__name__)

_Entry = Union[Path, bytes, str]  # a file on disk, bytes in memory, or a member of the zip


def archive_suffix(name: str) -> str | None:
    """The archive suffix of ``name`` (``.tar.gz``, ``.zip``, ...), or None if it is not one."""
    lower = name.lower()
    longest_first = sorted(ARCHIVE_SUFFIXES, key=len, reverse=True)
    return next((s for s in longest_first if lower.endswith(s)), None)


def _normalise(name: str) -> str | None:
    """Posix member name without ``./``; None for junk (macOS resource forks, hidden, unsafe)."""
    name = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
    parts = name.split("/")
    if name in ("", ".") or ".." in parts or "__MACOSX" in parts:
        return None
    if any(p.startswith(".") for p in parts):
        return None
    return name


def _wanted(name: str) -> bool:
    """Only image/mask folder contents, split lists and nested image/mask archives are kept."""
    parent, base = posixpath.split(name)
    if base.lower() in SPLIT_FILES:
        return True
    if posixpath.basename(parent).lower() in IMAGE_DIRS + MASK_DIRS:
        return posixpath.splitext(base)[1].lower() in IMAGE_SUFFIXES
    return _nested_folder(name) is not None


def _nested_folder(name: str) -> str | None:
    """``a/images.tar.gz`` -> ``images``: the folder an image/mask archive stands for."""
    suffix = archive_suffix(name)
    if suffix is None:
        return None
    stem = posixpath.basename(name)[: -len(suffix)]
    return stem if stem.lower() in IMAGE_DIRS + MASK_DIRS else None


class FileTree:
    """Files of a folder or archive under posix names relative to it; ``read`` gives a Source.

    Thread-safe: ``read`` may be called from decoding worker threads.
    """

    def __init__(self, origin: Path, kind: str) -> None:
        self.origin = origin
        self.kind = kind  # "folder" | "zip" | "tar"
        self._entries: dict[str, _Entry] = {}
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def read(self, name: str) -> Source:
        """A path (folder) or the bytes (archive member) of ``name``; decode with io.read_*."""
        entry = self._entries[name]
        if isinstance(entry, str):  # zip member: decompression is cheap next to decoding
            try:
                with self._lock:
                    assert self._zip is not None
                    return self._zip.read(entry)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
                raise ItemError(f"{self.display(name)}: cannot read archive member ({err})") from err
        return entry

    def read_bytes(self, name: str) -> bytes:
        data = self.read(name)
        return data.read_bytes() if isinstance(data, Path) else data

    def display(self, name: str) -> str:
        """How to name ``name`` in a message: a path, or ``archive.zip:member``."""
        if self.kind == "folder":
            return str(self.origin / name)
        return f"{self.origin}:{name}"

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    # -- building -------------------------------------------------------------------------------

    def _add(self, name: str, entry: _Entry) -> None:
        self._entries.setdefault(name, entry)

    def _expand_nested(self) -> None:
        """Open ``<dir>/images.tar.gz`` etc. in place unless ``<dir>/images/`` already exists."""
        folders = {posixpath.dirname(n) for n in self._entries}
        for name in [n for n in self._entries if _nested_folder(n)]:
            parent = posixpath.dirname(name)
            folder = _nested_folder(name)
            if posixpath.join(parent, folder) in folders:
                continue

            def place(inner: str, parent: str = parent, folder: str = folder) -> str:
                # A flat inner archive (x.jpg at its top) stands for the folder it is named after.
                if "/" not in inner:
                    inner = posixpath.join(folder, inner)
                return posixpath.join(parent, inner) if parent else inner

            data = self.read_bytes(name)
            for full, content in _archive_members(io.BytesIO(data), self.display(name), place):
                if not _nested_folder(full):  # one level of nesting is all the releases use
                    self._add(full, content)
            del self._entries[name]


def _archive_members(
    fileobj: io.BytesIO | Path, where: str, place: Callable[[str], str] = lambda name: name
) -> list[tuple[str, bytes]]:
    """(place(name), bytes) of the wanted regular-file members of a zip or tar, read into memory;
    ``place`` maps a member name to its name in the tree before the wanted-test."""
    try:
        if zipfile.is_zipfile(fileobj):
            with zipfile.ZipFile(fileobj) as zf:
                out = []
                for info in zf.infolist():
                    name = _normalise(info.filename)
                    if name and not info.is_dir() and _wanted(place(name)):
                        out.append((place(name), zf.read(info)))
                return out
        if isinstance(fileobj, io.BytesIO):
            fileobj.seek(0)
        opened = (tarfile.open(fileobj=fileobj, mode="r:*") if isinstance(fileobj, io.BytesIO)
                  else tarfile.open(fileobj, mode="r:*"))
        with opened as tf:
            out = []
            for member in tf:  # streaming: one pass, no seeking back
                name = _normalise(member.name)
                if name and member.isfile() and _wanted(place(name)):
                    handle = tf.extractfile(member)
                    out.append((place(name), handle.read() if handle else b""))
            return out
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise UserError(f"{where}: cannot read archive ({err})") from err


def _unreadable_folder(err: OSError) -> None:
    logger.warning("cannot read folder %s (%s); its files are ignored", err.filename,
                   err.strerror or err)


def open_tree(path: Path) -> FileTree:
    """Index ``path`` (a folder, a zip or a tar[.gz/.bz2/.xz]) without extracting anything.

    Only the files that can matter are kept: image files directly inside a folder named like
    IMAGE_DIRS / MASK_DIRS, split lists (train.txt, val.txt, test.txt) and nested image/mask
    archives (which are opened). A folder is searched MAX_DIR_DEPTH levels deep.
    Raises UserError if ``path`` does not exist or is neither a folder nor a readable archive.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"dataset not found: {path}")
    if path.is_dir():
        tree = FileTree(path, "folder")
        base_depth = len(path.parts)
        for dirpath, dirnames, filenames in os.walk(path, onerror=_unreadable_folder):
            here = Path(dirpath)
            depth = len(here.parts) - base_depth
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
            if depth >= MAX_DIR_DEPTH:
                dirnames[:] = []
            rel = here.relative_to(path).as_posix()
            for f in filenames:
                name = _normalise(f if rel == "." else f"{rel}/{f}")
                # Only regular files: opening a FIFO named a.jpg would block forever.
                if name and _wanted(name) and (here / f).is_file():
                    tree._add(name, here / f)
    elif zipfile.is_zipfile(path):
        tree = FileTree(path, "zip")
        try:
            tree._zip = zipfile.ZipFile(path)
            infos = tree._zip.infolist()
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"{path}: cannot read zip archive ({err})") from err
        for info in infos:
            name = _normalise(info.filename)
            if name and not info.is_dir() and _wanted(name):
                tree._add(name, info.filename)
    elif tarfile.is_tarfile(path):
        tree = FileTree(path, "tar")
        for name, data in _archive_members(path, str(path)):
            tree._add(name, data)
    else:
        raise UserError(
            f"{path} is neither a folder nor a zip/tar archive; give a dataset folder "
            "(with images/ and masks/) or the official archive"
        )
    tree._expand_nested()
    return tree
