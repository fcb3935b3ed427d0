"""Shared fixtures: the real data folder (skipped when absent) and tiny synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def kvasir_seg() -> Path:
    path = SHARED_DATA / "kvasir-seg"
    if not (path / "images").is_dir():
        pytest.skip("real Kvasir-SEG not found at ../shared/data/kvasir-seg")
    return path


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
