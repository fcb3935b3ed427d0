"""Inference choices of a trained checkpoint, scored on the Kvasir-SEG validation images.

Every variant runs the generator on the validation images resized to the checkpoint's size and
turns the logit maps into masks at each image's original size as ``endoxai predict`` does
(bilinear, then threshold), scored with the MedAI protocol (per image, then averaged) and pooled:

- ``eval BN``: BatchNorm with its running statistics, no dropout (what ``predict`` does);
- ``eval BN + flip TTA``: the mean logits of the image and its three flips (``predict --tta``);
- ``batch BN``: BatchNorm with the statistics of each validation batch, no dropout (a mask then
  depends on the other images of its batch);
- ``image BN``: the same with batches of one image: each image normalised by its own statistics,
  independent of the others (pix2pix's batch-1 test setting without dropout);
- ``pix2pix test mode``: batch statistics and dropout on, as pix2pix's own test script runs G
  (one dropout draw, seeded);
- ``eval BN, recalibrated``: running statistics recomputed (plain average) over training images
  with dropout off. During training the BatchNorms after the dropout blocks see the statistics of
  dropped-out activations, which eval mode no longer produces (the "variance shift" between
  dropout and BatchNorm); recalibration removes that mismatch without changing any weight.

Each variant is scored at several logit thresholds (0 is ``predict``'s: probability 0.5).
Choosing a threshold on the very images it is scored on flatters it: the table shows whether the
default is near the best, not a tuned number to report.

Example: ``python benchmarks/inference_choices.py --checkpoint runs/polyp/best.pt``
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from common import kvasir_split, machine, script_main, split_ids, table

from endoxai.data import load_arrays
from endoxai.data.io import read_mask
from endoxai.data.preprocess import to_model_input
from endoxai.metrics import concat_counts, confusion_counts, summarize
from endoxai.predict import logits_to_mask, predict_logits
from endoxai.train.checkpoint import load_generator

THRESHOLDS = (-1.0, -0.5, 0.0, 0.5, 1.0)


@torch.no_grad()
def logits_in_mode(g: torch.nn.Module, images: torch.Tensor, batch_stats: bool, dropout: bool
                   ) -> torch.Tensor:
    """float32 (N, 1, S, S) logits of uint8 (N, 3, S, S) images with BatchNorm normalising by the
    batch's own statistics (``batch_stats``) and/or dropout active; ``g``'s train/eval flags are
    restored and its running statistics are left untouched."""
    modes = {m: m.training for m in g.modules()}
    saved = {k: v.clone() for k, v in g.state_dict().items() if "running" in k or "tracked" in k}
    try:
        for m in g.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train(batch_stats)
            elif isinstance(m, torch.nn.Dropout):
                m.train(dropout)
        return g.logits(to_model_input(images)).float()
    finally:
        for m, flag in modes.items():
            m.training = flag
        g.load_state_dict(saved, strict=False)


@torch.no_grad()
def recalibrated(g: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.nn.Module:
    """A copy of ``g`` in eval mode whose BatchNorm running statistics are the plain average of
    the batch statistics of uint8 ``images`` (N, 3, S, S) with dropout off."""
    g = copy.deepcopy(g).eval()
    norms = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    for batch in images.split(batch_size):
        g.logits(to_model_input(batch))
    return g.eval()


def score(logit_maps: Sequence[torch.Tensor], truths: Sequence[np.ndarray],
          thresholds: Sequence[float] = THRESHOLDS) -> dict[float, dict]:
    """``summarize`` (MedAI, pooled, nnU-Net) of ``logit > t`` masks at the truths' sizes, per
    threshold ``t``; each (1, S, S) logit map is resized bilinearly as ``predict`` does."""
    out = {}
    for t in thresholds:
        counts = [confusion_counts(torch.from_numpy(logits_to_mask(m - t, truth.shape))[None],
                                   torch.from_numpy(truth)[None])
                  for m, truth in zip(logit_maps, truths)]
        out[t] = summarize(concat_counts(counts))
    return out


def variants(g: torch.nn.Module, batch_size: int, seed: int, train_images: torch.Tensor
             ) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    def pix2pix(x: torch.Tensor) -> torch.Tensor:
        return logits_in_mode(g, x, batch_stats=True, dropout=True)

    calibrated = recalibrated(g, train_images, batch_size)
    torch.manual_seed(seed)
    return {
        "eval BN": lambda x: predict_logits(g, x),
        "eval BN + flip TTA": lambda x: predict_logits(g, x, tta=True),
        "batch BN": lambda x: logits_in_mode(g, x, batch_stats=True, dropout=False),
        "image BN": lambda x: torch.cat([logits_in_mode(g, one, batch_stats=True, dropout=False)
                                         for one in x.split(1)]),
        "pix2pix test mode": pix2pix,
        "eval BN, recalibrated": lambda x: predict_logits(calibrated, x),
    }


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "val", args.limit)
    if found is None:
        return "inference choices: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    g, cfg = load_generator(args.checkpoint)
    size = cfg.data.image_size
    # images at model size as training decodes them; ground truth at the original size
    val = load_arrays(index, stems, size, progress=False)
    truths = [read_mask(*index.mask_source(stem)) for stem in val.stems]
    batches = val.images.split(args.batch_size)
    train_ids = split_ids(data, "train", args.recalibration_images)
    train_images = load_arrays(index, train_ids, size, progress=False).images
    rows = []
    for name, fn in variants(g, args.batch_size, args.seed, train_images).items():
        maps = [m for batch in batches for m in fn(batch)]
        print(f"inference choices: {name} done", file=sys.stderr)
        for t, s in score(maps, truths).items():
            m = s["medai"]
            rows.append([name, f"{t:+.1f}", *(f"{m[k]:.4f}" for k in
                                               ("dice", "jaccard", "accuracy", "recall",
                                                "precision")), f"{s['pooled']['dice']:.4f}"])
    out = [f"Command: `python benchmarks/inference_choices.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += [f"- checkpoint: {args.checkpoint} ({size}²), {len(val.stems)} validation images of "
            f"{data}, batches of {args.batch_size}; recalibration on the first "
            f"{len(train_ids)} training images", "",
            table(["variant", "logit threshold", "MedAI Dice", "Jaccard", "Acc", "Recall",
                   "Precision", "pooled Dice"], rows)]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="a trained best.pt / last.pt")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--limit", type=int, help="only the first N validation images (smoke tests)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="images per forward; also the batch whose statistics 'batch BN' uses")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout draw")
    p.add_argument("--recalibration-images", type=int, default=256,
                   help="training images whose statistics the recalibrated BatchNorms take")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
