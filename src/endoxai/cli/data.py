"""`endoxai data download|info|check`: fetch an official archive; summarise or check a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from endoxai.config import DataConfig, TrainConfig


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1; got {text}")
    return value


def _download(args: argparse.Namespace) -> int:
    from endoxai.data.download import download

    path, digest = download(args.name, dest=args.dest, url=args.url, sha256=args.sha256,
                            progress=not args.quiet)
    print(f"{path}\nsha256 {digest}")
    print(f"use it as is: endoxai data info {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from endoxai.data.info import dataset_info

    for line in dataset_info(args.path, args.val_fraction, args.seed).lines():
        print(line)
    return 0


def _check(args: argparse.Namespace) -> int:
    from endoxai.data.check import check_dataset

    report = check_dataset(args.path, progress=not args.quiet)
    for line in report.lines():
        print(line)
    return 1 if report.errors else 0


CHECK_DESCRIPTION = """\
Decode every image/mask pair of a dataset folder or archive and list every problem, one line
each. Errors (exit code 1; `endoxai train` refuses the dataset):
  unreadable       an image or mask cannot be decoded (empty, truncated, corrupt, not an image,
                   decompression bomb, no permission)
  size-mismatch    a mask's size differs from its image's (after EXIF orientation)
  duplicate-name   two files with one id in a folder (a.jpg + a.png)
  not-a-mask       a mask's grey values are not two-valued (a photograph, a probability map),
                   or its two levels lie on one side of 127.5 (it would read as empty or full),
                   or more than half of its pixels are mid-grey (32..223)
Warnings (exit code 0; training goes on):
  unpaired         image without mask or mask without image (ignored)
  ignored-file     not an image file in the image/mask folder (.gif, .txt, folders, ...)
  non-binary       1%..50% of a mask's pixels are mid-grey (thresholded at 127.5)
  empty-mask       no foreground after thresholding (with a hint if the mask is not black)
  full-mask        every pixel is foreground
  tiny-image       smaller than 32 pixels on a side
  duplicate-image  identical image bytes under different ids (a leak if in train and val)
  split-unknown-id a split list names an id without a pair (ignored)
  split-unlisted   a pair in no split list (not used)
Exit code 2 when there is no dataset to check (missing path, no images/ + masks/ folders, no
pair, an id in both split lists).
"""


def register(sub: argparse._SubParsersAction) -> None:
    from endoxai.cli.choices import DATASETS

    p = sub.add_parser(
        "data",
        help="download a dataset archive; summarise or check a dataset folder/archive",
        description="Datasets: download the official Kvasir archives; show what a folder or "
        "archive contains (layout, image/mask pairs, unpaired files, split sizes); check it for "
        "problems (unreadable files, size mismatches, non-binary or empty masks, duplicates).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    d = actions.add_parser(
        "download",
        help="download an official dataset archive (kept as is; endoxai reads it directly)",
        description="Download the official archive from the dataset authors' site "
        "(https://datasets.simula.no), verify it (published SHA-256 when there is one, zip CRCs "
        "or tar readability) and print its SHA-256. Terms of use: research and education only; "
        "cite the dataset paper (see the dataset page).",
    )
    d.add_argument("name", choices=DATASETS, help="dataset to download")
    d.add_argument("--dest", type=Path, default=Path("data"), metavar="DIR",
                   help="folder for the archive (default: ./data)")
    d.add_argument("--url", metavar="URL", help="download from this address instead (a mirror)")
    d.add_argument("--sha256", metavar="HEX",
                   help="expected SHA-256 of the archive (overrides the published one)")
    d.set_defaults(func=_download)

    i = actions.add_parser(
        "info",
        help="show a dataset's layout, pairs, unpaired files and split sizes",
        description="Detect the layout of a dataset folder or archive (kvasir-seg, "
        "kvasir-instrument, folder-pair), count image/mask pairs, list files without a partner "
        "and show the split training would use.",
    )
    i.add_argument("path", type=Path, metavar="DIR_OR_ARCHIVE")
    i.add_argument("--val-fraction", type=_fraction, default=DataConfig().val_fraction,
                   help="for datasets without an official split (default: %(default)s)")
    i.add_argument("--seed", type=int, default=TrainConfig().seed,
                   help="seed of the split for datasets without an official one "
                   "(default: %(default)s)")
    i.set_defaults(func=_info)

    c = actions.add_parser(
        "check",
        help="decode every pair and list every problem (errors stop training; exit code 1)",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("path", type=Path, metavar="DIR_OR_ARCHIVE")
    c.set_defaults(func=_check)
