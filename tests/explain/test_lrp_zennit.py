"""Agreement with Zennit (Anders et al.), the reference LRP library, where it is installed.

Zennit imports torchvision at package import (only for its ResNet canonizers), and torchvision has
no CPU build here; minimal stand-ins for ``torchvision.models.resnet`` are put into ``sys.modules``
just for the import and removed afterwards.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from endoxai.explain import explain
from endoxai.explain.zennit_compat import import_zennit
from endoxai.models import GeneratorLogits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find lrp_models
from lrp_models import random_generator, random_images


zennit = import_zennit()
pytestmark = pytest.mark.skipif(zennit is None, reason="zennit is not installed")


def zennit_relevance(model: nn.Module, x: torch.Tensor, composite) -> torch.Tensor:
    """Zennit's input relevance for the target 'mask', starting from the logit."""
    wrapped = GeneratorLogits(copy.deepcopy(model)).eval()
    x = x.clone().requires_grad_(True)
    with composite.context(wrapped) as modified:
        logits = modified(x)
        (relevance,) = torch.autograd.grad(logits, x, grad_outputs=logits * (logits > 0))
    return relevance


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def images():
    return random_images(1, 256, seed=5)


WIDTHS = [16, pytest.param(64, marks=pytest.mark.slow)]  # 16: the bundled model's width


@pytest.mark.parametrize("width", WIDTHS)
def test_epsilon_gamma_box_matches_zennit_identity_batchnorm(images, width):
    g = random_generator(seed=2, identity_bn=True, width=width)
    ours = explain(g, images, target="mask", composite="epsilon-gamma-box", layers=False).input
    theirs = zennit_relevance(g, images, zennit.composites.EpsilonGammaBox(low=-1.0, high=1.0))
    assert theirs.abs().max() > 0
    assert relative_error(ours, theirs) <= 1e-4


@pytest.mark.parametrize("width", WIDTHS)
def test_epsilon_gamma_box_matches_zennit_with_merged_batchnorm_float32(width):
    # Non-trivial BatchNorms: Zennit merges them with its canonizer, we fold them. float32 here
    # (half the time of float64) also checks that the fused arithmetic loses no precision.
    g = random_generator(seed=3, dtype=torch.float32, width=width)
    x = random_images(1, 256, seed=5, dtype=torch.float32)
    ours = explain(g, x, target="mask", composite="epsilon-gamma-box", layers=False).input
    composite = zennit.composites.EpsilonGammaBox(
        low=-1.0, high=1.0, canonizers=[zennit.canonizers.SequentialMergeBatchNorm()]
    )
    theirs = zennit_relevance(g, x, composite)
    assert relative_error(ours, theirs) <= 1e-4


@pytest.mark.parametrize("width", WIDTHS)
def test_alpha2_beta1_matches_zennit(width):
    # alpha1-beta0 runs the same code with other constants; the dense references cover both.
    g = random_generator(seed=4, dtype=torch.float32, width=width)
    x = random_images(1, 256, seed=6, dtype=torch.float32)
    ours = explain(g, x, target="mask", composite="alpha2-beta1", layers=False).input
    canonizers = [zennit.canonizers.SequentialMergeBatchNorm()]
    theirs = zennit_relevance(g, x, zennit.composites.EpsilonAlpha2Beta1(canonizers=canonizers))
    assert relative_error(ours, theirs) <= 1e-4


def _single_conv_composites():
    from endoxai.explain import Composite, Gamma

    rule = zennit.rules.Gamma(gamma=0.25)
    theirs = zennit.composites.LayerMapComposite(layer_map=[(nn.Conv2d, rule)])
    ours = Composite(layer_map=(((nn.Conv2d,), Gamma(0.25)),))
    return ours, theirs


def test_paper_gamma_equals_zennit_gamma_for_positive_inputs_and_outputs():
    # Zennit's Gamma is the generalised rule; on x >= 0 with every z > 0 it is the paper's γ rule.
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    with torch.no_grad():
        conv.bias.fill_(2.0)  # with small weights, every output is positive
    model = nn.Sequential(conv)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    ours_c, theirs_c = _single_conv_composites()
    with torch.no_grad():
        assert (model(x) > 0).all()
    ours = explain(model, x, target="mask", composite=ours_c, layers=False).input
    xz = x.clone().requires_grad_(True)
    with theirs_c.context(copy.deepcopy(model)) as modified:
        out = modified(xz)
        (theirs,) = torch.autograd.grad(out, xz, grad_outputs=out)
    assert relative_error(ours, theirs) <= 1e-10


def test_paper_gamma_differs_from_zennit_gamma_for_negative_inputs():
    # With LeakyReLU outputs (negative inputs) the two rules differ: documented, not a bug.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).double()
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64) * 2 - 1
    ours_c, theirs_c = _single_conv_composites()
    ours = explain(
        model, x, target=torch.ones(1, 4, 6, 6, dtype=torch.bool), composite=ours_c, layers=False
    ).input
    xz = x.clone().requires_grad_(True)
    with theirs_c.context(copy.deepcopy(model)) as modified:
        out = modified(xz)
        (theirs,) = torch.autograd.grad(out, xz, grad_outputs=out)
    assert relative_error(ours, theirs) > 1e-3


@pytest.mark.parametrize("name", ["Flat", "WSquare"])
def test_input_free_rules_match_zennit(name):
    from endoxai.explain import Composite, Epsilon, Flat, WSquare

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)).double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 2 - 1
    ours_rule = {"Flat": Flat(), "WSquare": WSquare()}[name]
    ours_c = Composite(first_map=(((nn.Conv2d,), ours_rule),),
                       layer_map=(((nn.Conv2d, nn.ConvTranspose2d), Epsilon(1e-6)),))
    target = torch.ones(1, 2, 8, 8, dtype=torch.bool)
    ours = explain(model, x, target=target, composite=ours_c, layers=False).input
    theirs_c = zennit.composites.SpecialFirstLayerMapComposite(
        layer_map=[(nn.ConvTranspose2d, zennit.rules.Epsilon(1e-6))],
        first_map=[(nn.Conv2d, getattr(zennit.rules, name)(zero_params=["bias"]))])
    xz = x.clone().requires_grad_(True)
    with theirs_c.context(copy.deepcopy(model)) as modified:
        out = modified(xz)
        (theirs,) = torch.autograd.grad(out, xz, grad_outputs=out)
    assert theirs.abs().max() > 0
    assert relative_error(ours, theirs) <= 1e-10
