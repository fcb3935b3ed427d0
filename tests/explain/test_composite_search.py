"""The composite search: the grid's rules per layer, the choosing rule, and one small search."""

from __future__ import annotations

import math

import pytest
import torch

from endoxai.explain.canonize import prepare
from endoxai.explain.composite_search import (
    candidate_name,
    candidates,
    choose,
    format_search_table,
    lerf_deviation,
    lerf_fall,
    registered,
    search_composites,
)
from endoxai.explain.composites import COMPOSITES
from endoxai.explain.faithfulness import FaithfulnessSettings
from endoxai.explain.propagate import RuleLayer
from endoxai.explain.rules import AlphaBeta, Epsilon, Flat, GeneralizedGamma
from endoxai.models import Generator


def test_grid_rules_per_layer():
    grid = candidates()
    assert len(grid) == 3 * 3 * 6
    composite = grid[candidate_name("flat", "zplus", "epsdepth")]
    shadow = prepare(Generator(width=4), composite)
    rules = {n: m.rule for n, m in shadow.named_modules() if isinstance(m, RuleLayer)}
    assert isinstance(rules["down1.0"], Flat)
    assert all(rules[f"down{i}.0"] == AlphaBeta(1.0, 0.0) for i in range(2, 9))
    assert [rules[f"up{j}.0"] for j in range(1, 9)] == [Epsilon(1.0)] * 4 + [Epsilon(0.1)] * 3 \
        + [Epsilon(0.01)]
    gamma = prepare(Generator(width=4), grid[candidate_name("box", "gamma", "gamma")])
    assert all(isinstance(m.rule, GeneralizedGamma) for n, m in gamma.named_modules()
               if isinstance(m, RuleLayer) and n != "down1.0")


def test_registered_adds_and_removes():
    before = dict(COMPOSITES)
    grid = {k: v for k, v in list(candidates().items())[:2]}
    with registered(grid):
        assert set(grid) <= set(COMPOSITES)
    assert COMPOSITES == before
    with pytest.raises(ValueError, match="already registered"):
        with registered({"lrp0": COMPOSITES["lrp0"]}):
            pass
    assert COMPOSITES == before


def test_lerf_fall_and_deviation():
    curve = [2.0, 2.1, 1.9, 1.7, 2.6, 0.0, 0.0]  # first half: k = 0..3
    assert lerf_fall(curve) == pytest.approx(0.15)  # 2.0 -> 1.7
    assert lerf_deviation(curve) == pytest.approx(0.15)
    assert lerf_fall([2.0, 3.0, 4.0]) == 0.0  # rising: no fall
    assert lerf_deviation([2.0, 3.0, 4.0]) == pytest.approx(0.5)  # K = 2: k <= 1 only
    assert math.isnan(lerf_fall([0.0, 1.0]))


def row(name, morf, fall, rho, candidate=True):
    # the plain ρ is high for everyone, as on real U-Nets: only the partial ρ may gate
    return {"method": name, "candidate": candidate, "aopc_morf": morf, "lerf_fall": fall,
            "rho_decoder": 0.9, "partial_rho_decoder": rho}


def test_choose_rule():
    rows = [row("a", 9.0, 0.5, 0.1),  # best MoRF, but its LeRF curve falls
            row("b", 5.0, 0.05, 0.7),
            row("c", 4.0, 0.0, 0.4),  # the only one that passes both gates
            row("gradient", 99.0, 0.0, 0.1, candidate=False)]  # references are never chosen
    assert choose(rows)[0] == "c"
    rows[2]["partial_rho_decoder"] = 0.6  # nobody passes the sanity gate: the LeRF gate alone
    chosen, rule = choose(rows)
    assert chosen == "b" and "none had" in rule
    assert choose([row("a", 9.0, 0.5, 0.1)])[0] is None


@pytest.mark.slow
def test_small_search_end_to_end():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = Generator(width=4).eval()
    with torch.no_grad():
        g.up8[0].bias.fill_(0.5)  # a non-empty prediction
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    grid = {k: v for k, v in candidates().items() if k.endswith("dec-eps0.1")
            and ".enc-gamma." in k and "in-box" in k}
    settings = FaithfulnessSettings(steps=2, ig_steps=2, precision="fp32")
    result = search_composites(g, x, None, ["a", "b"], settings, grid=grid, progress=False)
    methods = [r["method"] for r in result["rows"]]
    assert set(methods) == {"lrp:" + n for n in list(grid) + list(COMPOSITES)} | {
        "gradient", "gradient-x-input", "integrated-gradients", "random"}
    assert not set(grid) & set(COMPOSITES)  # the candidates were unregistered again
    morf = [r["aopc_morf"] for r in result["rows"]]
    assert morf == sorted(morf, reverse=True)
    gradient = next(r for r in result["rows"] if r["method"] == "gradient")
    assert gradient["morf_vs_gradient"] == pytest.approx(1.0)
    for key in ("rho_decoder", "partial_rho_decoder"):
        assert all(r[key] is not None for r in result["rows"] if r["method"] != "random")
    table = format_search_table(result)
    assert table.count("\n| ") == len(methods) and "Chosen:" in table
