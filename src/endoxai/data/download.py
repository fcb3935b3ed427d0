"""Downloading the official dataset archives from the authors' site, with checksum/integrity checks.

The archive is kept as it is: find_dataset reads it directly, nothing needs to be extracted.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import socket
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from endoxai import __version__
from endoxai.data.archive import archive_suffix
from endoxai.errors import UserError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DatasetSource:
    name: str
    url: str
    page: str  # the dataset authors' page: terms of use, manual download
    sha256: str | None  # published checksum of the archive at ``url``; None = none published
    size_mb: int  # approximate, for messages


DATASETS: dict[str, DatasetSource] = {}


def register(source: DatasetSource) -> DatasetSource:
    if source.name in DATASETS:
        raise ValueError(f"dataset {source.name!r} is registered twice")
    DATASETS[source.name] = source
    return source


register(DatasetSource(
    name="kvasir-seg",
    url="https://datasets.simula.no/downloads/kvasir-seg.zip",
    page="https://datasets.simula.no/kvasir-seg/",
    # SHA-256 as pinned for this URL by torch-em (constantinpape/torch-em,
    # torch_em/data/datasets/medical/kvasir.py); the same value, with the size 46,227,172 bytes,
    # is recorded by several independent projects that downloaded the archive.
    sha256="03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
    size_mb=46,
))
register(DatasetSource(
    name="kvasir-instrument",
    # The download table of https://datasets.simula.no/kvasir-instrument/ links this zip (170 MB:
    # kvasir-instrument/{images.tar.gz, masks.tar.gz, bboxes.json, train.txt, test.txt}); an older
    # kvasir-instrument.tar.gz with the same content is read the same way. No checksum is
    # published, so only the archive's integrity is checked (pass --sha256 to compare).
    url="https://datasets.simula.no/downloads/kvasir-instrument.zip",
    page="https://datasets.simula.no/kvasir-instrument/",
    sha256=None,
    size_mb=170,
))


def get_source(name: str) -> DatasetSource:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_archive(path: Path, label: str | None = None) -> str:
    """Verify that ``path`` is a complete zip (every member's CRC) or tar (every member readable).

    Returns "zip" or "tar"; raises UserError naming the problem (truncated, corrupt, not an archive
    at all, e.g. an HTML error page).
    """
    label = label or str(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise UserError(f"{label}: corrupt zip archive (CRC error in {bad})")
            return "zip"
        if tarfile.is_tarfile(path):
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    if member.isfile():
                        handle = tf.extractfile(member)
                        while handle is not None and handle.read(CHUNK):
                            pass
            return "tar"
    except UserError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise UserError(f"{label}: corrupt or truncated archive ({err})") from err
    raise UserError(f"{label}: not a zip or tar archive (the server may have sent an error page)")


def _file_name(url: str, fallback: str) -> str:
    base = posixpath.basename(urllib.parse.urlparse(url).path)
    return base if base and archive_suffix(base) else fallback


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``part``; returns the SHA-256 of what was written."""
    host = urllib.parse.urlparse(url).hostname or url
    request = urllib.request.Request(url, headers={"User-Agent": f"endoxai/{__version__}"})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(part, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name[: -len(".part")], disable=None if progress else True,
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if total is not None and part.stat().st_size != total:
                raise UserError(
                    f"download of {url} stopped after {part.stat().st_size:,} of {total:,} bytes; "
                    "run the command again"
                )
    except urllib.error.HTTPError as err:
        raise UserError(f"{url}: the server answered HTTP {err.code} {err.reason}") from err
    except http.client.HTTPException as err:  # e.g. IncompleteRead: the connection dropped
        raise UserError(
            f"download of {url} was interrupted ({err!r}); run the command again"
        ) from err
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(
            f"could not reach {host} ({reason}); download {url} with a browser on a machine "
            "with internet access and give the archive's path to endoxai (it is read as is)"
        ) from err
    return digest.hexdigest()


def download(
    name: str,
    dest: Path = Path("data"),
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> tuple[Path, str]:
    """Download dataset ``name`` (see DATASETS) into ``dest``; returns (archive path, its SHA-256).

    The file is streamed to ``<file>.part`` and renamed only after its checksum (``sha256`` if
    given, else the published one, if any) and its integrity (zip CRCs / tar readability) were
    checked; a bad download is deleted. An existing complete archive is checked, not downloaded
    again. ``url`` overrides the official address (mirror, test server); the published checksum
    still applies unless ``sha256`` is given. Raises UserError when the host cannot be reached,
    the server refuses, or a check fails.
    """
    source = get_source(name)
    url = url or source.url
    expected = (sha256 or source.sha256 or "").strip().lower() or None
    if expected is not None and (len(expected) != 64 or any(ch not in "0123456789abcdef"
                                                              for ch in expected)):
        raise UserError(f"--sha256 must be 64 hexadecimal digits; got {sha256!r}")
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / _file_name(url, posixpath.basename(urllib.parse.urlparse(source.url).path))

    if final.exists():
        logger.info("%s already exists; checking it instead of downloading", final)
        actual = sha256_file(final)
        _compare(final, expected, actual, existing=True)
        check_archive(final)
        return final, actual

    part = final.with_name(final.name + ".part")
    logger.info("downloading %s (about %d MB) from %s", source.name, source.size_mb, url)
    try:
        actual = _fetch(url, part, progress, timeout)
        _compare(final, expected, actual, existing=False)
        check_archive(part, label=str(final))
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return final, actual


def _compare(final: Path, expected: str | None, actual: str, existing: bool) -> None:
    if expected is None:
        logger.info("no published checksum to compare with; SHA-256 %s", actual)
        return
    if actual != expected:
        what = "existing file" if existing else "download"
        tail = "delete it and download again" if existing else (
            "it was deleted (if you trust this file, e.g. the authors re-released the archive, "
            f"download again with --sha256 {actual})"
        )
        raise UserError(
            f"checksum mismatch for {what} {final}: SHA-256 {actual}, expected {expected}; {tail}"
        )
    logger.info("SHA-256 verified: %s", actual)
