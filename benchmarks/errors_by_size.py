"""Where does a model fail? Its MedAI scores by the size of the ground-truth polyp.

Reads the per-image CSVs ``endoxai evaluate`` writes (``<output>_per_image.csv``; the copies
under ``docs/results/*/per_image.csv``), one per model, and splits the images with a non-empty
ground truth into ``--bins`` groups of equal count by the truth's share of the image
((tp + fn) / (height · width), at original resolution). Per group and model: the mean Dice,
recall and precision, the share of images *missed* (no true positive pixel: Dice 0), and the
mean share of the image that the truth and the prediction cover ((tp + fp) / (height · width)):
a model that marks about the same area whatever the polyp's size under-segments large polyps and
over-segments small ones; the Pearson correlation of the two shares, per model, says how much the
predicted area follows the true one (1: in step; 0: not at all). The
group edges come from the first CSV, so every model is scored on the same images when the CSVs
cover the same ids. Images with an empty ground truth (scored inverted by the MedAI protocol) are
counted separately and left out of the groups.

Example: ``python benchmarks/errors_by_size.py docs/results/kvasir-seg-default-h200/per_image.csv``
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from common import machine, script_main, table

SCORES = ("dice", "recall", "precision")
SHARES = ("area", "predicted")  # the truth's and the prediction's share of the image
COLUMNS = ("name", "height", "width", "empty_truth", "tp", "fp", "fn", *SCORES)


def read_per_image(path: Path) -> dict[str, dict[str, float]]:
    """{image name: {"area": truth share of the image, "predicted": predicted share of the image,
    "empty": 0/1, "missed": 0/1, *SCORES}}."""
    out = {}
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        lacking = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if lacking:
            raise ValueError(f"{path}: not a per-image CSV of `endoxai evaluate` "
                             f"(no column {', '.join(lacking)})")
        for row in reader:
            tp, fp, fn = int(row["tp"]), int(row["fp"]), int(row["fn"])
            pixels = int(row["height"]) * int(row["width"])
            out[row["name"]] = {"area": (tp + fn) / pixels, "predicted": (tp + fp) / pixels,
                                "empty": float(row["empty_truth"]),
                                "missed": float(tp == 0),
                                **{k: float(row[k]) for k in SCORES}}
    return out


def size_edges(areas: list[float], bins: int) -> list[float]:
    """``bins`` + 1 edges that split ``areas`` into groups of (nearly) equal count: the smallest
    area, the cut points, the largest. An image belongs to the first group whose upper edge is at
    least its area."""
    ordered = sorted(areas)
    if not ordered:
        raise ValueError("no image with a non-empty ground truth")
    cuts = [ordered[max(0, (len(ordered) * i) // bins - 1)] for i in range(1, bins)]
    return [ordered[0], *cuts, ordered[-1]]


def group_of(area: float, edges: list[float]) -> int:
    for i, upper in enumerate(edges[1:-1]):
        if area <= upper:
            return i
    return len(edges) - 2


def by_size(models: dict[str, dict[str, dict[str, float]]], bins: int) -> list[list[object]]:
    """Table rows (model, group, n, mean scores, missed share) for each model and size group."""
    first = next(iter(models.values()))
    edges = size_edges([r["area"] for r in first.values() if not r["empty"]], bins)
    rows = []
    for name, images in models.items():
        groups: list[list[dict[str, float]]] = [[] for _ in range(bins)]
        for r in images.values():
            if not r["empty"]:
                groups[group_of(r["area"], edges)].append(r)
        for i, members in enumerate(groups):
            span = f"{100 * edges[i]:.1f}–{100 * edges[i + 1]:.1f} %"
            rows.append([name, span, *_summary(members)])
        rows.append([name, "all non-empty", *_summary([r for g in groups for r in g])])
    return rows


def _summary(members: list[dict[str, float]]) -> list[object]:
    """Count, mean true and predicted share, mean scores and missed share of a group's images
    (dashes when it has none)."""
    if not members:
        return [0, *["–"] * (len(SHARES) + len(SCORES) + 1)]
    shares = [f"{100 * statistics.fmean(r[k] for r in members):.1f} %" for k in SHARES]
    means = [f"{statistics.fmean(r[k] for r in members):.3f}" for k in SCORES]
    return [len(members), *shares, *means, f"{statistics.fmean(r['missed'] for r in members):.2f}"]


def area_correlation(images: dict[str, dict[str, float]]) -> float | None:
    """Pearson correlation of the true and the predicted share over the non-empty truths (None
    when it is undefined: fewer than two images, or one of the shares constant)."""
    members = [r for r in images.values() if not r["empty"]]
    try:
        return statistics.correlation([r["area"] for r in members],
                                      [r["predicted"] for r in members])
    except statistics.StatisticsError:
        return None


def run(args: argparse.Namespace) -> str:
    try:
        models = {f"{p.parent.name}/{p.name}": read_per_image(p) for p in args.csv}
        rows = by_size(models, args.bins)
    except (OSError, ValueError) as e:
        raise SystemExit(f"errors_by_size: {e}") from None
    empty = {name: sum(int(r["empty"]) for r in images.values()) for name, images in models.items()}
    header = ["model (folder/CSV)", "truth share of the image", "images", "mean truth share",
              "mean predicted share", *[f"mean {k}" for k in SCORES], "missed (no true positive)"]
    correlations = [[name, "–" if r is None else f"{r:.2f}"]
                    for name, r in ((n, area_correlation(i)) for n, i in models.items())]
    out = ["Command: `python benchmarks/errors_by_size.py "
           + " ".join([*map(str, args.csv), "--bins", str(args.bins)]) + "`", "",
           *[f"- {k}: {v}" for k, v in machine().items()], "",
           f"Groups of equal count by the first CSV's truth areas; images with an empty truth "
           f"(left out): {', '.join(f'{n}: {k}' for n, k in empty.items())}.", "",
           table(header, rows), "",
           "Does the predicted area follow the true one? Pearson correlation of the two shares "
           "over the images with a non-empty truth:", "",
           table(["model (folder/CSV)", "correlation"], correlations)]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", nargs="+", type=Path,
                   help="per-image CSVs of `endoxai evaluate`, one per model")
    p.add_argument("--bins", type=_positive, default=4,
                   help="size groups of equal count (default 4)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
