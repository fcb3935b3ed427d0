"""Summary of a dataset folder or archive for ``endoxai data info``: layout, pairs, split sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from endoxai.data.layouts import find_dataset
from endoxai.data.splits import seeded_split

MAX_LISTED = 10  # unpaired files named in full; the rest are counted


@dataclass(frozen=True)
class DatasetInfo:
    source: str
    root: str
    layout: str
    pairs: int
    unpaired: tuple[str, ...]
    split_source: str  # "official (train.txt, val.txt)" or "seeded (val_fraction 0.12, seed 0)"
    train: int
    val: int

    def lines(self) -> list[str]:
        out = [
            f"dataset:   {self.root}",
            f"layout:    {self.layout}",
            f"pairs:     {self.pairs}",
            f"unpaired:  {len(self.unpaired)}",
        ]
        out += [f"  {name}" for name in self.unpaired[:MAX_LISTED]]
        if len(self.unpaired) > MAX_LISTED:
            out.append(f"  ... and {len(self.unpaired) - MAX_LISTED} more")
        out.append(f"split:     {self.split_source}: {self.train} train / {self.val} val")
        return out


def dataset_info(path: str | Path, val_fraction: float, seed: int) -> DatasetInfo:
    """Detect and summarise the dataset at ``path`` (UserError as find_dataset).

    Without an official split the sizes are those of the seeded split training would make with
    ``val_fraction`` and ``seed``.
    """
    index = find_dataset(path)
    try:
        if index.official_split is not None:
            split = index.official_split
            files = ", ".join(Path(n).name for n in index.split_files)
            source = f"official ({files})"
        else:
            split = seeded_split(index.stems, val_fraction, seed)
            source = f"seeded (val_fraction {val_fraction}, seed {seed})"
        return DatasetInfo(
            source=str(index.source),
            root=index.where,
            layout=index.layout,
            pairs=len(index.stems),
            unpaired=tuple(index.unpaired),
            split_source=source,
            train=len(split["train"]),
            val=len(split["val"]),
        )
    finally:
        index.tree.close()
