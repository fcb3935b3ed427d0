"""LRP in bf16 against fp32 on this machine, side by side: speed and whether bf16 stays finite.

What ``explain --precision auto`` should pick: bf16 only where it is both faster and safe. For
each model and composite, every image is explained by an ``Explainer`` built once in fp32 and
one built once in bf16 (autocast), in interleaved rounds over the whole image set (the order
alternates every round, so that a busy machine slows both alike); the table gives medians over
the rounds after the warm-up, per image. The bf16 time includes the fp32 re-run that ``Explainer``
does for an image whose bf16 relevance is not finite: that is what a user of bf16 pays.

Safety, from one more pass per image outside the timing:

- ``non-finite``: images whose bf16 relevance had NaN or Inf (``Explainer`` warns and re-runs
  them in fp32);
- ``min corr``: the lowest Pearson correlation of an image's bf16 input map (summed over RGB)
  with its fp32 map, after any re-run;
- ``max Δ kept``: the largest difference, over images, of the share of the output relevance kept
  at the input (Σ input / Σ output), bf16 minus fp32.

Images: the first ``--n-images`` ids of Kvasir-SEG's train.txt (never the validation images
whose scores are reported), resized to each model's input size. Models: ``--checkpoint`` files
(trained models: where near-zero denominators, and so bf16's NaN, come from) and ``--width W``
Table-1 generators at width W with pix2pix's random initialisation (speed at other sizes).

Example: ``python benchmarks/bench_lrp_precision.py --checkpoint RUN/best.pt --width 64
--n-images 16 --repeats 3 --output lrp-precision.md``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from common import interleaved, kvasir_split, load_average, machine, script_main, table

from endoxai.data import load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.explain import Explainer
from endoxai.models import Generator
from endoxai.train.checkpoint import load_generator

COMPOSITES = ("epsilon-gamma-box", "alpha2-beta1", "alpha1-beta0", "paper", "lrp0")
LOW_PRECISION = ("epsilon-gamma-box", "alpha2-beta1", "alpha1-beta0")  # what auto may run in bf16


class _Fallbacks(logging.Handler):
    """Counts the warnings ``Explainer`` logs when it re-runs a bf16 batch in fp32."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "not finite" in record.getMessage():
            self.count += 1


def _models(args: argparse.Namespace) -> list[tuple[str, torch.nn.Module, int]]:
    """(label, generator in eval mode, input size) for every --checkpoint and --width."""
    models = []
    for path in args.checkpoint:
        generator, config = load_generator(path)
        models.append((f"{Path(path).name} (width {config.model.width}, trained)",
                       generator.eval(), config.data.image_size))
    for width in args.width:
        torch.manual_seed(args.seed)
        models.append((f"Table-1 generator, width {width}, random init",
                       Generator(width=width).eval(), args.size))
    return models


def _images(args: argparse.Namespace, size: int) -> torch.Tensor:
    """(N, 3, S, S) model inputs in [-1, 1]: Kvasir-SEG training images, or noise without data."""
    found = kvasir_split(args.data, "train", args.n_images)
    if found is None:
        print("Kvasir-SEG not found: random images (non-finite counts mean little)",
              file=sys.stderr)
        torch.manual_seed(args.seed)
        return torch.rand(args.n_images, 3, size, size) * 2 - 1
    _, index, ids = found
    return to_model_input(load_arrays(index, ids, size, progress=False).images)


def _input_map(relevance: torch.Tensor) -> np.ndarray:
    return relevance[0].sum(0).double().numpy().ravel()


def _kept(result) -> float:
    out = float(result.output.double().sum())
    return float(result.input.double().sum()) / out if out else float("nan")


def _compare(model, composite: str, images: torch.Tensor) -> dict[str, float]:
    """Non-finite bf16 count, min map correlation and max change of the kept share."""
    fp32, bf16 = Explainer(model, composite, "fp32"), Explainer(model, composite, "bf16")
    counter = _Fallbacks()
    logger = logging.getLogger("endoxai.explain.explanation")
    logger.addHandler(counter)
    corr, kept = [], []
    try:
        for x in images.split(1):
            a, b = fp32(x, layers=False), bf16(x, layers=False)
            ma, mb = _input_map(a.input), _input_map(b.input)
            corr.append(float(np.corrcoef(ma, mb)[0, 1]) if ma.std() and mb.std() else 1.0)
            kept.append(abs(_kept(b) - _kept(a)))
    finally:
        logger.removeHandler(counter)
    return {"non_finite": counter.count, "min_corr": min(corr), "max_kept": max(kept)}


def _measure(args: argparse.Namespace, rows: list[list[str]]) -> None:
    """One row per model and composite (see the module docstring), appended to ``rows``."""
    for label, model, size in _models(args):
        images = _images(args, size)
        for composite in args.composites:
            fp32 = Explainer(model, composite, "fp32")
            bf16 = Explainer(model, composite, "bf16")
            batches = images.split(1)
            methods = {
                "fp32": lambda e=fp32: [e(x, layers=True) for x in batches],
                "bf16": lambda e=bf16: [e(x, layers=True) for x in batches],
            }
            wall, _ = interleaved(methods, args.repeats, args.warmup,
                                  label=f"{label}, {composite}: ")
            t32 = statistics.median(wall["fp32"]) / len(batches)
            t16 = statistics.median(wall["bf16"]) / len(batches)
            safety = _compare(model, composite, images)
            safe = safety["non_finite"] == 0 and safety["min_corr"] > 0.99
            rows.append([label, f"{size}²", composite, f"{t32:.3f}", f"{t16:.3f}",
                         f"{t16 / t32:.2f}", f"{safety['non_finite']} of {len(batches)}",
                         f"{safety['min_corr']:.4f}", f"{safety['max_kept']:.2e}",
                         "bf16" if safe and t16 < t32 else "fp32"])
            print("| " + " | ".join(rows[-1]) + " |", file=sys.stderr)  # kept if stopped early


def run(args: argparse.Namespace) -> str:
    facts = machine()
    load_before = load_average()
    rows = []
    logger = logging.getLogger("endoxai.explain.explanation")
    propagate, logger.propagate = logger.propagate, False  # the re-runs are counted, not printed
    try:
        _measure(args, rows)
    finally:
        logger.propagate = propagate
    header = [
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        f"- load average before / after: {load_before} / {load_average()} (other jobs running "
        "on the machine slow both precisions alike: they alternate)",
        f"- {args.n_images} images, batch 1, all 16 block maps; medians of {args.repeats} "
        f"interleaved rounds after {args.warmup} warm-up round(s); s per image",
        "- faster and safe: bf16 only if it has no non-finite image, its maps correlate > 0.99 "
        "with fp32's, and it takes less time",
        "",
        "",
    ]
    body = table(["model", "input", "composite", "fp32 s", "bf16 s", "bf16 ÷ fp32",
                  "non-finite in bf16", "min corr", "max Δ kept", "faster and safe"], rows)
    return "\n".join(header) + body + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, action="append", default=[],
                   help="a trained generator checkpoint (repeatable)")
    p.add_argument("--width", type=int, action="append", default=[],
                   help="also a randomly initialised Table-1 generator of this width (repeatable)")
    p.add_argument("--size", type=int, default=256,
                   help="input size of the --width generators (default 256)")
    p.add_argument("--composites", nargs="+", default=list(LOW_PRECISION), choices=COMPOSITES,
                   help="default: the composites precision auto may run in bf16")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: the data folder's)")
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
