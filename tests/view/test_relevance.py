"""CachedExplainer: one forward pass, many backward passes, the numbers of ``explain``."""

from __future__ import annotations

import pytest
import torch

from endoxai import runtime
from endoxai.explain import COMPOSITES, explain
from endoxai.models import Generator
from endoxai.view.relevance import CachedExplainer

TARGETS = ["mask", "background", ("pixel", 100, 37), ("box", 10, 20, 90, 200)]


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    model = Generator(width=8).eval()
    with torch.no_grad():
        model.up8[0].bias.fill_(0.01)
    return model, torch.rand(1, 3, 256, 256) * 2 - 1


@pytest.mark.parametrize("composite", list(COMPOSITES))
def test_cached_forward_gives_the_numbers_of_explain(model_and_image, composite):
    model, image = model_and_image
    explainer = CachedExplainer(model, composite)
    forward = explainer.forward(image)
    # A second backward pass through the same graph must not see the first one's leftovers:
    # the rules' backward overwrites its saved maps, and the cache hands each pass fresh copies.
    explainer.relevance(forward, "mask")
    target = ("pixel", 100, 37)
    cached = explainer.relevance(forward, target)
    direct = explain(model, image, target=target, composite=composite, layer_inputs=True)
    assert cached.input.abs().sum() > 0
    assert cached.target.equal(direct.target)
    torch.testing.assert_close(cached.input, direct.input, rtol=1e-5, atol=1e-7)
    assert list(cached.layers) == list(direct.layers)
    for name in direct.layers:
        torch.testing.assert_close(cached.layers[name], direct.layers[name], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(cached.layer_inputs[name], direct.layer_inputs[name],
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_kind_agrees_with_explain(model_and_image, target):
    model, image = model_and_image
    explainer = CachedExplainer(model, "epsilon-gamma-box")
    cached = explainer.relevance(explainer.forward(image), target)
    direct = explain(model, image, target=target, composite="epsilon-gamma-box", layers=False)
    assert cached.target.equal(direct.target)
    torch.testing.assert_close(cached.input, direct.input, rtol=1e-5, atol=1e-7)


def test_the_skip_flow_ledger_closes(model_and_image):
    model, image = model_and_image
    explainer = CachedExplainer(model, "lrp0")
    flow = explainer.relevance(explainer.forward(image), "mask").flow
    assert flow.residual().abs().item() < 1e-3 * flow.total.abs().item()


def test_a_forward_pass_serves_only_its_composite(model_and_image):
    model, image = model_and_image
    forward = CachedExplainer(model, "lrp0").forward(image)
    with pytest.raises(ValueError, match="composite 'lrp0'"):
        CachedExplainer(model, "paper").relevance(forward, "mask")


def test_the_model_is_left_untouched(model_and_image):
    model, image = model_and_image
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explainer = CachedExplainer(model, "paper")
    explainer.relevance(explainer.forward(image), "mask")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not model.training


@pytest.mark.parametrize("composite", list(COMPOSITES))
def test_auto_precision_is_the_one_lrp_rule(model_and_image, monkeypatch, composite):
    # As on a CPU with native bf16: the viewer's auto must still be LRP's auto (fp32), the same
    # answer as `endoxai explain` gives, not the prediction rule's bf16.
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    model, _ = model_and_image
    cpu = torch.device("cpu")
    assert CachedExplainer(model, composite, "auto").precision == \
        runtime.resolve_lrp_precision("auto", cpu) == "fp32"
    assert CachedExplainer(model, composite, "bf16").precision == "bf16"
