"""Data pipeline: decoding (first epoch) vs cached epochs, and preparing all 1000 Kvasir-SEG pairs.

- ``decode``: ``load_arrays`` of the 880 training pairs at the model size: JPEG decode, EXIF,
  resize, mask threshold, in ``DECODE_WORKERS`` threads. This is the only JPEG work of a run:
  ``fit`` does it once and every epoch reads the uint8 tensors from memory.
- ``cached epoch``: one epoch of what ``fit`` does per batch before the model: index the cached
  tensors in a random order, convert to [-1, 1] floats, augment with the ``default`` recipe's
  settings, move to channels-last. Compared with the model step (bench_train.py) it shows whether
  augmentation needs worker processes.
- ``prepare 1000``: ``load_arrays`` of all 1000 pairs at 256² and 512² (what a user waits for
  before the first step, with a cold or warm page cache — the first call of a run reads the files
  from disk, the table says which pass it is).

Example: ``python benchmarks/bench_data.py``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import kvasir_split, load_average, machine, peak_rss, table, script_main

from endoxai.config import load_config
from endoxai.data import augment, load_arrays
from endoxai.data.preprocess import to_model_input


def cached_epoch(arrays, batch: int, cfg) -> float:
    rng = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for idx in torch.randperm(len(arrays), generator=rng).split(batch):
        images, masks = to_model_input(arrays.images[idx]), arrays.masks[idx].float()
        images, masks = augment(images, masks, cfg.data.augment, rng)
        images.contiguous(memory_format=torch.channels_last)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "train", args.limit)
    if found is None:
        return "data pipeline: skipped (Kvasir-SEG not found; pass --data)\n"
    _, index, train = found
    every = sorted(index.images)[: args.limit]
    cfg = load_config("default")
    out = [f"Command: `python benchmarks/bench_data.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    rows = []
    result = {}

    def decode() -> None:
        result["train"] = load_arrays(index, train, 256, progress=False)

    t0 = time.perf_counter()
    peak, rise = peak_rss(decode)
    rows.append([f"decode {len(train)} training pairs at 256² (first epoch)",
                 f"{time.perf_counter() - t0:.1f}", f"{peak:.0f} (+{rise:.0f})"])
    print("data: decoded", file=sys.stderr)
    seconds = [cached_epoch(result["train"], args.batch, cfg) for _ in range(args.repeats)]
    rows.append([f"cached epoch at 256²: index + to [-1, 1] + augment, batch {args.batch} "
                 f"(median of {args.repeats})", f"{sorted(seconds)[len(seconds) // 2]:.1f}", ""])
    del result["train"]
    for size in args.sizes:
        for attempt in ("first", "second"):
            t0 = time.perf_counter()
            peak, rise = peak_rss(lambda s=size: load_arrays(index, every, s, progress=False))
            rows.append([f"prepare all {len(every)} pairs at {size}² ({attempt} pass)",
                         f"{time.perf_counter() - t0:.1f}", f"{peak:.0f} (+{rise:.0f})"])
            print(f"data: prepared at {size} ({attempt})", file=sys.stderr)
    out += ["", table(["what", "seconds", "peak RSS MiB (rise)"], rows), "",
            f"- load average after: {load_average()}"]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: kvasir-seg in "
                   "$ENDOXAI_DATA, else in ../shared/data)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, help="only the first N pairs (smoke tests)")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
