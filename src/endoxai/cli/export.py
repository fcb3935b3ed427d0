"""``endoxai export``: a checkpoint's generator as an ONNX file (logits), optionally checked."""

from __future__ import annotations

import argparse
import sys

from endoxai.export import (
    DEFAULT_OPSET,
    EXPORTERS,
    PARITY_MIN_MASK_AGREEMENT,
    PARITY_REL_TOL,
    check_parity,
    export_onnx,
)


def _batch(text: str) -> str | int:
    if text == "dynamic":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'dynamic' or a positive integer, not {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained generator to ONNX (pre-tanh logits) for ONNX Runtime",
        description="Write the generator of a checkpoint as one self-contained ONNX file: input "
        "'image' float32 (N, 3, S, S), RGB resized to S x S and scaled to [-1, 1] (uint8 / "
        "127.5 - 1); output 'logits' float32 (N, 1, S, S), pre-tanh: mask = logits > 0. S is the "
        "training size, stored with the full config in the file's metadata (endoxai.* keys). "
        "Needs pip install 'endoxai[onnx]'.",
    )
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt from endoxai train")
    p.add_argument("--output", required=True, help="the .onnx file to write (replaced atomically)")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: "
                   + ", ".join(f"{v} for {k}" for k, v in DEFAULT_OPSET.items()) + ")")
    p.add_argument("--batch", type=_batch, default="dynamic",
                   help="batch size fixed in the graph, or 'dynamic' (default: any batch size)")
    p.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                   help="PyTorch exporter: torchscript (default, needs only onnx) or dynamo "
                   "(PyTorch's newer exporter; also needs onnxscript)")
    p.add_argument("--check", action="store_true",
                   help="then run the file with ONNX Runtime and the checkpoint with PyTorch on "
                   f"3 test inputs and compare: exit 1 unless max |Δ logit| <= {PARITY_REL_TOL:g} "
                   f"x max |logit| and >= {100 * PARITY_MIN_MASK_AGREEMENT:g} %% of mask pixels "
                   "agree")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = export_onnx(args.checkpoint, args.output, args.opset, args.batch, args.exporter)
    if not args.check:
        print(f"wrote {path}")
        return 0
    parity = check_parity(args.checkpoint, path)
    print(f"wrote {path}; ONNX Runtime vs PyTorch: {parity}")
    if not parity.ok:
        print(f"endoxai export: parity check FAILED for {path}", file=sys.stderr)
        return 1
    return 0
