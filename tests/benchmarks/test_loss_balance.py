"""benchmarks/loss_balance.py: the per-term gradient scales it reports, checked against their
closed forms at logit 0 (tanh' = 1, sigmoid = 1/2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import loss_balance  # noqa: E402

from endoxai.config import TrainConfig  # noqa: E402


def _masks() -> torch.Tensor:
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, :2] = 1
    masks[1, 0, 0, 0] = 1
    return masks


def test_l1_and_bce_gradients_at_logit_zero_match_their_closed_forms():
    masks = _masks()
    n = masks.numel()
    cfg = TrainConfig(l1_weight=100.0, seg_loss="bce", seg_weight=10.0)
    scales = loss_balance.gradient_scales(torch.zeros_like(masks), masks, cfg)
    # |d/dz 100 * mean|tanh z - y|| = 100 / n at z = 0 for every pixel (y = ±1)
    assert scales["l1"] == pytest.approx(100.0 / n)
    # |d/dz 10 * mean BCE(z, m)| = 10 * |1/2 - m| / n
    assert scales["seg"] == pytest.approx(10.0 * 0.5 / n)


def test_no_segmentation_term_without_seg_loss_and_weights_scale_linearly():
    masks = _masks()
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(0))
    assert set(loss_balance.gradient_scales(logits.clone(), masks,
                                            TrainConfig(seg_loss="none"))) == {"l1"}
    one, big = (loss_balance.gradient_scales(logits.clone(), masks, TrainConfig(
        l1_weight=1.0, seg_loss="dice", seg_weight=weight)) for weight in (1.0, 100.0))
    assert big["seg"] == pytest.approx(100 * one["seg"]) and big["l1"] == pytest.approx(one["l1"])
    assert one["seg"] > 0
