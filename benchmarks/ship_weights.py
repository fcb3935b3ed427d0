"""Bring a trained generator back from a machine that returns only a few small files.

The `device` GPU returns at most 8 files of 16 MB (64 MB in all), and a training checkpoint is
about 690 MB (the generator alone, fp32: 218 MB), so the H200 models of docs/RESULTS.md §1.5 stayed
on that machine. ``pack`` stores the generator of a checkpoint in parts of at most ``--max-mb``
MB: every weight tensor of two or more dimensions as int8 with one fp32 scale per slice along its
first dimension (symmetric, the slice's largest magnitude maps to 127), everything else (biases,
BatchNorm parameters and statistics) unchanged, plus the config, the epoch and the best Dice; a
manifest ``weights.json`` names the parts and the SHA-256 of their concatenation. ``unpack``
checks that digest and writes a generator-only checkpoint (weights dequantized to fp32) that
``endoxai predict``, ``explain`` and ``evaluate-explanations`` read. It is a copy of the model up
to the rounding of its weights: score the copy (``predict`` + ``evaluate``) before reporting
anything measured on it as the original's.

Example::

    python benchmarks/ship_weights.py pack RUN/best.pt OUT/weights      # about 55 MB in 4 parts
    python benchmarks/ship_weights.py unpack OUT/weights RUN-COPY/best.pt
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
from pathlib import Path

import torch

from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes, atomic_write_text
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, load_checkpoint

MANIFEST = "weights.json"
KIND = "endoxai-generator-int8"
KEPT = ("config", "epoch", "best_dice", "best_epoch")


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 values and fp32 scales (one per slice along dim 0) with ``values * scale ≈ weight``."""
    w = weight.detach().float()
    peak = w.abs().flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    scale = peak / 127.0
    values = (w / scale.view(-1, *[1] * (w.dim() - 1))).round().clamp(-127, 127)
    return values.to(torch.int8), scale


def dequantize(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return values.float() * scale.view(-1, *[1] * (values.dim() - 1))


def pack(checkpoint: Path, out: Path, max_mb: float = 15.0) -> list[Path]:
    """Write ``out/weights.partNN`` (each at most ``max_mb`` MB) and ``out/weights.json``."""
    ckpt = load_checkpoint(checkpoint)
    quantized, scales, plain = {}, {}, {}
    for name, tensor in ckpt["generator"].items():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            quantized[name], scales[name] = quantize(tensor)
        else:
            plain[name] = tensor
    payload = {"kind": KIND, "quantized": quantized, "scales": scales, "plain": plain,
               **{k: ckpt[k] for k in KEPT if k in ckpt}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    size = int(max_mb * 1e6)
    parts = []
    for i in range(math.ceil(len(data) / size)):
        parts.append(out / f"weights.part{i:02d}")
        atomic_write_bytes(parts[-1], data[i * size:(i + 1) * size])
    manifest = {"kind": KIND, "source": str(checkpoint), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "parts": [p.name for p in parts]}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return parts


def unpack(folder: Path, checkpoint: Path) -> dict:
    """Join and check the parts in ``folder``; write a generator-only checkpoint; return it."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path}: no manifest (not a folder written by `pack`?)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    missing = [name for name in manifest["parts"] if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{folder}: missing part(s) {', '.join(missing)}")
    data = b"".join((folder / name).read_bytes() for name in manifest["parts"])
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise UserError(f"{folder}: the parts do not match the manifest's sha256 "
                        "(a part changed, truncated or from another pack)")
    payload = torch.load(io.BytesIO(data), weights_only=True)
    generator = dict(payload["plain"])
    for name, values in payload["quantized"].items():
        generator[name] = dequantize(values, payload["scales"][name])
    ckpt = {"format": FORMAT, "version": VERSION, "generator": generator,
            "shipped": {"from": manifest["source"], "weights": "int8 per slice, dequantized"},
            **{k: payload[k] for k in KEPT if k in payload}}
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(ckpt, checkpoint)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="checkpoint -> int8 parts + weights.json")
    a.add_argument("checkpoint", type=Path)
    a.add_argument("out", type=Path, help="folder for the parts and the manifest")
    a.add_argument("--max-mb", type=float, default=15.0, help="largest part in MB (default 15)")
    b = sub.add_parser("unpack", help="parts + weights.json -> generator-only checkpoint")
    b.add_argument("folder", type=Path)
    b.add_argument("checkpoint", type=Path)
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            parts = pack(args.checkpoint, args.out, args.max_mb)
            total = sum(part.stat().st_size for part in parts) / 1e6
            print(f"wrote {len(parts)} part(s), {total:.1f} MB, and {args.out / MANIFEST}")
        else:
            unpack(args.folder, args.checkpoint)
            print(f"wrote {args.checkpoint}")
    except UserError as err:
        raise SystemExit(f"ship_weights: {err}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
