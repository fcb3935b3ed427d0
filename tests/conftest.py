"""Shared fixtures: the real data folder (skipped when absent) and tiny synthetic datasets.

The data folder is the one place tests find real data: ``$ENDOXAI_DATA`` when set, else
``../shared/data`` beside the repository. It holds ``kvasir-seg/`` (images, masks, train.txt,
val.txt) and ``kvasir-instrument/``; a test that needs one asks for its fixture and is skipped,
with the path in the reason, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ENDOXAI_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data folder ($ENDOXAI_DATA, else ../shared/data); it may lack any dataset."""
    return DATA


def _dataset(name: str, needs: str) -> Path:
    path = DATA / name
    if not (path / needs).is_dir():
        pytest.skip(f"{name} not found at {path} (set ENDOXAI_DATA to the folder holding it)")
    return path


@pytest.fixture(scope="session")
def kvasir_seg() -> Path:
    """Kvasir-SEG: images/, masks/, train.txt, val.txt (the Medico 2020 880/120 split)."""
    return _dataset("kvasir-seg", "images")


@pytest.fixture(scope="session")
def kvasir_instrument() -> Path:
    """Kvasir-Instrument as on these machines: masks/, train.txt, test.txt (no images)."""
    return _dataset("kvasir-instrument", "masks")


def make_pair_folder(root: Path, n: int = 6, size: tuple[int, int] = (70, 90), seed: int = 0) -> Path:
    """A Kvasir-SEG-like folder: images/*.jpg with a bright disc, masks/*.png of the disc."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), h // 5
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        image = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
        image[disc] = (220, 120, 100)
        Image.fromarray(image).save(root / "images" / f"case{i}.jpg", quality=95)
        Image.fromarray(disc.astype(np.uint8) * 255).save(root / "masks" / f"case{i}.png")
    return root


@pytest.fixture
def pair_folder(tmp_path: Path) -> Path:
    return make_pair_folder(tmp_path / "data")
