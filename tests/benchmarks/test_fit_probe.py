"""benchmarks/fit_probe.py: the eval-mode Dice it reports, and that its steps learn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fit_probe  # noqa: E402

from endoxai.models import Generator  # noqa: E402


class _Fixed(Generator):
    """A generator whose logits are given: positive exactly where ``pred`` is true."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred = pred

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.pred, 1.0, -1.0)


def test_train_dice_is_the_per_image_mean_and_uses_eval_mode():
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, :2] = 1  # image 0: top half
    masks[1, 0, 0, 0] = 1  # image 1: one pixel
    pred = masks.bool().clone()
    pred[1] = False
    pred[1, 0, 3, 3] = True  # image 1 misses its pixel and marks another: Dice 0
    g = _Fixed(pred).train()
    assert fit_probe.train_dice(g, torch.zeros(2, 3, 4, 4), masks) == pytest.approx(0.5)
    assert g.training  # restored


@pytest.mark.slow
def test_probe_steps_lower_the_training_l1():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    masks = torch.zeros(2, 1, 256, 256)
    masks[:, :, 64:192, 64:192] = 1
    images[:, :, 64:192, 64:192] = 255  # the mask is the bright square
    rows = fit_probe.probe(images, masks, "default", steps=8, every=4)
    assert [r["step"] for r in rows] == [4, 8]
    first = rows[0]["l1"]
    assert rows[-1]["l1"] < first and all(0 <= r["dice"] <= 1 for r in rows)
