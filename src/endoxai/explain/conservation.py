"""Where an explanation's relevance goes: the output's total, what each block absorbs and why,
what is kept at the input, and the check that these add up.

A rule passes on less (or more) relevance than it receives where its denominator holds terms
that no input owns: a bias, a batch-norm shift folded into the layer, the stabiliser ε, or γ's
share of the bias. The z^B box rule leaves the bias out and loses only ε. So on a trained model
the input keeps less than the output's total (or more, where negative biases dominate), and
each block's share says where: what it absorbs is its output relevance minus the relevance it
passes to its input (``explain(..., layer_inputs=True)``; ``endoxai.explain.flow``). The blocks'
shares and the input's add up to the output exactly (up to rounding): a larger residual would be
relevance lost outside the rules, i.e. a bug.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import nn

from endoxai.explain.composites import LINEAR_LAYERS, Composite
from endoxai.explain.flow import SkipFlow
from endoxai.explain.rules import AlphaBeta, Epsilon, Gamma, GeneralizedGamma, ZBox

RESIDUAL_WARNING = 1e-4  # of the output's total: more than rounding


def absorbers(model: nn.Module, composite: Composite) -> dict[str, str]:
    """Block (direct child of ``model``) -> its rule and what in it absorbs relevance, e.g.
    ``"generalised γ: batch-norm shift, ε"``; blocks without a linear layer are left out."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LINEAR_LAYERS)]
    rules = composite.assign(layers)
    found: dict[str, list[str]] = {}
    for name, layer in layers:
        block = name.split(".")[0]
        rule = rules[name]
        parts = []
        if not isinstance(rule, ZBox):  # z^B leaves the bias out of its denominator
            if layer.bias is not None:
                parts.append("bias")
            if any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for m in model.get_submodule(block).modules()):
                parts.append("batch-norm shift")
        if (rule.epsilon if isinstance(rule, Epsilon) else rule.stabilizer) > 0:
            parts.append("ε")
        found.setdefault(block, []).append(f"{_rule_name(rule)}: {', '.join(parts) or 'nothing'}")
    return {block: "; ".join(texts) for block, texts in found.items()}


def _rule_name(rule: object) -> str:
    if isinstance(rule, Epsilon):
        return "LRP-0" if rule.epsilon == 0 else "ε rule"
    return {ZBox: "z^B box rule", Gamma: "γ rule", GeneralizedGamma: "generalised γ",
            AlphaBeta: "αβ rule"}[type(rule)]


def conservation_rows(flow: SkipFlow) -> list[tuple[str, np.ndarray]]:
    """(row, per-image totals) in propagation order: ``output``, each block's absorbed relevance
    (up_D .. up_1, then down_D .. down_1) and ``input``; float64 (N,)."""
    depth = flow.depth
    rows = [("output", flow.total.numpy())]
    rows += [(f"up{j}", flow.absorbed_decoder[:, j - 1].numpy()) for j in range(depth, 0, -1)]
    rows += [(f"down{i}", flow.absorbed_encoder[:, i - 1].numpy()) for i in range(depth, 0, -1)]
    rows.append(("input", flow.input.numpy()))
    return rows


def format_conservation(flow: SkipFlow, absorbed_by: Mapping[str, str] | None = None,
                        title: str = "") -> str:
    """The plain-text table (module docstring) of ``flow``'s images together: Σ relevance and its
    share of the output's; with several images also the smallest and largest per-image share.
    ``absorbed_by``: block -> why it absorbs (``absorbers``)."""
    absorbed_by = absorbed_by or {}
    n = flow.total.shape[0]
    rows = conservation_rows(flow)
    out = rows[0][1]
    labels = {"output": "at the output (where propagation starts)",
              "input": "kept at the input (the heatmap's total)"}
    width = max(len(_label(name, labels, absorbed_by)) for name, _ in rows)
    head = f"{'':<{width}} {'Σ relevance':>13} {'share':>9}"
    if n > 1:
        head += f" {'min share':>10} {'max share':>10}"
    lines = [title] if title else []
    lines.append(head)
    total = float(out.sum())
    for name, values in rows:
        line = (f"{_label(name, labels, absorbed_by):<{width}} {float(values.sum()):>13.5g} "
                f"{_share(float(values.sum()), total):>9}")
        if n > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                shares = values / out
            shares = shares[np.isfinite(shares)]
            line += (f" {_share(shares.min(), 1.0):>10} {_share(shares.max(), 1.0):>10}"
                     if shares.size else f" {'n/a':>10} {'n/a':>10}")
        lines.append(line)
    residual = total - sum(float(v.sum()) for name, v in rows[1:])
    relative = abs(residual) / abs(total) if total else 0.0
    verdict = ("rounding" if relative <= RESIDUAL_WARNING else
               "MORE THAN ROUNDING: relevance was lost outside the rules (a bug; please report)")
    lines.append(f"output − absorbed − kept = {residual:.2g} ({verdict}). A negative share: "
                 "that block's biases and shifts added relevance instead of absorbing it")
    return "\n".join(lines)


def _label(name: str, labels: Mapping[str, str], absorbed_by: Mapping[str, str]) -> str:
    if name in labels:
        return labels[name]
    why = absorbed_by.get(name)
    return f"absorbed in {name}" + (f" ({why})" if why else "")


def _share(value: float, total: float) -> str:
    return f"{100 * value / total:.2f}%" if total and np.isfinite(value) else "n/a"
