"""Time LRP explanations of the Table-1 generator side by side and print a markdown table.

Methods, each run once per round (rounds interleave the methods, so that a busy machine slows
all of them alike; the order rotates every round); the table gives medians over the rounds after
the warm-up:

- ``forward``: ``Generator.logits`` under ``torch.no_grad`` (NCHW, the layout the model has), and
  ``forward-cl`` the same in channels-last layout (often faster on CPU); ratios ("× fwd") are
  taken against the faster of the two;
- ``endoxai <composite>``: ``explain(..., layers=True)``, one explanation with all 16 block maps,
  including its per-call preparation (copy, BatchNorm folding, derived weights); with
  ``--prepared`` also ``Explainer(generator, composite)`` built once and then called per image;
- ``zennit EpsilonGammaBox``: Zennit's ``EpsilonGammaBox(low=-1, high=1)`` with the same layer
  maps (if zennit is installed; torchvision stand-ins as in the tests);
- ``naive paper``: the layer-by-layer procedure of Montavon et al. (2019): forward each layer
  with ρ(w), ``s = R / z``, backward, ``R = a · c``, for the ``paper`` rule; written here from that
  description, its input relevance is compared with ``endoxai paper``.

Peak RSS: for each method, one more run after the timing with the kernel's peak-RSS counter
reset (``/proc/self/clear_refs``), reported as the process peak and its rise over the resident
size before the run (model, inputs and Python are resident already).

Example: ``python benchmarks/bench_lrp.py --size 512 --repeats 5 --batch 1 2 --output lrp.md``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved, load_average, machine, peak_rss, script_main
from torch import nn

from endoxai.explain import Explainer, explain
from endoxai.explain.zennit_compat import import_zennit
from endoxai.models import Generator, GeneratorLogits

COMPOSITES = ("epsilon-gamma-box", "paper", "lrp0")
GAMMA, EPS = 0.25, 1e-6  # the paper composite's γ and the stabiliser shared by all rules


# ---------------------------------------------------------------- Zennit with block maps
def zennit_explain(zennit, generator: Generator, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Input and block relevances by Zennit's EpsilonGammaBox (target 'mask', logit start)."""
    wrapped = GeneratorLogits(generator).eval()
    composite = zennit.composites.EpsilonGammaBox(low=-1.0, high=1.0)
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
        for name, module in generator.named_children()
    ]
    try:
        x = x.clone().requires_grad_(True)
        with composite.context(wrapped) as modified:
            logits = modified(x)
            names = list(outputs)
            grads = torch.autograd.grad(
                logits, [x] + [outputs[n] for n in names], grad_outputs=logits * (logits > 0)
            )
    finally:
        for h in handles:
            h.remove()
    return grads[0], dict(zip(names, grads[1:]))


