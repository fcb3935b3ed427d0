"""Can the generator fit a handful of training images? A sanity probe of model and objective.

Trains a fresh Table-1 generator of the recipe (``--config``: its image size, dropout, batch
size, learning rate, betas, L1 weight and segmentation term) on the first ``--n-images``
Kvasir-SEG training images with training's own generator step against a constant critic (so the
adversarial term adds no gradient: only 100·L1 and the segmentation term train), without
augmentation, and reports every ``--every`` steps the training L1 and the MedAI Dice of the same
images predicted in eval mode (logit > 0, model resolution). A model and loss that work drive
this Dice towards 1 within a few hundred steps; if they cannot, the full GAN run's plateau is a
bug, not a matter of recipe.

Example: ``python benchmarks/fit_probe.py --n-images 16 --steps 120``
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from common import kvasir_split, machine, script_main, table
from endoxai.config import load_config
from endoxai.data import load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.models import Generator
from endoxai.train.steps import generator_step


class ConstantCritic(torch.nn.Module):
    """A discriminator that scores every patch 0 whatever it sees: its BCE term is a constant."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros(image.shape[0], 1, 1, 1)


def train_dice(g: Generator, images: torch.Tensor, masks: torch.Tensor) -> float:
    """MedAI Dice (per image, then averaged) of ``g``'s eval-mode masks on ``images``."""
    was_training = g.training
    g.eval()
    with torch.no_grad():
        pred = g.logits(images) > 0
    g.train(was_training)
    return float(medai_scores(confusion_counts(pred, masks > 0.5))["dice"].mean())


def probe(images: torch.Tensor, masks: torch.Tensor, recipe: str, steps: int, every: int,
          seed: int = 0) -> list[dict[str, float]]:
    """Fit a fresh generator to (uint8 images, {0, 1} masks) for ``steps`` steps of the recipe's
    batch size; one row (step, L1, Dice, seconds) every ``every`` steps and after the last."""
    cfg = load_config(recipe)
    tc = cfg.train
    torch.manual_seed(seed)
    g = Generator(cfg.model.in_channels, cfg.model.out_channels, cfg.model.dropout)
    opt = torch.optim.Adam(g.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    critic = ConstantCritic()
    x, y = to_model_input(images), masks.float()
    batch = min(tc.batch_size, len(x))
    rows, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randperm(len(x))[:batch]
        logs = generator_step(critic, opt, x[idx], y[idx], g.logits(x[idx]), tc)
        if step % every == 0 or step == steps:
            rows.append({"step": step, "l1": logs["loss_g_l1"], "dice": train_dice(g, x, y),
                         "seconds": time.perf_counter() - t0})
            print(f"fit probe: step {step}  L1 {logs['loss_g_l1']:.3f}  "
                  f"Dice {rows[-1]['dice']:.3f}", file=sys.stderr)
    return rows


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "train", args.n_images)
    if found is None:
        return "fit probe: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    size = load_config(args.config).data.image_size
    arrays = load_arrays(index, stems, size, progress=False)
    rows = probe(arrays.images, arrays.masks, args.config, args.steps, args.every, args.seed)
    out = [f"Command: `python benchmarks/fit_probe.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += [f"- recipe {args.config}, {len(arrays.stems)} training images of {data} at {size}², "
            "constant critic (no adversarial gradient), no augmentation", "",
            table(["step", "training L1", "training Dice (eval mode)", "seconds"],
                  [[r["step"], f"{r['l1']:.3f}", f"{r['dice']:.3f}", f"{r['seconds']:.0f}"]
                   for r in rows])]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--config", default="default", help="recipe name or .toml (default: default)")
    p.add_argument("--n-images", type=int, default=16, help="first N training images")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--every", type=int, default=20, help="report every N steps")
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
