"""`endoxai data download|info`: fetch an official dataset archive; summarise a dataset."""

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


def register(sub) -> None:
    from endoxai.data.download import DATASETS

    p = sub.add_parser(
        "data",
        help="download a dataset archive, or summarise a dataset folder/archive",
        description="Datasets: download the official Kvasir archives; show what a folder or "
        "archive contains (layout, image/mask pairs, unpaired files, split sizes).",
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
    d.add_argument("name", choices=sorted(DATASETS), help="dataset to download")
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
