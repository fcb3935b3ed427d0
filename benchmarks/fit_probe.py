"""Can the generator fit a handful of training images? A sanity probe of model and objective.

Trains a fresh Table-1 generator of the recipe (``--config``: its image size, dropout, batch
size, learning rates, betas, L1 weight and segmentation term) on the first ``--n-images``
Kvasir-SEG training images and reports every ``--every`` steps the training L1, the MedAI Dice of
the same images predicted in eval mode (logit > 0, model resolution), the same with BatchNorm
normalising by these images' own statistics instead of its running ones, and the share of their
wrong pixels that are *saturated* (|logit| > 3, so tanh is within 0.005 of ±1 and the L1 term's
gradient on that logit is under 1 % of its largest). With ``--val N`` it also scores the first N
validation images, which the probe never trains on (eval mode, the same Dice): how much of the fit
carries over to unseen images.

- ``--critic constant`` (default): training's own generator step against a critic that scores
  everything 0, so the adversarial term adds no gradient and only 100·L1 and the segmentation
  term train. A model and loss that work drive the Dice towards 1 within a few hundred steps.
- ``--critic patchgan``: training's own ``train_step`` with a fresh PatchGAN discriminator and
  its optimiser, i.e. the full GAN objective on these images.
- ``--augment``: the recipe's training augmentation on every batch (off by default).

Comparing the variants on the same images tells which part of the GAN recipe keeps a full run
from fitting its training set.

Example: ``python benchmarks/fit_probe.py --n-images 16 --steps 120 --critic patchgan``
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import torch

from common import kvasir_split, machine, script_main, split_ids, table
from inference_choices import logits_in_mode
from endoxai.config import load_config
from endoxai.data import Arrays, augment, load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.models import Discriminator, Generator
from endoxai.train.loop import validate
from endoxai.train.steps import generator_step, train_step

SATURATED = 3.0  # |logit| above which tanh' < 0.01: the L1 term barely moves the pixel


class ConstantCritic(torch.nn.Module):
    """A discriminator that scores every patch 0 whatever it sees: its BCE term is a constant."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros(image.shape[0], 1, 1, 1)


