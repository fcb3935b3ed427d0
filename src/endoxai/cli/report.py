"""`endoxai report`: a static HTML report of a training run (metrics, curves, gallery, faithfulness)."""

from __future__ import annotations

import argparse
from pathlib import Path

from endoxai.cli.model_args import add_model_arguments, model_path

DESCRIPTION = """\
Build a self-contained static HTML report of a training run: OUTPUT/index.html plus its images
in OUTPUT/img/ (no server, no network, no JavaScript; open it in any browser).

It predicts the validation images of RUN/split.json with RUN/best.pt (without --run: those of
--data's validation list with --checkpoint, --model or the bundled model) and shows
- the MedAI metrics (per-image mean) and pooled metrics next to the paper's Table 2;
- training curves from RUN/history.csv (generator and discriminator losses, validation scores);
- a gallery of the validation images sorted worst Dice first: image, ground truth, prediction
  (TP sky blue, FP yellow, FN blue, errors outlined), LRP input relevance and the relevance at
  every block;
- a table with every validation image's scores;
- faithfulness curves and table from `endoxai evaluate-explanations`, when available.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from endoxai.cli.choices import COMPOSITES, DEFAULT_COMPOSITE
    from endoxai.config import PRECISIONS

    p = sub.add_parser(
        "report",
        help="static HTML report of a run: metrics vs the paper, curves, gallery, faithfulness",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, metavar="RUN",
                        help="training run folder (best.pt, history.csv, split.json)")
    add_model_arguments(source)
    p.add_argument("--output", type=Path, required=True, metavar="DIR",
                   help="folder for index.html and its images")
    p.add_argument("--data", type=Path, metavar="D",
                   help="dataset folder or archive (default with --run: the one recorded in "
                   "split.json; needed without --run)")
    p.add_argument("--max-images", type=int, default=24, metavar="N",
                   help="gallery size: the N validation images with the lowest Dice "
                        "(default: %(default)s)")
    p.add_argument("--faithfulness", type=Path, metavar="DIR",
                   help="results of `endoxai evaluate-explanations` (default: RUN/faithfulness "
                        "if it exists)")
    p.add_argument("--composite", default=DEFAULT_COMPOSITE, choices=COMPOSITES,
                   help="LRP composite of the gallery heatmaps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N",
                   help="images per forward / LRP pass (default: %(default)s)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="of the validation predictions, as for endoxai predict (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.report import build_report

    checkpoint = model_path(args) if args.run is None else None
    report = build_report(
        args.run, args.output, data=args.data, checkpoint=checkpoint, max_images=args.max_images,
        faithfulness=args.faithfulness, composite=args.composite, batch_size=args.batch_size,
        progress=None if not args.quiet else False, precision=args.precision,
    )
    print(f"wrote {report.path} ({report.n_gallery} of {report.n_images} validation images in "
          f"the gallery)")
    return 0
