"""Fixtures for the training-robustness tests: tiny stand-in models and a subprocess runner.

The loop's interruption, resume and divergence logic does not depend on the model, and the
Table-1 generator takes seconds per step on a CPU; these tests therefore swap
``endoxai.train.loop.build_models`` for two tiny networks that still have BatchNorm (running
statistics) and Dropout (global RNG), so every piece of state a resume must restore exists.
The runner executes the real ``endoxai`` CLI in a child process with the same swap, optionally
slowed down (a pause after each step, a pause before each fsync) so that a test can send a signal
at a chosen moment; it appends ``step`` / ``fsync`` lines to the file in ``ENDOXAI_TEST_TRACE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TINY_MODELS = '''
import torch
from torch import nn


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Dropout(0.5), nn.Conv2d(4, 1, 3, padding=1))

    def logits(self, x):
        return self.net(x)

    def forward(self, x):
        return torch.tanh(self.logits(x))


class TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, 4, 4, stride=4), nn.LeakyReLU(0.2),
                                 nn.Conv2d(4, 1, 4, stride=4))

    def forward(self, image, mask):
        return self.net(torch.cat([image, mask], 1))


def build_tiny(model_cfg):
    return TinyG(), TinyD()
'''

RUNNER = TINY_MODELS + '''
import os
import time

import endoxai.train.loop as loop

TRACE = os.environ.get("ENDOXAI_TEST_TRACE")
STEP_DELAY = float(os.environ.get("ENDOXAI_TEST_STEP_DELAY", "0"))
FSYNC_DELAY = float(os.environ.get("ENDOXAI_TEST_FSYNC_DELAY", "0"))
loop.build_models = build_tiny


def trace(event):
    if TRACE:
        with open(TRACE, "a") as f:
            f.write(event + "\\n")


real_step = loop.train_step


def step(*args, **kwargs):
    logs = real_step(*args, **kwargs)
    trace("step")
    time.sleep(STEP_DELAY)
    return logs


loop.train_step = step
real_fsync = os.fsync


def fsync(fd):
    trace("fsync")
    time.sleep(FSYNC_DELAY)
    real_fsync(fd)


os.fsync = fsync

from endoxai.cli import main  # noqa: E402

raise SystemExit(main())
'''


@pytest.fixture
def tiny_models(monkeypatch):
    """Make fit() build the tiny models (in this process)."""
    namespace: dict = {}
    exec(TINY_MODELS, namespace)  # noqa: S102 - the test's own source text
    import endoxai.train.loop as loop

    monkeypatch.setattr(loop, "build_models", namespace["build_tiny"])
    return namespace


@pytest.fixture
def runner(tmp_path) -> list[str]:
    """argv prefix that runs the endoxai CLI with the tiny models in a child process."""
    path = tmp_path / "run_endoxai.py"
    path.write_text(RUNNER)
    return [sys.executable, str(path)]


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """A recipe for fast, deterministic runs: 2 epochs, batch 2, fp32, one thread, augmentation on
    (it draws from the data RNG, which a resume must restore)."""
    path = tmp_path / "tiny.toml"
    path.write_text("[train]\nepochs = 2\nbatch_size = 2\nprecision = \"fp32\"\nnum_threads = 1\n"
                    "lr_schedule = \"linear\"\n\n[data]\nval_fraction = 0.34\n")
    return path
