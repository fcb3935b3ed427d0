"""Training speed: images/s of one pix2pix step (G + D updates), fp32 vs bf16, and the loss curve.

Throughput, for each size, rows interleaved (medians of the timed steps after warm-up), batch 8:

- ``fp32 NCHW (plain eager)``: the baseline, models and batches in the default layout;
- ``fp32 channels-last``;
- ``bf16 channels-last``: bf16 autocast (BatchNorm and losses stay fp32), what ``endoxai train``
  does with ``precision = "auto"`` on a CPU with native bf16;
- ``bf16 channels-last + EMA``: the same, plus the update of a moving average of G's weights after
  every step (``train.ema_decay``, ``endoxai.train.ema``): what the average costs.

Each step is ``endoxai.train.steps.train_step`` on real Kvasir-SEG training pairs when the data is
there (synthetic images otherwise). The 880-image epoch estimate adds nothing for validation.

Loss curve: ``--curve-steps`` steps at 256² on the same batches, from the same initial weights,
in fp32 and in bf16, plus fp32 from a second seed (the run-to-run noise); reports the mean
generator L1 and discriminator loss over the last third of the steps. bf16 "does not change the
curve beyond noise" when |bf16 - fp32| is below |fp32 seed 0 - fp32 seed 1|.

Example: ``python benchmarks/bench_train.py --sizes 256 512 --steps 4 --curve-steps 30``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from common import (
    interleaved, kvasir_seg, load_average, machine, median, peak_rss, script_main, split_ids,
    table,
)

from endoxai.config import ModelConfig, TrainConfig
from endoxai.data import find_dataset, load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.models import build_models
from endoxai.runtime import autocast
from endoxai.train.ema import WeightAverage
from endoxai.train.steps import train_step

CPU = torch.device("cpu")
VARIANTS = {  # name -> (precision, channels_last, ema_decay)
    "fp32 NCHW (plain eager)": ("fp32", False, 0.0),
    "fp32 channels-last": ("fp32", True, 0.0),
    "bf16 channels-last": ("bf16", True, 0.0),
    "bf16 channels-last + EMA": ("bf16", True, 0.999),
}


def batches(data: Path | None, size: int, n: int, batch: int) -> tuple[list, str]:
    """``n`` (images in [-1, 1], masks {0, 1}) float batches and a description of their source."""
    if data is not None:
        index = find_dataset(data)
        stems = split_ids(data, "train", n * batch)
        arrays = load_arrays(index, stems, size, progress=False)
        images, masks = to_model_input(arrays.images), arrays.masks.float()
        source = f"Kvasir-SEG training pairs ({len(stems)})"
    else:
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(n * batch, 3, size, size, generator=gen) * 2 - 1
        masks = (torch.rand(n * batch, 1, size, size, generator=gen) > 0.7).float()
        source = "synthetic random images"
    return list(zip(images.split(batch), masks.split(batch))), source


class Trainer:
    """Models, optimisers and the step for one precision / layout variant."""

    def __init__(self, seed: int, precision: str, channels_last: bool, cfg: TrainConfig,
                 ema_decay: float = 0.0) -> None:
        torch.manual_seed(seed)
        self.g, self.d = build_models(ModelConfig())
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.g, self.d = (m.to(memory_format=self.layout) for m in (self.g, self.d))
        self.opt_g = torch.optim.Adam(self.g.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.d.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.precision, self.cfg = precision, cfg
        self.ema = WeightAverage(self.g, ema_decay) if ema_decay > 0 else None

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        images = images.contiguous(memory_format=self.layout)
        masks = masks.contiguous(memory_format=self.layout)
        logs = train_step(self.g, self.d, self.opt_g, self.opt_d, images, masks, self.cfg,
                          autocast(self.precision, CPU))
        if self.ema is not None:
            self.ema.update(self.g)
        return logs


def throughput(args: argparse.Namespace, data: Path | None) -> list[str]:
    out = []
    cfg = TrainConfig()
    for size in args.sizes:
        data_batches, source = batches(data, size, 1, args.batch)
        images, masks = data_batches[0]
        trainers = {name: Trainer(0, p, cl, cfg, ema) for name, (p, cl, ema) in VARIANTS.items()}
        methods = {name: (lambda t=t: t.step(images, masks)) for name, t in trainers.items()}
        wall, cpu = interleaved(methods, args.steps, args.warmup, label=f"train {size}px: ")
        memory = {name: peak_rss(fn) for name, fn in methods.items()}
        plain = median(wall["fp32 NCHW (plain eager)"])
        rows = []
        for name in methods:
            t = median(wall[name])
            peak, rise = memory[name]
            rows.append([name, f"{t:.2f}", f"{args.batch / t:.2f}", f"{plain / t:.2f}",
                         f"{880 / (args.batch / t) / 60:.1f}", f"{median(cpu[name]):.2f}",
                         f"{peak:.0f} (+{rise:.0f})"])
        out += ["", f"Training step, {size}×{size}, batch {args.batch} ({source}):", ""]
        out.append(table(["variant", "s / step (median)", "images / s", "speed-up vs plain",
                          "880-image epoch, min", "CPU s / step", "peak RSS MiB (rise)"], rows))
        del trainers, methods
    return out


def loss_curve(args: argparse.Namespace, data: Path | None) -> list[str]:
    cfg = TrainConfig()
    data_batches, source = batches(data, 256, args.curve_steps, args.batch)
    runs = {"fp32, seed 0": (0, "fp32"), "bf16, seed 0": (0, "bf16"), "fp32, seed 1": (1, "fp32")}
    tail = max(2, args.curve_steps // 3)
    keys = ("loss_g_l1", "loss_d", "loss_g_adv")
    means: dict[str, dict[str, float]] = {}
    sems: dict[str, dict[str, float]] = {}
    for name, (seed, precision) in runs.items():
        trainer = Trainer(seed, precision, True, cfg)
        logs = []
        for i, (images, masks) in enumerate(data_batches):
            logs.append(trainer.step(images, masks))
            print(f"curve {name}: step {i + 1}/{len(data_batches)}", file=sys.stderr)
        values = {k: torch.tensor([row[k] for row in logs[-tail:]], dtype=torch.float64)
                  for k in keys}
        means[name] = {k: v.mean().item() for k, v in values.items()}
        sems[name] = {k: (v.std() / tail ** 0.5).item() for k, v in values.items()}
    rows = [[name] + [f"{means[name][k]:.4f} ± {sems[name][k]:.4f}" for k in keys]
            for name in runs]
    gap = {k: abs(means["bf16, seed 0"][k] - means["fp32, seed 0"][k]) for k in keys}
    seed_gap = {k: abs(means["fp32, seed 1"][k] - means["fp32, seed 0"][k]) for k in keys}
    # noise of a tail mean: the larger of the seed-to-seed gap and two standard errors of the
    # difference of two tail means (batch-to-batch scatter)
    noise = {k: max(seed_gap[k], 2 * (sems["fp32, seed 0"][k] ** 2
                                      + sems["bf16, seed 0"][k] ** 2) ** 0.5) for k in keys}
    verdict = "within" if all(gap[k] <= noise[k] for k in keys) else "NOT within"
    return ["", f"Loss after {args.curve_steps} steps at 256², batch {args.batch}, same batches "
            f"({source}); mean ± standard error over the last {tail} steps:", "",
            table(["run", "G L1 loss", "D loss", "G adversarial loss"], rows), "",
            "|bf16 - fp32| = " + ", ".join(f"{k} {gap[k]:.4f}" for k in keys)
            + "; noise = max(|seed 1 - seed 0|, 2 standard errors of the difference) = "
            + ", ".join(f"{k} {noise[k]:.4f}" for k in keys)
            + f": bf16 is {verdict} the noise."]


def run(args: argparse.Namespace) -> str:
    data = None if args.synthetic else kvasir_seg(args.data)
    out = [f"Command: `python benchmarks/bench_train.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    load_before = load_average()
    out += throughput(args, data)
    if args.curve_steps:
        out += loss_curve(args, data)
    out += ["", f"- medians of {args.steps} interleaved steps after {args.warmup} warm-up; load "
            f"average before / after: {load_before} / {load_average()}"]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--curve-steps", type=int, default=30, help="0: skip the loss-curve check")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: kvasir-seg in "
                   "$ENDOXAI_DATA, else in ../shared/data)")
    p.add_argument("--synthetic", action="store_true", help="random images instead of Kvasir-SEG")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
