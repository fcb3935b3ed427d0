"""Fixtures: a width-8 generator with calibrated BatchNorm, and its checkpoint in a run folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: weights_models
from weights_models import Generator, calibrated_generator, save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def generator() -> Generator:
    return calibrated_generator()


@pytest.fixture
def checkpoint(generator, tmp_path) -> Path:
    return save_checkpoint(generator, tmp_path / "run" / "best.pt", epoch=7, best_epoch=7)