# ---------------------------------------------------------------- naive layer-by-layer LRP
def _fold(block: nn.Sequential) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None]:
    """(layer, folded weight, folded bias) of a block: its (transposed) conv and following BN."""
    layer = block[0]
    w = layer.weight.detach()
    b = None if layer.bias is None else layer.bias.detach()
    bn = next((m for m in block if isinstance(m, nn.BatchNorm2d)), None)
    if bn is not None:
        s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shape = (1, -1, 1, 1) if isinstance(layer, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        w = w * s.view(shape)
        b = (torch.zeros_like(s) if b is None else b) - bn.running_mean
        b = b * s + bn.bias.detach()
    return layer, w, b


def _apply(
    layer: nn.Module, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> torch.Tensor:
    if isinstance(layer, nn.ConvTranspose2d):
        return F.conv_transpose2d(a, w, b, layer.stride, layer.padding, layer.output_padding)
    return F.conv2d(a, w, b, layer.stride, layer.padding)


def _activation(block: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    act = block[-1]
    return act if isinstance(act, (nn.ReLU, nn.LeakyReLU)) else (lambda t: t)


def naive_paper(
    generator: Generator, x: torch.Tensor, relevance: torch.Tensor
) -> tuple[torch.Tensor, dict]:
    """LRP with the γ rule, one layer at a time (Montavon et al. 2019, Sect. 10.2):

    forward each layer with ρ(w) = w + γw⁺ (and ρ(b)), z = ε-stabilised, s = R / z,
    c = ∂(z · s)/∂a by autograd, R_a = a · c; skips: split the relevance of a concatenation by
    channel, add the skip share to the encoder output's relevance.
    """
    n = generator.depth
    blocks = {name: generator.get_submodule(name) for name, _ in generator.named_children()}
    folded = {name: _fold(block) for name, block in blocks.items()}
    inputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        a, skips = x, []
        for i in range(1, n + 1):
            name = f"down{i}"
            inputs[name] = a
            layer, w, b = folded[name]
            a = _activation(blocks[name])(_apply(layer, a, w, b))
            skips.append(a)
        skips.pop()
        for i in range(1, n):
            name = f"up{i}"
            inputs[name] = a
            layer, w, b = folded[name]
            a = torch.cat([_activation(blocks[name])(_apply(layer, a, w, b)), skips.pop()], 1)
        inputs[f"up{n}"] = a

    def lrp_step(name: str, r: torch.Tensor) -> torch.Tensor:
        layer, w, b = folded[name]
        a = inputs[name].detach().requires_grad_(True)
        rho_b = None if b is None else b + GAMMA * b.clamp(min=0)
        z = _apply(layer, a, w + GAMMA * w.clamp(min=0), rho_b)
        z = z + EPS * torch.where(z >= 0, 1.0, -1.0)
        s = (r / z).detach()
        (z * s).sum().backward()
        return (a * a.grad).detach()

    layers: dict[str, torch.Tensor] = {}
    skip_relevance: dict[int, torch.Tensor] = {}
    r = relevance
    for i in range(n, 0, -1):  # up8 .. up1
        layers[f"up{i}"] = r
        r_in = lrp_step(f"up{i}", r)
        if i > 1:
            c = generator.get_submodule(f"up{i - 1}")[0].out_channels
            r, skip_relevance[n + 1 - i] = r_in[:, :c], r_in[:, c:]
        else:
            r = r_in
    for i in range(n, 0, -1):  # down8 .. down1
        if i < n:
            r = r + skip_relevance[i]
        layers[f"down{i}"] = r
        r = lrp_step(f"down{i}", r)
    return r, layers


# ---------------------------------------------------------------- measuring
def run(args: argparse.Namespace) -> str:
    torch.manual_seed(args.seed)
    zennit = import_zennit() if "zennit" in args.methods else None
    generator = Generator().eval()
    generator_cl = copy.deepcopy(generator).to(memory_format=torch.channels_last)
    lines = []
    facts = machine()
    load_before = load_average()
    for batch in args.batch:
        x = torch.rand(batch, 3, args.size, args.size) * 2 - 1
        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            logits = generator.logits(x)
        start = logits * (logits > 0)

        def forward(x=x):
            with torch.no_grad():
                return generator.logits(x)

        def forward_cl(x=x_cl):
            with torch.no_grad():
                return generator_cl.logits(x)

        methods: dict[str, Callable[[], object]] = {"forward": forward, "forward-cl": forward_cl}
        for c in COMPOSITES:
            if c in args.methods:
                methods[f"endoxai {c}"] = lambda c=c, x=x: explain(
                    generator, x, composite=c, layers=True
                )
        if args.bf16:
            methods["endoxai epsilon-gamma-box, bf16"] = lambda x=x: explain(
                generator, x, composite="epsilon-gamma-box", layers=True, precision="bf16"
            )
        for c in ("epsilon-gamma-box", "paper"):
            if c in args.methods and args.prepared:
                explainer = Explainer(generator, c)  # built once: its preparation is not timed
                methods[f"endoxai {c}, prepared"] = lambda e=explainer, x=x: e(x, layers=True)
        if zennit is not None:
            methods["zennit EpsilonGammaBox"] = lambda x=x: zennit_explain(zennit, generator, x)
        if "naive" in args.methods:
            methods["naive paper"] = lambda x=x, r=start: naive_paper(generator, x, r)

        times, cpu = interleaved(methods, args.repeats, args.warmup, label=f"batch {batch}: ")
        memory = {name: peak_rss(fn) for name, fn in methods.items()}
        checks = _cross_checks(generator, x, start, zennit, methods)

        median = {name: statistics.median(t) for name, t in times.items()}
        median_cpu = {name: statistics.median(t) for name, t in cpu.items()}
        fwd = min(median["forward"], median["forward-cl"])
        fwd_cpu = min(median_cpu["forward"], median_cpu["forward-cl"])
        zennit_time = median.get("zennit EpsilonGammaBox")
        zennit_cpu = median_cpu.get("zennit EpsilonGammaBox")
        lines.append(f"\nBatch {batch}, {args.size}x{args.size}, fp32:\n")
        lines.append(
            "| method | wall s (median) | wall s (min) | wall s / image | × fwd | Zennit ÷ this "
            "| CPU s (median) | × fwd CPU | Zennit ÷ this, CPU | peak RSS MiB (rise) "
            "| max rel. diff |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in methods:
            m, c = median[name], median_cpu[name]
            ours = zennit_time and name.startswith("endoxai")
            vs_zennit = f"{zennit_time / m:.2f}" if ours else ""
            vs_zennit_cpu = f"{zennit_cpu / c:.2f}" if ours else ""
            peak, rise = memory[name]
            lines.append(
                f"| {name} | {m:.3f} | {min(times[name]):.3f} | {m / batch:.3f} | {m / fwd:.2f} "
                f"| {vs_zennit} | {c:.3f} | {c / fwd_cpu:.2f} | {vs_zennit_cpu} "
                f"| {peak:.0f} (+{rise:.0f}) | {checks.get(name, '')} |"
            )
    header = [
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        f"- load average before / after: {load_before} / {load_average()}",
        f"- medians of {args.repeats} interleaved rounds after {args.warmup} warm-up round(s); "
        "× fwd is against the faster forward layout; CPU s = process CPU time (user + system, both "
        "threads), less sensitive to other jobs on the machine than wall time; max rel. diff = "
        "max |Δ| / max |endoxai| of the input relevance (Zennit vs epsilon-gamma-box in float32, "
        "naive vs paper in float64)",
    ]
    return "\n".join(header + lines) + "\n"


def _cross_checks(generator, x, start, zennit, methods) -> dict[str, str]:
    """Max relative difference of input relevance: Zennit vs endoxai egb, naive vs endoxai paper."""
    checks = {}

    def rel(a: torch.Tensor, b: torch.Tensor) -> str:
        return f"{((a - b).abs().max() / b.abs().max()).item():.1e}"

    if zennit is not None:
        ours = explain(generator, x, composite="epsilon-gamma-box", layers=False).input
        checks["zennit EpsilonGammaBox"] = rel(zennit_explain(zennit, generator, x)[0], ours)
    if "naive paper" in methods:
        # float64: the γ rule on inputs of both signs has near-zero denominators, where float32
        # rounding (different summation orders) alone moves the result by ~1e-3.
        g64, x64 = copy.deepcopy(generator).double(), x.double()
        ours = explain(g64, x64, composite="paper", layers=False)
        checks["naive paper"] = rel(naive_paper(g64, x64, ours.output)[0], ours.input)
    return checks


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--size", type=int, default=512, help="image side, a multiple of 256 (default 512)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument(
        "--batch", type=int, nargs="+", default=[1], help="batch sizes to run (default 1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--methods",
        nargs="+",
        default=[*COMPOSITES, "zennit", "naive"],
        choices=[*COMPOSITES, "zennit", "naive"],
        help="what to time besides the forward passes",
    )
    p.add_argument(
        "--prepared",
        action="store_true",
        help="also time an Explainer built once (weight preparation amortised over calls)",
    )
    p.add_argument(
        "--bf16", action="store_true",
        help="also time epsilon-gamma-box under bf16 autocast (explain --precision bf16)",
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
