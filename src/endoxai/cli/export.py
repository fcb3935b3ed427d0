"""``endoxai export``: a generator as an ONNX file (logits, optionally checked) or as the shipped
safetensors format (``endoxai.weights.bundle``)."""

from __future__ import annotations

import argparse
import sys

from endoxai.cli.choices import (
    DEFAULT_OPSET,
    EXPORTERS,
    PARITY_MIN_MASK_AGREEMENT,
    PARITY_REL_TOL,
)
from endoxai.cli.model_args import add_model_arguments, model_path


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
        help="export a generator to ONNX (pre-tanh logits) or to safetensors (the shipped format)",
        description="--format onnx (default): write the generator as one self-contained ONNX "
        "file: input 'image' float32 (N, 3, S, S), RGB resized to S x S and scaled to [-1, 1] "
        "(uint8 / 127.5 - 1); output 'logits' float32 (N, 1, S, S), pre-tanh: mask = logits > 0. "
        "S is the training size, stored with the full config in the file's metadata (endoxai.* "
        "keys). Needs pip install 'endoxai[onnx]'. --format safetensors: write a training "
        "checkpoint's generator as OUTPUT/NAME.safetensors (kernels in fp16 or bf16) and "
        "OUTPUT/NAME.json (config, SHA-256 checked on every load, provenance), the format of the "
        "bundled model; predict, explain and the other commands take the .safetensors file as "
        "--checkpoint.",
    )
    add_model_arguments(p)
    p.add_argument("--format", choices=("onnx", "safetensors"), default="onnx",
                   help="onnx (default) or safetensors")
    p.add_argument("--output", required=True,
                   help="onnx: the .onnx file to write; safetensors: the folder for "
                   "NAME.safetensors and NAME.json (files replaced atomically)")
    p.add_argument("--name", default="polyp",
                   help="safetensors: the files' stem (default: polyp, the bundled model's name)")
    p.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16",
                   help="safetensors: storage type of the convolution kernels (default: fp16, "
                   "closer to the trained weights; bf16 for a model beyond fp16's range)")
    p.add_argument("--recipe", metavar="NAME",
                   help="safetensors: the recipe recorded in NAME.json (default: the shipped "
                   "recipe whose config equals the checkpoint's, if any)")
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
    source = model_path(args)
    if args.format == "safetensors":
        from endoxai.errors import UserError
        from endoxai.weights.bundle import export_safetensors

        if args.check:
            raise UserError("--check compares ONNX Runtime with PyTorch: it needs --format onnx")
        path = export_safetensors(source, args.output, args.name, args.dtype, args.recipe)
        print(f"wrote {path} and {path.with_suffix('.json').name}")
        return 0
    from endoxai.export import check_parity, export_onnx

    path = export_onnx(source, args.output, args.opset, args.batch, args.exporter)
    if not args.check:
        print(f"wrote {path}")
        return 0
    parity = check_parity(source, path)
    print(f"wrote {path}; ONNX Runtime vs PyTorch: {parity}")
    if not parity.ok:
        print(f"endoxai export: parity check FAILED for {path}", file=sys.stderr)
        return 1
    return 0
