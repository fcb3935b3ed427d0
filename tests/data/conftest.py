"""Builders of tiny synthetic datasets (folders and archives) for the data tests: the ``synth``
fixture is this module (tests run with --import-mode=importlib, so helpers cannot be imported)."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = 32  # pixels; edges of drawn shapes sit on 8-pixel JPEG block borders


def colour_of(i: int) -> tuple[int, int, int]:
    """A distinct, JPEG-friendly flat colour for pair number i."""
    return (40 + 20 * (i % 8), 200 - 15 * (i % 10), 60 + 30 * (i % 5))


def image_array(i: int, size: int = SIZE) -> np.ndarray:
    return np.full((size, size, 3), colour_of(i), dtype=np.uint8)


def mask_array(size: int = SIZE) -> np.ndarray:
    """bool (size, size): the left half is foreground."""
    m = np.zeros((size, size), dtype=bool)
    m[:, : size // 2] = True
    return m


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def mask_bytes(fmt: str, size: int = SIZE) -> bytes:
    grey = mask_array(size).astype(np.uint8) * 255
    if fmt == "JPEG":  # Kvasir-SEG style: 3-channel JPEG
        return encode(np.stack([grey] * 3, -1), "JPEG", quality=90)
    return encode(grey, "PNG")


def pair_files(n: int, layout: str, prefix: str = "") -> dict[str, bytes]:
    """{relative name: bytes} of a dataset: layout "kvasir-seg" (jpg masks, train/val lists) or
    "kvasir-instrument" (png masks, train/test lists). The last pair of n goes to validation."""
    stems = [f"id{i:03d}" for i in range(n)]
    mask_fmt, mask_ext, val_list = (
        ("JPEG", ".jpg", "val.txt") if layout == "kvasir-seg" else ("PNG", ".png", "test.txt")
    )
    files = {}
    for i, stem in enumerate(stems):
        files[f"{prefix}images/{stem}.jpg"] = encode(image_array(i), "JPEG", quality=95)
        files[f"{prefix}masks/{stem}{mask_ext}"] = mask_bytes(mask_fmt)
    files[f"{prefix}train.txt"] = ("\n".join(stems[:-1]) + "\n").encode()
    files[f"{prefix}{val_list}"] = (stems[-1] + "\n").encode()
    return files


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def instrument_members(n: int, top: str = "kvasir-instrument/") -> dict[str, bytes]:
    """The official Kvasir-Instrument layout: images and masks in nested .tar.gz files."""
    files = pair_files(n, "kvasir-instrument")
    images = {k: v for k, v in files.items() if k.startswith("images/")}
    masks = {k: v for k, v in files.items() if k.startswith("masks/")}
    return {
        f"{top}images.tar.gz": tar_bytes(images),
        f"{top}masks.tar.gz": tar_bytes(masks),
        f"{top}train.txt": files["train.txt"],
        f"{top}test.txt": files["test.txt"],
        f"{top}bboxes.json": b"{}",
    }


@pytest.fixture
def synth():
    """This module: synth.pair_files(...), synth.zip_bytes(...), ..."""
    return sys.modules[__name__]
