"""LRP-0 on a bias-free generator: = gradient x input; relevance conserved at every cut."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from endoxai.explain import explain

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find lrp_models
from lrp_models import bias_free_generator, random_images

# Width 16 (the bundled model's) takes a fraction of a second; Table 1's width 64 about 5 s.
WIDTHS = [16, pytest.param(64, marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=WIDTHS, ids=lambda w: f"width{w}")
def setup(request):
    g = bias_free_generator(seed=0, width=request.param)
    x = random_images(1, 256, seed=1)
    exp = explain(g, x, target="mask", composite="lrp0", layers=True, layer_inputs=True)
    return g, x, exp


def test_lrp0_equals_gradient_times_input(setup):
    g, x, exp = setup
    # LRP-0 in a bias-free network of linear layers and positively homogeneous activations
    # (LeakyReLU, ReLU) is gradient x input of sum(logit * target): R_j = a_j ∂f/∂a_j.
    xg = x.clone().requires_grad_(True)
    logits = g.logits(xg)
    mask = (logits > 0).detach()
    assert 0 < mask.sum() < mask.numel()  # a real target, neither empty nor everything
    (grad,) = torch.autograd.grad((logits * mask).sum(), xg)
    reference = grad * x
    error = (exp.input - reference).abs().max() / reference.abs().max()
    assert error <= 1e-6, f"max relative error {error:.3g}"
    torch.testing.assert_close(exp.logits, logits.detach())
    torch.testing.assert_close(exp.output, logits.detach() * mask)


def _sum(t: torch.Tensor) -> float:
    return t.sum().item()


def test_lrp0_conserves_relevance_across_every_cut(setup):
    _, _, exp = setup
    out_rel, in_rel = exp.layers, exp.layer_inputs
    total = _sum(exp.output)
    assert total > 0
    close = {"rel": 1e-9, "abs": 1e-9 * abs(total)}
    assert _sum(exp.input) == pytest.approx(total, **close)
    assert list(out_rel) == [f"down{i}" for i in range(1, 9)] + [f"up{i}" for i in range(1, 9)]

    # Every block conserves: what leaves through its input equals what arrived at its output.
    for name in out_rel:
        assert _sum(in_rel[name]) == pytest.approx(_sum(out_rel[name]), **close), name

    # up_{9-k} receives cat([up_{8-k}, down_k]): the second part is down_k's skip relevance.
    skip = {}
    for k in range(1, 8):
        c = out_rel[f"up{8 - k}"].shape[1]
        torch.testing.assert_close(
            in_rel[f"up{9 - k}"][:, :c], out_rel[f"up{8 - k}"]
        )  # concat splits
        skip[k] = in_rel[f"up{9 - k}"][:, c:]
        assert skip[k].shape == out_rel[f"down{k}"].shape
        # The fork sums: down_k's relevance = what reaches it via down_{k+1} plus via the skip.
        torch.testing.assert_close(out_rel[f"down{k}"], in_rel[f"down{k + 1}"] + skip[k])
    torch.testing.assert_close(out_rel["down8"], in_rel["up1"])

    # Cut right after encoder block i: the main path plus the skips of down_1..down_i.
    for i in range(1, 9):
        main = in_rel[f"down{i + 1}"] if i < 8 else in_rel["up1"]
        cut = _sum(main) + sum(_sum(skip[k]) for k in range(1, min(i, 7) + 1))
        assert cut == pytest.approx(total, **close), f"cut after down{i}"
    # Cut right after decoder block j: its output plus the skips still to join (down_1..down_{8-j}).
    for j in range(1, 9):
        cut = _sum(out_rel[f"up{j}"]) + sum(_sum(skip[k]) for k in range(1, 9 - j))
        assert cut == pytest.approx(total, **close), f"cut after up{j}"
    # The naive statement "every block output sums to the total" is false with skips:
    assert _sum(out_rel["down4"]) != pytest.approx(total, rel=1e-3)


def test_totals_lists_output_blocks_input(setup):
    _, _, exp = setup
    totals = exp.totals()
    assert list(totals)[0] == "output" and list(totals)[-1] == "input"
    assert totals["up8"].item() == pytest.approx(_sum(exp.output), rel=1e-9)
