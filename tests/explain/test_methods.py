"""Attribution methods: a planted dependency every method must find, integrated gradients'
completeness, the method names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from endoxai.explain import COMPOSITES
from endoxai.explain.methods import (
    RANDOM,
    check_methods,
    integrated_gradients,
    method_names,
    relevance_maps,
)
from endoxai.explain.perturbation import patch_relevance, perturbation_order

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find planted
from planted import PATCH, REGION_PATCHES, SIZE, planted_model_and_image, region_mask

SENSIBLE = [m for m in method_names() if m != RANDOM]


@pytest.fixture(scope="module")
def planted():
    return planted_model_and_image()


@pytest.mark.parametrize("method", SENSIBLE)
def test_every_sensible_method_ranks_the_planted_region_first(planted, method):
    model, x = planted
    target = torch.ones(1, 1, SIZE, SIZE, dtype=torch.bool)
    maps = relevance_maps(model, x, target, method, ig_steps=16)
    assert maps.shape == (1, SIZE, SIZE)
    outside = ~region_mask()
    assert maps[0][outside].abs().max() == 0  # the model never reads these pixels
    order = perturbation_order(patch_relevance(maps, PATCH), "morf")[0]
    assert set(order[:4].tolist()) == REGION_PATCHES
    lerf = perturbation_order(patch_relevance(maps, PATCH), "lerf")[0]
    assert set(lerf[-4:].tolist()) == REGION_PATCHES


def test_integrated_gradients_completeness(planted):
    # Σ IG = f(x) - f(black) up to the Riemann error; the network is piecewise linear.
    model, x = planted
    target = torch.ones(1, 1, SIZE, SIZE, dtype=torch.bool)
    ig = integrated_gradients(model, x, target, steps=256, batch_size=64)
    with torch.no_grad():
        expected = model.logits(x).sum() - model.logits(torch.full_like(x, -1.0)).sum()
    assert ig.sum().item() == pytest.approx(expected.item(), rel=2e-3)


def test_method_names_and_check_methods():
    names = method_names()
    assert names[:len(COMPOSITES)] == ["lrp:" + c for c in COMPOSITES]
    assert names[len(COMPOSITES):] == ["gradient", "gradient-x-input", "integrated-gradients",
                                       "random"]
    with pytest.raises(KeyError, match="choose from"):
        check_methods(["lrp:nope"])
    with pytest.raises(ValueError, match="no relevance map"):
        relevance_maps(nn.Conv2d(3, 1, 1), torch.zeros(1, 3, 4, 4),
                       torch.ones(1, 1, 4, 4, dtype=torch.bool), RANDOM)
