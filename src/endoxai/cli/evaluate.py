"""`endoxai evaluate`: score predicted masks against ground truth (MedAI 2021, pooled, nnU-Net)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Pair the masks in PRED and TRUTH by file stem (.png/.jpg/.jpeg, any case) and print
accuracy, Jaccard, Dice, F1, recall and precision under three protocols:
  medai   per-image scores averaged over images; when the truth is empty both masks are
          inverted (the official MedAI 2021 evaluator)
  pooled  counts summed over all pixels of all images, then the formulas
  nnunet  per-image Dice/Jaccard averaged over images, leaving out those with both masks empty
Grey values above 127.5 (or 0.5 for 0/1 masks) are foreground. A missing, extra or duplicate
name, or a size mismatch, is an error; masks are never resized. A file that is not a binary
mask (a photograph, a probability map, a colour mask that would read as empty) is an error
unless --force is given.

Files: --output writes metrics.json ({"medai": {...}, "pooled": {...}, "nnunet": {...}}) and,
unless --csv says otherwise, a per-image CSV next to it named <output stem>_per_image.csv.
Without --output, a per-image CSV is written only when --csv is given.
"""


def _run(args: argparse.Namespace) -> int:
    # Imported here so `endoxai --help` does not pay for numpy/torch imports.
    from endoxai.errors import UserError
    from endoxai.evaluate import (
        default_csv_path,
        evaluate_folders,
        format_table,
        write_metrics_json,
        write_per_image_csv,
    )
    from endoxai.fileio import file_ids, is_one_of

    csv_path = args.csv or (default_csv_path(args.output) if args.output else None)
    if args.output and csv_path and Path(args.output).resolve() == Path(csv_path).resolve():
        raise UserError(f"--output and --csv name the same file: {args.output}")
    from endoxai.data.splits import read_id_file

    ids = read_id_file(args.ids) if args.ids else None
    result = evaluate_folders(args.pred, args.truth, progress=not args.quiet, ids=ids,
                              force=args.force)
    masks = file_ids([result.pred_dir / r.pred_file for r in result.per_image]
                     + [result.truth_dir / r.truth_file for r in result.per_image])
    for out in (args.output, csv_path):
        if out is not None and is_one_of(out, masks):
            raise UserError(f"{out} is one of the input masks; write the results elsewhere")
    if args.output:  # the files first: a reader of the table that stops early (`| head`)
        write_metrics_json(result, args.output)  # must not cost them
    if csv_path:
        write_per_image_csv(result, csv_path)
    print(format_table(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predicted masks against ground truth (MedAI 2021 protocol and more)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", type=Path, required=True, metavar="PRED",
                   help="folder of predicted masks")
    p.add_argument("--truth", type=Path, required=True, metavar="TRUTH",
                   help="folder of ground-truth masks (same file stems as PRED)")
    p.add_argument("-o", "--output", type=Path, metavar="JSON",
                   help="write the summary here, e.g. metrics.json")
    p.add_argument("--ids", type=Path, metavar="LIST",
                   help="score only these stems (one per line, e.g. kvasir-seg/val.txt); each "
                        "must be in both folders")
    p.add_argument("--csv", type=Path, metavar="CSV",
                   help="write per-image scores here (default with --output: "
                        "<output stem>_per_image.csv next to it)")
    p.add_argument("--force", action="store_true",
                   help="score files that do not look like binary masks (photographs, "
                        "probability maps) instead of stopping with an error")
    p.set_defaults(func=_run)
