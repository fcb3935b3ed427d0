"""The conservation table: each row says what it is, and the rows add up to the output."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from endoxai.explain import Explainer, get_composite
from endoxai.explain.conservation import absorbers, format_conservation
from endoxai.models import Generator

SIZE = 256


def _generator(seed: int = 0, shifts: bool = True) -> Generator:
    """A width-8 generator; with ``shifts`` its BatchNorms get random statistics and affine
    parameters and its biases random values (so blocks absorb relevance), without them every
    bias and shift is 0 (so no block can absorb any)."""
    torch.manual_seed(seed)
    g = Generator(width=8).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean) if shifts else 0)
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
                m.bias.copy_(0.1 * torch.randn_like(m.bias) if shifts else 0)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.copy_(0.05 * torch.randn_like(m.bias) if shifts else 0)
    return g


def _explain(g, composite: str, dtype=torch.float32, seed: int = 1):
    torch.manual_seed(seed)
    x = (torch.rand(2, 3, SIZE, SIZE) * 2 - 1).to(dtype)
    return Explainer(g.to(dtype), composite, "fp32")(x, target="mask", layer_inputs=True)


def test_rows_say_what_absorbs_in_each_block():
    g = Generator(width=8)
    egb = absorbers(g, get_composite("epsilon-gamma-box"))
    assert egb["down1"] == "z^B box rule: ε"  # the box rule leaves the bias out
    assert egb["down2"] == "generalised γ: batch-norm shift, ε"
    assert egb["up8"] == "generalised γ: bias, ε"
    lrp0 = absorbers(g, get_composite("lrp0"))
    assert lrp0["down1"] == "LRP-0: bias" and lrp0["up3"] == "LRP-0: batch-norm shift"
    assert absorbers(g, get_composite("paper"))["up8"] == "γ rule: bias, ε"
    assert list(egb) == [f"down{i}" for i in range(1, 9)] + [f"up{i}" for i in range(1, 9)]


@pytest.mark.parametrize("composite", ["epsilon-gamma-box", "lrp0"])
def test_the_rows_add_up_on_screen(composite):
    g = _generator()
    exp = _explain(g, composite)
    table = format_conservation(exp.flow, absorbers(g, get_composite(composite)), "t")
    lines = table.splitlines()
    rows = lines[2:-1]
    assert rows[0].startswith("at the output") and rows[-1].startswith("kept at the input")
    assert len(rows) == 1 + 16 + 1 and all(r.startswith("absorbed in ") for r in rows[1:-1])
    # columns: Σ relevance, share, min share, max share (two images)
    values = [float(r.split()[-4]) for r in rows]
    shares = [float(r.split()[-3].rstrip("%")) for r in rows]
    assert values[0] == pytest.approx(float(exp.output.double().sum()), rel=1e-4)
    assert values[-1] == pytest.approx(float(exp.input.double().sum()), rel=1e-4)
    assert sum(abs(s) for s in shares[1:-1]) > 1.0  # these blocks do absorb: not a trivial sum
    # what a reader adds up: output = absorbed + kept, to the printed precision
    assert sum(values[1:]) == pytest.approx(values[0], rel=1e-3)
    assert sum(shares[1:]) == pytest.approx(100.0, abs=0.01 * 17)
    assert re.match(r"output − absorbed − kept = \S+ \(rounding\)", lines[-1])


def test_without_biases_and_shifts_nothing_is_absorbed():
    # LRP-0 conserves exactly when no layer has a bias or a shift: every absorbed row is 0 and
    # the input keeps 100 % (float64, so rounding is far below the printed digits)
    g = _generator(shifts=False)
    exp = _explain(g, "lrp0", dtype=torch.float64)
    rows = format_conservation(exp.flow).splitlines()[1:-1]
    assert all(r.split()[-3] in ("0.00%", "-0.00%") for r in rows[1:-1])
    assert rows[-1].split()[-3] == "100.00%"


def test_an_output_bias_absorbs_its_share():
    # One bias b in up8 alone, LRP-0, start = the logit: each target pixel k starts with
    # R_k = z_k and passes on R_k (z_k - b) / z_k, so up8 absorbs b per target pixel.
    g = _generator(shifts=False)
    b = 0.3
    with torch.no_grad():
        g.up8[0].bias.fill_(b)
    exp = _explain(g, "lrp0", dtype=torch.float64)
    n_target = int(exp.target.sum())
    assert n_target > 0
    flow = exp.flow
    assert float(flow.absorbed_decoder[:, 7].sum()) == pytest.approx(b * n_target, rel=1e-6)
    rows = format_conservation(flow).splitlines()[1:-1]
    up8 = next(r for r in rows if r.startswith("absorbed in up8"))
    assert float(up8.split()[-4]) == pytest.approx(b * n_target, rel=1e-4)
