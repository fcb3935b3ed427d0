"""A small trained-looking generator (width 8) and its checkpoint, for the weights tests."""

from __future__ import annotations

from pathlib import Path

import torch

from endoxai.config import Config
from endoxai.models import Generator
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

WIDTH = 8
SIZE = 256


def calibrated_generator(seed: int = 0, width: int = WIDTH) -> Generator:
    """A width-``width`` generator whose BatchNorm running statistics come from a batch of
    images: a fresh one has statistics (0, 1) that leave its logits tiny and untypical."""
    torch.manual_seed(seed)
    g = Generator(width=width)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # the plain mean over the calibration batch
    g.train()
    with torch.no_grad():
        g(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
    return g.eval()


def save_checkpoint(g: Generator, path: Path, config: Config | None = None, **extra) -> Path:
    config = config or Config().override(model={"width": g.width})
    atomic_save({"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                 "generator": g.state_dict(), **extra}, path)
    return path
