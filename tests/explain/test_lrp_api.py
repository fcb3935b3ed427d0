"""explain(): the caller's model is untouched; targets, starts, registry and unsupported layers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from endoxai import runtime
from endoxai.explain import (
    COMPOSITES,
    Composite,
    Epsilon,
    UnsupportedLayerError,
    explain,
    get_composite,
)
from endoxai.models import Generator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find lrp_models
from lrp_models import random_generator, random_images


def _snapshot(model: nn.Module) -> dict:
    state = {}
    for name, m in model.named_modules():
        state[name] = {
            "type": type(m),
            "training": m.training,
            "params": {
                k: (p, p.detach().clone(), p.requires_grad, p.grad)
                for k, p in m._parameters.items()
                if p is not None
            },
            "buffers": {k: (b, None if b is None else b.clone()) for k, b in m._buffers.items()},
            "hooks": {
                k: dict(v) for k, v in vars(m).items() if "hooks" in k and isinstance(v, dict)
            },
            "children": dict(m._modules),
        }
    return state


def _assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name in before:
        b, a = before[name], after[name]
        assert a["type"] is b["type"] and a["training"] == b["training"], name
        assert a["children"].keys() == b["children"].keys() and all(
            a["children"][k] is b["children"][k] for k in b["children"]
        ), name
        assert a["params"].keys() == b["params"].keys(), name
        for k, (p, value, requires_grad, grad) in b["params"].items():
            p_now = a["params"][k][0]
            assert p_now is p and torch.equal(p_now, value), f"{name}.{k}"
            assert p_now.requires_grad == requires_grad and p_now.grad is grad, f"{name}.{k}"
        for k, (buf, value) in b["buffers"].items():
            now = a["buffers"][k][0]
            assert now is buf and (value is None or torch.equal(now, value)), f"{name}.{k}"
        assert a["hooks"].keys() == b["hooks"].keys(), name
        for k, hooks in b["hooks"].items():
            assert a["hooks"][k] == hooks, f"{name}.{k}"


@pytest.mark.slow
@pytest.mark.parametrize("training, composite", [(True, "epsilon-gamma-box"), (False, "paper")])
def test_model_is_unchanged(training, composite):
    g = random_generator(seed=0, dtype=torch.float32)
    g.train(training)
    calls = []
    g.down3.register_forward_hook(lambda *args: calls.append("down3"))  # a user's hook stays
    before = _snapshot(g)
    exp = explain(g, random_images(1, 256, dtype=torch.float32), composite=composite)
    _assert_same(before, _snapshot(g))
    assert calls == []  # the explanation ran on a hook-free copy
    assert torch.isfinite(exp.input).all() and exp.input.abs().sum() > 0


@pytest.mark.slow
def test_explanation_shapes_and_layer_names():
    g = Generator()
    x = random_images(2, 256, dtype=torch.float32)
    exp = explain(g, x, target=("box", 10, 20, 100, 90))
    assert exp.input.shape == x.shape
    assert exp.output.shape == exp.logits.shape == exp.target.shape == (2, 1, 256, 256)
    assert list(exp.layers) == [f"down{i}" for i in range(1, 9)] + [f"up{i}" for i in range(1, 9)]
    assert exp.layers["down1"].shape == (2, 64, 128, 128)
    assert exp.layers["down8"].shape == (2, 512, 1, 1)
    assert exp.layers["up7"].shape == (2, 64, 128, 128)
    assert exp.layers["up8"].shape == (2, 1, 256, 256)
    torch.testing.assert_close(
        exp.layers["up8"], exp.output
    )  # the last block's output is the logit
    assert exp.target[..., 10:100, 20:90].all() and exp.target.sum() == 2 * 90 * 70
    assert not explain(g, x, layers=False).layers


def _small_net() -> nn.Module:
    """A tiny fully convolutional net with BatchNorm and a skip-free (N, 1, H, W) output."""
    torch.manual_seed(0)
    net = (
        nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(6, 6, 4, stride=2, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.ConvTranspose2d(6, 1, 4, stride=2, padding=1),
        )
        .double()
        .eval()
    )
    with torch.no_grad():
        net[3].running_mean.normal_(0, 0.1)
        net[3].running_var.uniform_(0.5, 2)
    return net


def test_batch_items_are_independent():
    g = _small_net()
    x = random_images(2, 32, seed=3)
    both = explain(g, x, layers=False)
    second = explain(g, x[1:], layers=False)
    torch.testing.assert_close(both.input[1:], second.input)


def test_targets_and_starts():
    g = _small_net()
    x = random_images(1, 32, seed=3)
    logits = explain(g, x, layers=False).logits
    fg = logits > 0

    exp = explain(g, x, target="background", layers=False)
    assert torch.equal(exp.target, ~fg)
    torch.testing.assert_close(exp.output, torch.where(~fg, -logits, 0.0))  # -logit: positive
    assert (exp.output >= 0).all()

    exp = explain(g, x, target="mask", start="ones", layers=False)
    torch.testing.assert_close(exp.output, fg.double())

    exp = explain(g, x, target=("pixel", 7, 20), layers=False)
    assert exp.target.sum() == 1 and exp.target[0, 0, 7, 20]
    assert exp.output[0, 0, 7, 20] == logits[0, 0, 7, 20]

    custom = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    custom[..., :5, :5] = True
    assert torch.equal(explain(g, x, target=custom, layers=False).target, custom)

    # Relevance is linear in the starting relevance: background from -logit = minus the
    # explanation of the logit at the same positions.
    by_mask = explain(g, x, target=~fg, layers=False)
    torch.testing.assert_close(
        explain(g, x, target="background", layers=False).input, -by_mask.input
    )


@pytest.mark.parametrize(
    "target",
    [
        "foreground",
        ("pixel", 32, 0),
        ("box", 5, 5, 5, 10),
        ("box", 0, 0, 10),
        torch.zeros(1, 1, 8, 8).bool(),
    ],
)
def test_bad_targets_raise(target):
    with pytest.raises(ValueError):
        explain(_small_net(), random_images(1, 32), target=target, layers=False)


def test_bad_start_raises():
    with pytest.raises(ValueError, match="unknown start"):
        explain(_small_net(), random_images(1, 32), start="zeros", layers=False)


def test_registry():
    assert set(COMPOSITES) == {"lrp0", "paper", "epsilon-gamma-box", "zplus-epsilon-box",
                               "alpha2-beta1", "alpha1-beta0"}
    with pytest.raises(KeyError, match="epsilon-gamma-box"):
        get_composite("gamma")
    with pytest.raises(KeyError, match="lrp0"):
        explain(_small_net(), random_images(1, 32), composite="nope")


def test_first_layer_rule_goes_to_the_first_convolution_only():
    g = Generator()
    from endoxai.explain.canonize import prepare
    from endoxai.explain.propagate import RuleLayer
    from endoxai.explain.rules import GeneralizedGamma, ZBox

    shadow = prepare(g, get_composite("epsilon-gamma-box"))
    rules = {n: m.rule for n, m in shadow.named_modules() if isinstance(m, RuleLayer)}
    assert isinstance(rules.pop("down1.0"), ZBox)
    assert len(rules) == 15 and all(isinstance(r, GeneralizedGamma) for r in rules.values())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in shadow.modules())  # all folded


def test_default_composite_rules_on_the_generator():
    from endoxai.explain import DEFAULT_COMPOSITE
    from endoxai.explain.canonize import prepare
    from endoxai.explain.propagate import RuleLayer
    from endoxai.explain.rules import AlphaBeta, GeneralizedGamma, ZBox

    assert DEFAULT_COMPOSITE == "epsilon-gamma-box" and DEFAULT_COMPOSITE in COMPOSITES
    shadow = prepare(Generator(width=4), get_composite(DEFAULT_COMPOSITE))
    rules = {n: m.rule for n, m in shadow.named_modules() if isinstance(m, RuleLayer)}
    first = rules.pop("down1.0")
    assert isinstance(first, ZBox) and (first.low, first.high) == (-1.0, 1.0)
    assert all(rule == GeneralizedGamma(0.25) for rule in rules.values())
    # the decoder's z⁺ and the encoder's ε of zplus-epsilon-box, by block name
    shadow = prepare(Generator(width=4), get_composite("zplus-epsilon-box"))
    rules = {n: m.rule for n, m in shadow.named_modules() if isinstance(m, RuleLayer)}
    assert isinstance(rules.pop("down1.0"), ZBox)
    assert all(rules[f"down{i}.0"] == Epsilon(0.1) for i in range(2, 9))
    assert all(rules[f"up{j}.0"] == AlphaBeta(1.0, 0.0) for j in range(1, 9))


def test_name_map_gives_rules_by_layer_name_after_the_first_layer_rule():
    from endoxai.explain.canonize import prepare
    from endoxai.explain.composites import CONVOLUTIONS
    from endoxai.explain.propagate import RuleLayer
    from endoxai.explain.rules import Gamma, ZBox
    from endoxai.models import GeneratorLogits

    composite = Composite(first_map=((CONVOLUTIONS, ZBox()),),
                          name_map=(("up[78].*", Epsilon(0.5)), ("up*", Epsilon(0.1)),
                                    ("down1.*", Epsilon(9.0))),
                          layer_map=((CONVOLUTIONS, Gamma(0.25)),))
    g = Generator(width=4)
    for model, prefix in ((g, ""), (GeneratorLogits(g), "generator.")):
        shadow = prepare(model, composite)
        rules = {n.removeprefix(prefix): m.rule for n, m in shadow.named_modules()
                 if isinstance(m, RuleLayer)}
        assert isinstance(rules["down1.0"], ZBox)  # the first layer's rule wins over its name
        assert rules["up7.0"] == rules["up8.0"] == Epsilon(0.5)  # first matching pattern wins
        assert all(rules[f"up{j}.0"] == Epsilon(0.1) for j in range(1, 7))
        assert all(rules[f"down{i}.0"] == Gamma(0.25) for i in range(2, 9))


class _Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x))


class _OwnParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.conv(x) * self.gain


@pytest.mark.parametrize(
    "model, message",
    [
        (_Pooled(), "'pool' .*MaxPool2d"),
        (_OwnParameter(), "<root>.*gain"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm(4)), "'1' .*LayerNorm.*parameters"),
        (
            nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)),
            "BatchNorm '0' does not directly follow",
        ),
        (nn.Sequential(nn.Conv2d(3, 4, 3, padding="same")), "padding='same'"),
    ],
)
def test_unsupported_layers_raise_naming_the_layer(model, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        explain(model, torch.rand(1, 3, 8, 8), target="mask", layers=False)


def test_custom_composite_needs_a_rule_for_every_layer():
    composite = Composite(layer_map=(((nn.Conv2d,), Epsilon(0.0)),))
    with pytest.raises(KeyError, match="'up1.0'"):
        explain(Generator(), random_images(1, 256, dtype=torch.float32), composite=composite)


def test_works_on_a_plain_cnn_with_linear_head():
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(4 * 6 * 6, 5),
            nn.BatchNorm1d(5),
            nn.Tanh(),
            nn.Dropout(0.5),
            nn.Linear(5, 2),
        )
        .double()
        .eval()
    )
    x = torch.rand(3, 3, 6, 6, dtype=torch.float64) * 2 - 1
    exp = explain(
        model,
        x,
        target=torch.ones(3, 2, dtype=torch.bool),
        composite="epsilon-gamma-box",
        layers=["2", "6"],
    )
    assert exp.input.shape == x.shape and exp.layers["2"].shape == (3, 4, 6, 6)
    assert torch.isfinite(exp.input).all()
    lrp0 = explain(
        model, x, target=torch.ones(3, 2, dtype=torch.bool), composite="lrp0", layers=False
    )
    assert torch.isfinite(lrp0.input).all()


def test_explainer_reuse_matches_explain():
    from endoxai.explain import Explainer

    net = _small_net()
    x = random_images(3, 32, seed=4)
    explainer = Explainer(net, "epsilon-gamma-box")
    first = explainer(x[:2], layers=["1", "4"], layer_inputs=True)
    second = explainer(x[2:], layers=["1", "4"])
    fresh = explain(net, x, composite="epsilon-gamma-box", layers=["1", "4"])
    torch.testing.assert_close(torch.cat([first.input, second.input]), fresh.input)
    torch.testing.assert_close(
        torch.cat([first.layers["4"], second.layers["4"]]), fresh.layers["4"]
    )
    assert list(second.layer_inputs) == [] and list(first.layer_inputs) == ["1", "4"]
    shadow = explainer._shadow
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in shadow.modules())


@pytest.mark.slow
@pytest.mark.skipif(not runtime.cpu_has_native_bf16(),
                    reason="bf16 LRP accuracy is validated on CPUs with native bf16 only: on an AMD "
                           "Zen 3 without it (torch 2.13 CPU) this test's bf16 input map was all NaN, "
                           "which is now redone in fp32 (test_non_finite_low_precision_...)")
@pytest.mark.parametrize("composite", ["epsilon-gamma-box", "alpha1-beta0"])
def test_bf16_explanation_approximates_fp32(composite):
    """bf16 autocast is an approximation of the exact fp32 propagation: the input map must stay
    highly correlated with it and the relevance total close; results come back as float32."""
    g = random_generator(seed=3, dtype=torch.float32)
    x = random_images(1, 256, seed=5, dtype=torch.float32)
    exact = explain(g, x, composite=composite, layers=["down4", "up4"])
    fast = explain(g, x, composite=composite, layers=["down4", "up4"], precision="bf16")
    assert fast.input.dtype == fast.layers["up4"].dtype == fast.logits.dtype == torch.float32
    for a, b in ((exact.input, fast.input), (exact.layers["up4"], fast.layers["up4"])):
        a, b = a.flatten().double(), b.flatten().double()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99
    total, approx = exact.input.sum().item(), fast.input.sum().item()
    assert abs(approx - total) <= 0.02 * abs(exact.output.sum().item())
    # the explained target is the bf16 model's own mask: nearly the fp32 one
    assert (exact.target == fast.target).float().mean() > 0.97


def test_auto_precision_is_fp32_for_lrp_even_with_native_bf16(monkeypatch):
    # bf16 LRP was measured slower than fp32 on a CPU with AMX (bench_lrp_precision.py), and
    # unstable for composites whose denominators pass through zero: auto never picks it
    from endoxai import runtime
    from endoxai.explain import Explainer

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", torch.device("cpu"), inference=True) == "bf16"
    net = _small_net()
    for name in ("epsilon-gamma-box", "alpha1-beta0", "paper", "lrp0"):
        assert Explainer(net, name, "auto").precision == "fp32"
        assert Explainer(net, name, "bf16").precision == "bf16"  # an explicit choice is kept
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert Explainer(net, "epsilon-gamma-box", "auto").precision == "fp32"


def test_non_finite_low_precision_relevance_is_propagated_again_in_fp32(nan_under_autocast,
                                                                        caplog):
    """A bf16 propagation that returns NaN (as the emulated bf16 path did on a CPU without native
    bf16) is redone in fp32 with a warning: the maps equal the fp32 ones, never NaN."""
    from endoxai.explain import Explainer

    net = _small_net()
    x = random_images(2, 32, seed=6)
    exact = explain(net, x, layers=["1", "4"], layer_inputs=True)
    with caplog.at_level("WARNING", logger="endoxai.explain.explanation"):
        fast = explain(net, x, layers=["1", "4"], layer_inputs=True, precision="bf16")
    assert "a batch of 2 image(s): bf16 relevance was not finite" in caplog.text
    assert "explained again in fp32, so this result is fp32" in caplog.text
    assert fast.precision == "fp32" and exact.precision == "fp32"
    torch.testing.assert_close(fast.input, exact.input)
    for name in ("1", "4"):
        torch.testing.assert_close(fast.layers[name], exact.layers[name])
        torch.testing.assert_close(fast.layer_inputs[name], exact.layer_inputs[name])
    caplog.clear()
    with caplog.at_level("WARNING", logger="endoxai.explain.explanation"):
        Explainer(net, "epsilon-gamma-box", "bf16")(x, layers=["1"], sources=["a.jpg", "b.png"])
    assert caplog.text.count("a.jpg, b.png: bf16 relevance was not finite") == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="endoxai.explain.explanation"):
        explain(net, x, layers=["1", "4"])  # fp32 is never redone
    assert "explained again" not in caplog.text
