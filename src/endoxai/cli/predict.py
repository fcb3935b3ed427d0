"""``endoxai predict``: masks for a folder of images (or one image) from a checkpoint."""

from __future__ import annotations

import argparse

from endoxai.cli.choices import UPSAMPLING
from endoxai.cli.model_args import add_model_arguments, model_path
from endoxai.config import INFERENCE_PRECISIONS
from endoxai.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="write binary masks (PNG 0/255, original size) for images",
        description="Segment images with a trained generator: mask = logit > 0, resized back to "
        "each image's original size, written as <output>/<stem>.png. Unreadable files are "
        "reported and skipped; the exit code is 1 if any failed.",
    )
    add_model_arguments(p)
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="folder for the masks (created)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--upsampling", choices=UPSAMPLING, default="bilinear",
                   help="back to original size: threshold after bilinear interpolation of the "
                   "logits (default) or nearest-neighbour repeat of the model-size mask")
    p.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                   help="auto (default): bf16 autocast on CPUs with native bf16 (AVX512-BF16 / "
                   "AMX) and on bf16 GPUs, fp16 on older GPUs, else fp32; fp16 is CUDA-only")
    p.add_argument("--ids", metavar="LIST",
                   help="only the images whose stems are listed (one per line, e.g. "
                   "kvasir-seg/val.txt)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the logits of the image and its "
                   "horizontal, vertical and double flips (4x slower)")
    p.add_argument("--trained-weights", action="store_true",
                   help="for a run trained with a moving average (train.ema_decay > 0): use its "
                   "trained weights instead of the average, which the checkpoint's generator is")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.data.splits import read_id_file
    from endoxai.predict import predict_files

    if args.batch_size < 1:  # refused before the model is looked for and loaded
        raise UserError(f"batch size must be >= 1; got {args.batch_size}")
    summary = predict_files(model_path(args), args.input, args.output, args.batch_size,
                            args.upsampling, args.precision, args.device, not args.no_progress,
                            args.tta, read_id_file(args.ids) if args.ids else None,
                            args.trained_weights)
    print(f"wrote {len(summary.written)} masks to {args.output}"
          + (f"; {len(summary.failures)} file(s) failed" if summary.failures else ""))
    return 1 if summary.failures else 0
