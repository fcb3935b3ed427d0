"""bf16 vs fp32 masks of a trained checkpoint on the Kvasir-SEG validation images.

Each validation image is resized to the checkpoint's size, run through ``predict_logits`` in fp32
and in bf16 autocast (channels-last, as ``endoxai predict``), and both logit maps are turned into
masks at the image's original size exactly as ``predict`` does (bilinear, ``logit > 0``). Reports
the share of identical mask pixels (all pixels of all images), the MedAI Dice / Jaccard of each
precision against the ground truth and their difference, and the wall time of each pass.
Goal: ≥ 99.5 % identical pixels, |Δ Dice| ≤ 0.005.

Example: ``python benchmarks/bench_masks.py --checkpoint RUN/best.pt``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import kvasir_split, load_average, machine, table, script_main

from endoxai.data.io import read_image, read_mask
from endoxai.data.preprocess import resize_image
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.predict import logits_to_mask, predict_logits
from endoxai.train.checkpoint import load_generator

PRECISIONS = ("fp32", "bf16")


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "val", args.limit)
    if found is None:
        return "bf16 vs fp32 masks: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    g, cfg = load_generator(args.checkpoint)
    g = g.to(memory_format=torch.channels_last)
    size = cfg.data.image_size
    same = total = 0
    seconds = dict.fromkeys(PRECISIONS, 0.0)
    scores: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
    for i, stem in enumerate(stems):
        source, name = index.image_source(stem)
        image = read_image(source, name)
        source, mask_name = index.mask_source(stem)
        truth = torch.from_numpy(read_mask(source, mask_name))
        x = torch.from_numpy(resize_image(image, size)).permute(2, 0, 1)[None]
        masks = {}
        for precision in PRECISIONS:
            t0 = time.perf_counter()
            logits = predict_logits(g, x, precision)
            seconds[precision] += time.perf_counter() - t0
            masks[precision] = logits_to_mask(logits[0], image.shape[:2])
            counts = confusion_counts(torch.from_numpy(masks[precision])[None], truth[None])
            scores[precision].append({k: float(v[0]) for k, v in medai_scores(counts).items()})
        same += int((masks["fp32"] == masks["bf16"]).sum())
        total += masks["fp32"].size
        if (i + 1) % 20 == 0:
            print(f"masks: {i + 1}/{len(stems)}", file=sys.stderr)
    mean = {p: {k: float(np.mean([s[k] for s in scores[p]])) for k in ("dice", "jaccard")}
            for p in PRECISIONS}
    rows = [[p, f"{mean[p]['dice']:.4f}", f"{mean[p]['jaccard']:.4f}",
             f"{seconds[p] / len(stems):.3f}"] for p in PRECISIONS]
    diff = abs(mean["bf16"]["dice"] - mean["fp32"]["dice"])
    out = [f"Command: `python benchmarks/bench_masks.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += [f"- checkpoint: {args.checkpoint} ({size}²), {len(stems)} validation images of {data}",
            f"- load average after: {load_average()}", "",
            table(["precision", "MedAI Dice", "MedAI Jaccard", "model s / image"], rows), "",
            f"Identical mask pixels (original resolution, all {len(stems)} images): "
            f"{100 * same / total:.3f} %; |Δ Dice| = {diff:.4f} "
            f"(goal ≥ 99.5 % and ≤ 0.005: {'met' if same / total >= 0.995 and diff <= 0.005 else 'NOT met'})"]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="a trained best.pt / last.pt")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: kvasir-seg in "
                   "$ENDOXAI_DATA, else in ../shared/data)")
    p.add_argument("--limit", type=int, help="only the first N validation images (smoke tests)")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
