"""How strongly does each of the generator's pixel terms pull on its logits?

For each recipe (``--config``, repeatable) and each logit spread (``--scales``), draws logits
``s * N(0, 1)`` for the real masks of the first ``--n-images`` Kvasir-SEG training images at the
recipe's size and reports the mean |d(weight * term) / d logit| of every pixel term of training's
generator step (``pixel_losses``: 100·L1 on tanh, the recipe's segmentation term), and the
segmentation term's share of the two. A small spread is a generator unsure of every pixel; a large
one a confident generator, where tanh saturates and the L1 term's gradient fades. The adversarial
term is left out: its gradient depends on the discriminator.

Example: ``python benchmarks/loss_balance.py --config default --config gpu-dice100.toml``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import REPO, kvasir_split, machine, script_main, table
from endoxai.config import TrainConfig, load_config
from endoxai.data import load_arrays
from endoxai.train.steps import pixel_losses

CANDIDATES = REPO / "docs" / "results" / "recipes"
DEFAULT_CONFIGS = ["default", *(str(CANDIDATES / f"{n}.toml") for n in ("gpu-bce", "gpu-dice100"))]


def gradient_scales(logits: torch.Tensor, masks: torch.Tensor, cfg: TrainConfig
                    ) -> dict[str, float]:
    """Mean |d(weight * term) / d logit| over all pixels, per pixel term of ``cfg``."""
    logits, out = logits.detach().requires_grad_(), {}
    for name, (weight, term) in pixel_losses(logits, masks, cfg).items():
        (grad,) = torch.autograd.grad(weight * term, logits, retain_graph=True)
        out[name] = grad.abs().mean().item()
    return out


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "train", args.n_images)
    if found is None:
        return "loss balance: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    rows, masks_at = [], {}  # image size -> masks, decoded once per size
    for recipe in args.config or DEFAULT_CONFIGS:
        cfg = load_config(recipe)
        size = cfg.data.image_size
        if size not in masks_at:
            masks_at[size] = load_arrays(index, stems, size, progress=False).masks.float()
        masks = masks_at[size]
        gen = torch.Generator().manual_seed(args.seed)
        for scale in args.scales:
            g = gradient_scales(scale * torch.randn(masks.shape, generator=gen), masks, cfg.train)
            seg = g.get("seg", 0.0)
            rows.append([Path(recipe).stem, f"{cfg.train.l1_weight:g}",
                         f"{cfg.train.seg_loss} × {cfg.train.seg_weight:g}", f"{scale:g}",
                         f"{g['l1']:.3g}", f"{seg:.3g}", f"{seg / (seg + g['l1']):.3f}"])
    out = [f"Command: `python benchmarks/loss_balance.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    shares = ", ".join(f"{m.mean():.3f} at {n}²" for n, m in masks_at.items())
    out += [f"- masks: the first {len(stems)} training masks of {data} (foreground share "
            f"{shares}); logits drawn as spread × N(0, 1), seed {args.seed}", ""]
    out.append(table(["recipe", "L1 weight", "segmentation term", "logit spread",
                      "mean abs. gradient, L1 term", "mean abs. gradient, segmentation term",
                      "segmentation share"], rows))
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--config", action="append",
                   help="recipe name or .toml, repeatable (default: default, gpu-bce, gpu-dice100)")
    p.add_argument("--n-images", type=int, default=16, help="first N training images")
    p.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0, 3.0],
                   help="logit spreads to try")
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
