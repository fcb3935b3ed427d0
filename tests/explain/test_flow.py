"""Skip-flow accounting: hand-computable cases, one-path generators, and the ledger's closure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from endoxai.explain import explain
from endoxai.explain.flow import SkipFlow, format_flow_table, skip_flow
from endoxai.models import Generator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find unets
from unets import WIDTH, small_generator  # noqa: E402

def images(n: int = 2, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.rand(n, 3, 256, 256, generator=gen, dtype=dtype) * 2 - 1


def decoder_conv(g: Generator, j: int) -> nn.ConvTranspose2d:
    return g.get_submodule(f"up{j}")[0]


def test_z_rule_split_at_the_last_concatenation_is_the_logit_split():
    # LRP-0 started from the logit gives each input of up8 its contribution x_j w_jk per output
    # k in the target: the skip's relevance is the part of the logits the skip channels produce,
    # Σ_{k∈T} ConvT(skip input, W_skip)_k, and up8 absorbs its bias, |T|·b. Computed here from a
    # plain forward pass, without LRP.
    g = small_generator(seed=1)
    x = images()
    received = {}
    handle = g.up8.register_forward_pre_hook(lambda m, args: received.setdefault("x", args[0]))
    logits = g.logits(x)
    handle.remove()
    target = logits > 0
    conv = decoder_conv(g, 8)
    c = g.up7[0].out_channels
    z_up = F.conv_transpose2d(received["x"][:, :c], conv.weight[:c], None, 2, 1)
    z_skip = F.conv_transpose2d(received["x"][:, c:], conv.weight[c:], None, 2, 1)
    expected_skip = (z_skip * target).flatten(1).sum(1)
    expected_deeper = (z_up * target).flatten(1).sum(1)
    expected_bias = target.flatten(1).sum(1).double() * conv.bias.item()

    flow = explain(g, x, target="mask", composite="lrp0", layer_inputs=True).flow
    assert expected_skip.abs().min() > 1e-3 and expected_deeper.abs().min() > 1e-3
    torch.testing.assert_close(flow.skip[:, 0], expected_skip, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(flow.deeper[:, 0], expected_deeper, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(flow.absorbed_decoder[:, 7], expected_bias, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("composite", ["lrp0", "epsilon-gamma-box", "alpha1-beta0"])
def test_skip_only_path(composite):
    # up8 ignores the decoder's upsampled channels: everything that passes up8 enters level 1
    # through its skip, nothing continues deeper, nothing reaches the bottleneck.
    g = small_generator(seed=2)
    with torch.no_grad():
        decoder_conv(g, 8).weight[: g.up7[0].out_channels] = 0
    flow = explain(g, images(), target="mask", composite=composite, layer_inputs=True).flow
    scale = flow.total.abs()
    assert (scale > 0).all()
    assert (flow.deeper.abs() <= 1e-12 * scale[:, None]).all()
    assert (flow.skip[:, 1:].abs() <= 1e-12 * scale[:, None]).all()
    assert (flow.bottleneck.abs() <= 1e-12 * scale).all()
    torch.testing.assert_close(flow.skip[:, 0], flow.total - flow.absorbed_decoder[:, 7])


def test_bottleneck_only_path_bias_free():
    # Every decoder block ignores its skip channels and nothing has a bias: under LRP-0 all the
    # output's relevance reaches the bottleneck.
    g = small_generator(seed=3, bias_free=True)
    with torch.no_grad():
        for j in range(2, 9):
            decoder_conv(g, j).weight[g.get_submodule(f"up{j - 1}")[0].out_channels:] = 0
    flow = explain(g, images(), target="mask", composite="lrp0", layer_inputs=True).flow
    assert (flow.total > 0).all()
    assert flow.skip.abs().max() == 0  # the zeroed weights give exactly zero contributions
    torch.testing.assert_close(flow.bottleneck, flow.total, rtol=1e-9, atol=0)
    torch.testing.assert_close(flow.deeper, flow.total[:, None].expand(-1, 7), rtol=1e-9, atol=0)


def test_bias_free_z_rule_conserves_at_every_split():
    g = small_generator(seed=4, bias_free=True)
    flow = explain(g, images(), target="mask", composite="lrp0", layer_inputs=True).flow
    tol = 1e-9 * float(flow.total.abs().max())
    assert flow.absorbed_decoder.abs().max() <= tol
    assert flow.absorbed_encoder.abs().max() <= tol
    # what continues deeper at level k is exactly what the deeper levels and bottleneck receive
    for k in range(1, 8):
        below = flow.skip[:, k:].sum(1) + flow.bottleneck
        torch.testing.assert_close(flow.deeper[:, k - 1], below, rtol=1e-9, atol=tol)
    torch.testing.assert_close(flow.input, flow.total, rtol=1e-9, atol=tol)
    assert (flow.skip[:, 1:].abs() > 0).any()  # a real split, not everything through level 1


TARGETS = ["mask", "background", ("pixel", 100, 37), ("box", 8, 16, 120, 200), "tensor"]


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("composite", ["epsilon-gamma-box", "paper", "alpha2-beta1"])
def test_ledger_closes_in_float32_for_every_target_kind(target, composite):
    g = small_generator(seed=5, dtype=torch.float32)
    x = images(dtype=torch.float32)
    if target == "tensor":
        target = torch.zeros(2, 1, 256, 256, dtype=torch.bool)
        target[0, 0, 50:60, 70:200] = True
        target[1, 0, ::3, ::5] = True
    flow = explain(g, x, target=target, composite=composite, layer_inputs=True).flow
    scale = flow.total.abs() + flow.absorbed_decoder.abs().sum(1)
    assert (flow.total != 0).all()
    # the goal: shares add up to the total relevance within 1e-5
    assert (flow.residual().abs() <= 1e-5 * scale).all(), flow.residual()
    through = flow.total - flow.absorbed_decoder.sum(1) - flow.absorbed_encoder.sum(1)
    encoder = flow.absorbed_encoder.abs().sum(1)
    assert ((through - flow.input).abs() <= 1e-5 * (scale + encoder)).all()


def test_arrays_round_trip_summed_and_table():
    g = small_generator(seed=6)
    flow = explain(g, images(), target="mask", composite="epsilon-gamma-box",
                   layer_inputs=True).flow
    again = SkipFlow.concat([SkipFlow.from_arrays(flow.arrays(i)) for i in range(2)])
    for a, b in zip(flow._fields(), again._fields()):
        torch.testing.assert_close(a, b)
    assert list(flow.arrays(0)["flow_levels"]) == list(range(1, 8))
    summed = flow.summed()
    torch.testing.assert_close(summed.skip[0], flow.skip.sum(0))
    shares = summed.shares()
    assert float(shares["skip"].sum() + shares["bottleneck"] + shares["absorbed_decoder"].sum()) \
        == pytest.approx(1.0, abs=1e-9)
    text = format_flow_table(flow)
    assert text.splitlines()[1].startswith("down1") and "bottleneck" in text
    share = 100 * float(shares["skip"][0, 0])
    assert f"{share:.2f}%" in text.splitlines()[1]
    assert np.isfinite(flow.arrays(1)["flow_total"])


def test_needs_block_inputs_and_a_unet():
    g = small_generator(seed=7)
    with pytest.raises(ValueError, match="layer_inputs=True"):
        skip_flow(explain(g, images(1), target="mask", composite="lrp0"))
    with pytest.raises(ValueError, match="U-Net"):
        _ = explain(g, images(1), target="mask", composite="lrp0", layers=["down1", "up8"],
                    layer_inputs=True).flow
