"""Shared fixtures: the real data folder (skipped when absent), tiny synthetic datasets, and a
headless Chromium for the browser tests.

The data folder is the one place tests find real data: ``$ENDOXAI_DATA`` when set, else
``../shared/data`` beside the repository. It holds ``kvasir-seg/`` (images, masks, train.txt,
val.txt) and ``kvasir-instrument/``; a test that needs one asks for its fixture and is skipped,
with the path in the reason, when it is absent.
"""

from __future__ import annotations

import os
import shutil
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


# The report's and the viewer's browser tests: headless Debian Chromium driven by Playwright
# (Playwright's own browser download cannot be fetched here; CI installs both: .ci/run).
CHROMIUM = Path(os.environ.get("ENDOXAI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# Module scope: Playwright's sync API runs an event loop until it is closed, and a loop still
# running makes later tests' asyncio.run() and sync_playwright() fail.
@pytest.fixture(scope="module")
def browser():
    """A launched Chromium; skips when Playwright or the browser is missing or will not start."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                  args=CHROMIUM_ARGS)
        except sync_api.Error as err:  # e.g. a Chromium too old or too new for this Playwright
            pytest.skip(f"cannot start {CHROMIUM} with Playwright: {str(err).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture
def full_screenshot(tmp_path: Path):
    """screenshot(page, min_bytes): a full-page PNG of ``page``, checked not to be blank by its
    size; kept at $ENDOXAI_SCREENSHOT when set, to look at."""
    def take(page, min_bytes: int) -> Path:
        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > min_bytes
        if os.environ.get("ENDOXAI_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["ENDOXAI_SCREENSHOT"])
        return shot
    return take


@pytest.fixture
def nan_under_autocast(monkeypatch):
    """torch.autograd.grad returns NaN input gradients under CPU autocast: a bf16 LRP pass that
    goes non-finite, to test the fp32 redo."""
    import torch

    real_grad = torch.autograd.grad

    def grad(outputs, inputs, **kwargs):
        grads = real_grad(outputs, inputs, **kwargs)
        if torch.is_autocast_enabled("cpu"):
            grads = (torch.full_like(grads[0], float("nan")), *grads[1:])
        return grads

    monkeypatch.setattr(torch.autograd, "grad", grad)
