"""Every rule against a slow dense-matrix reference on tiny layers (float64, textbook formulas)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from endoxai.explain import (
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    GeneralizedGamma,
    WSquare,
    ZBox,
    explain,
)

EPS = 1e-6


def _dense(model: nn.Module, in_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map of ``model`` as (W (n_in, n_out), b (n_out,)), from identity basis vectors."""
    n_in = int(torch.tensor(in_shape).prod())
    with torch.no_grad():
        b = model(torch.zeros(1, *in_shape, dtype=torch.float64)).flatten()
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
        w = model(basis).reshape(n_in, -1) - b
    return w, b


def _stab(d: torch.Tensor, eps: float) -> torch.Tensor:
    return d + eps * torch.where(d >= 0, 1.0, -1.0)


def reference(
    rule, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, r: torch.Tensor
) -> torch.Tensor:
    """R_j = Σ_k share_jk R_k on dense matrices; x (n_in,), w (n_in, n_out), b and r (n_out,)."""
    c = x[:, None] * w  # contributions c_jk = x_j w_jk
    pos, neg = c.clamp(min=0), c.clamp(max=0)
    if isinstance(rule, Epsilon):
        z = c.sum(0) + b
        if rule.epsilon == 0:
            share = torch.where(z != 0, c / z, torch.zeros(()))
        else:
            share = c / _stab(z, rule.epsilon)
    elif isinstance(rule, Gamma):
        rho_w, rho_b = w + rule.gamma * w.clamp(min=0), b + rule.gamma * b.clamp(min=0)
        num = x[:, None] * rho_w
        share = num / _stab(num.sum(0) + rho_b, rule.stabilizer)
    elif isinstance(rule, GeneralizedGamma):
        z = c.sum(0) + b
        g = rule.gamma
        up = c + g * pos
        down = c + g * neg
        share_up = up / _stab(up.sum(0) + b + g * b.clamp(min=0), rule.stabilizer)
        share_down = down / _stab(down.sum(0) + b + g * b.clamp(max=0), rule.stabilizer)
        share = torch.where(z > 0, share_up, torch.where(z < 0, share_down, torch.zeros(())))
    elif isinstance(rule, ZBox):
        low = torch.as_tensor(rule.low, dtype=torch.float64).expand(x.shape)
        high = torch.as_tensor(rule.high, dtype=torch.float64).expand(x.shape)
        num = c - low[:, None] * w.clamp(min=0) - high[:, None] * w.clamp(max=0)
        share = num / _stab(num.sum(0), rule.stabilizer)
    elif isinstance(rule, AlphaBeta):
        share = rule.alpha * pos / _stab(
            pos.sum(0) + b.clamp(min=0), rule.stabilizer
        ) - rule.beta * neg / _stab(neg.sum(0) + b.clamp(max=0), rule.stabilizer)
    elif isinstance(rule, WSquare):
        v = w.square()
        share = v / _stab(v.sum(0), rule.stabilizer)
    elif isinstance(rule, Flat):
        v = (w != 0).double()  # connected: the dense map has no other zeros here
        share = v / _stab(v.sum(0), rule.stabilizer)
    else:
        raise TypeError(rule)
    return (share * r).sum(1)


def _layers():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    convt = nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1)
    convt_odd = nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.3, -0.7, 0.4]))  # a negative scale flips (s·w)⁺ into s·w⁻
        bn.bias.copy_(torch.tensor([0.2, -0.1, 0.05]))
        bn.running_mean.copy_(torch.tensor([0.1, -0.3, 0.2]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5]))
    return {
        "conv": (nn.Sequential(conv), (2, 5, 5)),
        "convT": (nn.Sequential(convt), (2, 3, 3)),
        "convT-groups": (nn.Sequential(convt_odd), (2, 3, 3)),
        "conv+bn": (nn.Sequential(conv, bn), (2, 5, 5)),
        "convT+bn": (nn.Sequential(convt, bn), (2, 3, 3)),
        "linear": (nn.Sequential(nn.Linear(7, 5)), (7,)),
    }


LAYERS = _layers()
RULES = {
    "lrp0": Epsilon(0.0),
    "epsilon": Epsilon(0.1),
    "gamma": Gamma(0.25),
    "generalized-gamma": GeneralizedGamma(0.25),
    "zbox": ZBox(-1.0, 1.0),
    "zbox-per-channel": ZBox(
        torch.tensor([-1.0, -0.5]).view(1, 2, 1, 1), torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    ),
    "alpha2-beta1": AlphaBeta(2.0, 1.0),
    "alpha1-beta0": AlphaBeta(1.0, 0.0),
    "wsquare": WSquare(),
    "flat": Flat(),
}