def fit_scores(g: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """On ``g``'s logits of uint8 ``images`` without dropout: the MedAI Dice (per image, then
    averaged) of logit > 0 with BatchNorm's running statistics (eval mode, as ``predict``) and with
    the statistics of ``images`` themselves (``batch_dice``), and the share of eval mode's wrong
    pixels whose |logit| exceeds ``SATURATED`` (0 if none is wrong). ``g`` is left as it was."""
    truth = masks > 0.5
    logits = eval_logits(g, images)
    pred = logits > 0
    wrong = pred != truth
    saturated = (wrong & (logits.abs() > SATURATED)).sum().item() / max(wrong.sum().item(), 1)
    batch = logits_in_mode(g, images, batch_stats=True, dropout=False) > 0
    return {"dice": _dice(pred, truth), "batch_dice": _dice(batch, truth), "saturated": saturated}


def eval_logits(g: torch.nn.Module, images: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``g``'s eval-mode logits of uint8 ``images``, ``chunk`` images at a time (running
    statistics make chunks independent, and memory stays small for a hundred 256² images)."""
    return torch.cat([logits_in_mode(g, part, batch_stats=False, dropout=False)
                      for part in images.split(chunk)])


def _dice(pred: torch.Tensor, truth: torch.Tensor) -> float:
    return float(medai_scores(confusion_counts(pred, truth))["dice"].mean())


def probe(images: torch.Tensor, masks: torch.Tensor, recipe: str, steps: int, every: int,
          seed: int = 0, critic: str = "constant", augmented: bool = False,
          held_out: Arrays | None = None) -> list[dict[str, float]]:
    """Fit a fresh generator to (uint8 images, {0, 1} masks) for ``steps`` steps of the recipe's
    batch size; one row (step, L1, D loss, Dice, saturated share, seconds) every ``every`` steps
    and after the last. ``critic``: "constant" or "patchgan" (see the module docstring).
    ``held_out``: decoded pairs never trained on; each row then has their eval-mode Dice as
    ``val_dice``, scored by training's own ``validate`` (the epochs' ``val_dice``)."""
    cfg = load_config(recipe)
    tc = cfg.train
    torch.manual_seed(seed)
    g = Generator(cfg.model.in_channels, cfg.model.out_channels, cfg.model.dropout)
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    d: torch.nn.Module = ConstantCritic()
    opt_d = None
    if critic == "patchgan":
        with torch.random.fork_rng():  # D's initialisation leaves batches and dropout as without it
            d = Discriminator(cfg.model.in_channels, cfg.model.out_channels)
        opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))
    data_rng = torch.Generator().manual_seed(seed)
    x, y = to_model_input(images), masks.float()
    batch = min(tc.batch_size, len(x))
    rows, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randperm(len(x))[:batch]
        xb, yb = x[idx], y[idx]
        if augmented:
            xb, yb = augment(xb, yb, cfg.data.augment, data_rng)
        if opt_d is not None:
            logs = train_step(g, d, opt_g, opt_d, xb, yb, tc)
        else:
            logs = generator_step(d, opt_g, xb, yb, g.logits(xb), tc)
        if step % every == 0 or step == steps:
            row = {"step": step, "l1": logs["loss_g_l1"], "loss_d": logs.get("loss_d"),
                   **fit_scores(g, images, y)}
            if held_out is not None:
                row["val_dice"] = validate(g, held_out, 16, torch.device("cpu"),
                                           contextlib.nullcontext())["dice"]
            rows.append({**row, "seconds": time.perf_counter() - t0})
            held = f"  validation Dice {row['val_dice']:.3f}" if held_out is not None else ""
            print(f"fit probe: step {step}  L1 {logs['loss_g_l1']:.3f}  "
                  f"Dice {row['dice']:.3f} (own BN statistics {row['batch_dice']:.3f}){held}",
                  file=sys.stderr)
    return rows


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "train", args.n_images)
    if found is None:
        return "fit probe: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    size = load_config(args.config).data.image_size
    arrays = load_arrays(index, stems, size, progress=False)
    held_out = None
    if args.val:
        held_out = load_arrays(index, split_ids(data, "val", args.val), size, progress=False)
    rows = probe(arrays.images, arrays.masks, args.config, args.steps, args.every, args.seed,
                 args.critic, args.augment, held_out)
    critic = {"constant": "constant critic (no adversarial gradient)",
              "patchgan": "PatchGAN discriminator trained alongside (full GAN objective)"}
    out = [f"Command: `python benchmarks/fit_probe.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    columns = [
        ("step", lambda r: r["step"]),
        ("training L1", lambda r: f"{r['l1']:.3f}"),
        ("D loss", lambda r: "–" if r["loss_d"] is None else f"{r['loss_d']:.3f}"),
        ("training Dice (eval mode)", lambda r: f"{r['dice']:.3f}"),
        ("training Dice (the images' own BatchNorm statistics)",
         lambda r: f"{r['batch_dice']:.3f}"),
        (f"wrong pixels saturated (logit beyond ±{SATURATED:g})",
         lambda r: f"{r['saturated']:.2f}"),
    ]
    if held_out:
        columns.append(("validation Dice (eval mode)", lambda r: f"{r['val_dice']:.3f}"))
    columns.append(("seconds", lambda r: f"{r['seconds']:.0f}"))
    out += [f"- recipe {args.config}, {len(arrays.stems)} training images of {data} at {size}², "
            f"{critic[args.critic]}, {'with' if args.augment else 'no'} augmentation"
            + (f"; held out: the first {len(held_out)} validation images" if held_out else ""),
            "", table([name for name, _ in columns],
                      [[cell(r) for _, cell in columns] for r in rows])]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--config", default="default", help="recipe name or .toml (default: default)")
    p.add_argument("--n-images", type=int, default=16, help="first N training images")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--every", type=int, default=20, help="report every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--critic", choices=("constant", "patchgan"), default="constant",
                   help="constant: pixel losses only; patchgan: the full GAN objective")
    p.add_argument("--augment", action="store_true", help="the recipe's training augmentation")
    p.add_argument("--val", type=int, default=0,
                   help="also score the first N validation images (never trained on); 0: none")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
