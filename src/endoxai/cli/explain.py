"""`endoxai explain`: LRP relevance figures and arrays for image files."""

from __future__ import annotations

import argparse

from endoxai.cli.choices import COMPOSITES, DEFAULT_COMPOSITE, STARTS, TARGET_HELP
from endoxai.cli.model_args import add_model_arguments, model_path
from endoxai.config import PRECISIONS
from endoxai.errors import UserError

DESCRIPTION = """\
Explain the generator's segmentation of each image with layer-wise relevance propagation.
For every image, OUTPUT gets <stem>_explanation.png (image | input relevance | predicted mask,
and for a pixel or small box target its surroundings enlarged), <stem>_layers.png (relevance at
every block), <stem>_flow.png (how much relevance entered each encoder level through its U-Net
skip, and how much reached the bottleneck) and <stem>.npz (all arrays). Images are resized to
the checkpoint's image size; maps and coordinates are at that resolution. Red = positive
relevance, blue = negative, white = 0, each map on a symmetric scale ±max|R|. Printed at the end,
summed over all images: where the relevance went (the output's total, what each block absorbed
and why: its rule's bias, batch-norm shift or ε; what the input kept; these rows add up to the
output) and the skip-flow ledger.
Exit code 1 if some images could not be read (each is named on stderr; the rest are written).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="LRP heatmaps of the generator's segmentation for image files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--input", required=True, metavar="IMG_OR_FOLDER",
                   help="an image file or a folder of images")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="folder for figures and .npz files")
    p.add_argument("--target", default="mask", metavar="TARGET",
                   help=f"what to explain: {TARGET_HELP} (row, column at model resolution; box "
                        "rows Y0..Y1-1, columns X0..X1-1); default: mask, the predicted "
                        "foreground. "
                        "For background the start is -logit, so red means evidence for background")
    p.add_argument("--composite", default=DEFAULT_COMPOSITE, choices=COMPOSITES,
                   help="LRP rules per layer (default: %(default)s)")
    p.add_argument("--start", default="logit", choices=STARTS,
                   help="starting relevance at the target: the pre-tanh logit, or ones as in the "
                        "paper (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="images explained together (memory grows with N; default: %(default)s)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="of the LRP pass. auto (default): fp32, which conserves relevance to "
                        "rounding; bf16 (autocast) was slower than fp32 at 256² on a 2-core Xeon "
                        "with AMX, faster at 512² on a 2-core Zen 4 (docs/results.md). An image "
                        "whose bf16 relevance is not finite is redone in fp32, with a warning")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.explain.files import conservation_table, explain_files, flow_table

    if args.batch_size < 1:  # refused before the model is looked for and loaded
        raise UserError(f"batch size must be >= 1; got {args.batch_size}")
    summary = explain_files(
        model_path(args), args.input, args.output, target=args.target, composite=args.composite,
        start=args.start, batch_size=args.batch_size, precision=args.precision,
        progress=False if args.quiet else None,
    )
    for table in (conservation_table(summary), flow_table(summary)):
        if table:
            print(table)
    print(f"explained {len(summary.explained)} image(s) into {summary.output_dir}"
          + (f"; {len(summary.failed)} failed" if summary.failed else ""))
    return 1 if summary.failed else 0