CASES = [
    (layer, rule)
    for layer in LAYERS
    for rule in RULES
    if not (rule == "zbox-per-channel" and layer == "linear")  # per-channel bounds need images
]


@pytest.mark.parametrize("layer_name, rule_name", CASES)
def test_rule_matches_dense_reference(layer_name, rule_name):
    model, in_shape = LAYERS[layer_name]
    rule = RULES[rule_name]
    model = model.double().eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, *in_shape, generator=gen, dtype=torch.float64) * 2 - 1  # mixed signs
    if isinstance(rule, ZBox):
        low = torch.as_tensor(rule.low, dtype=torch.float64)
        high = torch.as_tensor(rule.high, dtype=torch.float64)
        x = low + (high - low) * (x + 1) / 2  # inside the box
    with torch.no_grad():
        out = model(x)
    r_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    composite = Composite(layer_map=(((nn.Conv2d, nn.ConvTranspose2d, nn.Linear), rule),))
    exp = explain(
        model,
        x,
        target=torch.ones_like(out, dtype=torch.bool),
        composite=composite,
        layers=False,
        start=r_out,
    )
    w, b = _dense(model, in_shape)
    for i in range(x.shape[0]):
        rule_i = rule
        if isinstance(rule, ZBox) and isinstance(rule.low, torch.Tensor):
            rule_i = ZBox(
                rule.low.expand(1, *in_shape).flatten(), rule.high.expand(1, *in_shape).flatten()
            )
        expected = reference(rule_i, x[i].flatten(), w, b, r_out[i].flatten())
        torch.testing.assert_close(exp.input[i].flatten(), expected, rtol=1e-9, atol=1e-10)


def test_conserving_rules_conserve_on_a_bias_free_layer():
    model, in_shape = LAYERS["conv"]
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False).double()
    conv.weight.data.copy_(model[0].weight.data)
    x = torch.rand(1, *in_shape, dtype=torch.float64) + 0.1  # positive: every rule conserves
    for rule in (
        Epsilon(0.0),
        Gamma(0.25),
        GeneralizedGamma(0.25),
        AlphaBeta(2.0, 1.0),
        AlphaBeta(1.0, 0.0),
    ):
        composite = Composite(layer_map=(((nn.Conv2d,), rule),))
        exp = explain(nn.Sequential(conv), x, target="mask", composite=composite, layers=False)
        assert exp.input.sum().item() == pytest.approx(exp.output.sum().item(), rel=1e-5), rule


def test_lrp0_drops_zero_outputs_without_nan():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).double()
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[..., 0, 0] = 1.0  # most outputs see only zeros: z = 0 there
    composite = Composite(layer_map=(((nn.Conv2d,), Epsilon(0.0)),))
    exp = explain(
        nn.Sequential(conv),
        x,
        target=torch.ones(1, 2, 4, 4, dtype=torch.bool),
        composite=composite,
        layers=False,
        start="ones",
    )
    assert torch.isfinite(exp.input).all()
    assert exp.input[..., 1:, 1:].abs().sum() == 0  # inputs that are 0 get no relevance


def test_generalized_gamma_drops_zero_outputs_without_nan():
    # An output whose pre-activation is exactly 0 (no bias, only zero inputs in its window, or a
    # trained model's rare exact cancellation) has no sign: the rule drops its relevance. It must
    # not turn into 0/0 = NaN, which would spread to every input beneath it.
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).double()
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    x[..., 0, 0] = 1.0  # outputs away from the corner see only zeros: z = 0 there
    composite = Composite(layer_map=(((nn.Conv2d,), GeneralizedGamma(0.25)),))
    exp = explain(nn.Sequential(conv), x, target=torch.ones(1, 2, 6, 6, dtype=torch.bool),
                  composite=composite, layers=False, start="ones")
    assert torch.isfinite(exp.input).all()
    with torch.no_grad():
        z = conv(x)
    assert (z == 0).any() and (z != 0).any()
    # what the corner receives: the dense reference restricted to the outputs that have a sign
    w, b = _dense(nn.Sequential(conv), (1, 6, 6))
    r = (z != 0).double().flatten()
    expected = reference(GeneralizedGamma(0.25), x.flatten(), w, b, r)
    torch.testing.assert_close(exp.input.flatten(), expected, rtol=1e-9, atol=1e-12)
