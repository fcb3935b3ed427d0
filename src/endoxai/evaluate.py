"""Scoring a folder of predicted masks against a folder of true masks (``endoxai evaluate``).

Files are paired by stem: ``pred/abc.png`` goes with ``truth/abc.jpg``. Only .png, .jpg and .jpeg
files are read (suffix in any case), as in the official MedAI evaluator; other files are skipped.
These are errors, each naming the files involved: a stem on one side only (missing or extra), two
files with the same stem in one folder (``a.png`` and ``a.jpg``), an unreadable mask, and a
prediction whose size differs from its truth. Masks are never resized. Masks are decoded with
``endoxai.data.io.read_mask``: grey > 127.5 is foreground, or > 0.5 if every value is 0 or 1.
A file that is not a binary mask (``endoxai.data.masklike``: a photograph, a probability map, a
colour mask that reads as empty) is an error too, unless ``force`` is given: pointing ``--truth``
at the images instead of the masks would otherwise give a plausible but meaningless score.

Three protocols are reported (see ``endoxai.metrics`` for exact definitions and 0/0 cases):

- ``medai``: the MedAI 2021 challenge evaluator. Per-image scores, with both masks inverted when
  the truth is empty, averaged over images.
- ``pooled``: counts summed over all pixels of all images, then the formulas.
- ``nnunet``: per-image Dice and Jaccard; an image where both masks are empty is NaN and is left
  out of the mean.

Public output formats
---------------------
``write_metrics_json`` writes ``EvaluationResult.summary``, which has exactly this shape::

    {"medai":  {"accuracy", "jaccard", "dice", "f1", "recall", "precision", "n_images"},
     "pooled": {"accuracy", "jaccard", "dice", "f1", "recall", "precision", "n_images"},
     "nnunet": {"dice", "jaccard", "n_images"}}

Scores are floats in [0, 1]. ``n_images`` is an int. For ``nnunet`` it counts only the images whose
score is defined. A score that is undefined (nnunet with no defined image) is written as ``null``.

``write_per_image_csv`` writes one row per image with the columns of ``ImageRow``: name,
pred_file, truth_file, height, width, empty_truth (0/1), tp, fp, fn, tn, the six MedAI scores,
nnunet_dice and nnunet_jaccard. Undefined values are written as ``nan``.

Both files are written atomically: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from endoxai.data.io import binarize_mask, read_image, read_mask_grey
from endoxai.data.masklike import is_colour, mask_problem
from endoxai.data.splits import select_ids
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_text, json_safe
from endoxai.metrics import (
    MEDAI_KEYS,
    Counts,
    confusion_counts,
    medai_scores,
    nnunet_scores,
    summarize,
)

logger = logging.getLogger(__name__)

MASK_SUFFIXES = (".png", ".jpg", ".jpeg")  # what the official MedAI evaluator reads
MAX_LISTED = 10  # names shown in one error message before "... and N more"
TABLE_METRICS = MEDAI_KEYS + ("n_images",)
PROTOCOLS = ("medai", "pooled", "nnunet")


@dataclass(frozen=True)
class ImageRow:
    """Scores of one mask pair: MedAI scores in [0, 1]; nnU-Net ones NaN if both masks are empty."""

    name: str  # the stem shared by the two files
    pred_file: str  # file name inside the prediction folder
    truth_file: str  # file name inside the truth folder
    height: int
    width: int
    empty_truth: bool  # the MedAI protocol inverted both masks
    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: float
    jaccard: float
    dice: float
    f1: float
    recall: float
    precision: float
    nnunet_dice: float
    nnunet_jaccard: float


@dataclass(frozen=True)
class EvaluationResult:
    """Everything ``endoxai evaluate`` reports. ``summary`` has the public metrics.json shape."""

    pred_dir: Path
    truth_dir: Path
    per_image: tuple[ImageRow, ...]  # sorted by name
    summary: dict[str, dict[str, Any]]


def _listing(names: list[str], sep: str = ", ") -> str:
    shown = sep.join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _check_folder(path: Path, role: str) -> None:
    if not path.exists():
        raise UserError(f"{role} folder not found: {path}")
    if not path.is_dir():
        raise UserError(f"{role} path is not a folder: {path}")


def _masks_by_stem(folder: Path, role: str) -> dict[str, Path]:
    """Map stem -> mask file for the .png/.jpg/.jpeg files directly in ``folder``."""
    _check_folder(folder, role)
    by_stem: dict[str, list[Path]] = {}
    skipped = 0
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise UserError(f"cannot list {role} folder {folder}: {err.strerror or err}") from err
    for path in entries:
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in MASK_SUFFIXES:
            skipped += 1
            continue
        by_stem.setdefault(path.stem, []).append(path)
    if skipped:
        logger.info("%s folder: skipped %d files that are not .png/.jpg/.jpeg", role, skipped)
    if not by_stem:
        raise UserError(f"no masks ({', '.join(MASK_SUFFIXES)}) in {role} folder {folder}")
    duplicates = [f"{stem} ({' + '.join(p.name for p in paths)})"
                  for stem, paths in sorted(by_stem.items()) if len(paths) > 1]
    if duplicates:
        raise UserError(f"{role} folder {folder} has more than one mask with the same name: "
                        f"{_listing(duplicates)}")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def pair_masks(pred_dir: Path, truth_dir: Path, ids: list[str] | None = None
               ) -> list[tuple[str, Path, Path]]:
    """(stem, pred_path, truth_path) for every stem, sorted; UserError if the stems differ.

    ``ids``: only these stems (e.g. the lines of ``val.txt``); each must be on both sides.
    """
    pred_dir, truth_dir = Path(pred_dir).expanduser(), Path(truth_dir).expanduser()
    preds = _masks_by_stem(pred_dir, "prediction")
    truths = _masks_by_stem(truth_dir, "truth")
    if ids is not None:
        preds = select_ids(preds, ids, f"the predictions in {pred_dir}")
        truths = select_ids(truths, ids, f"the truth masks in {truth_dir}")
    missing = sorted(truths.keys() - preds.keys())
    extra = sorted(preds.keys() - truths.keys())
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} truth mask(s) in {truth_dir} have no prediction: "
                         f"{_listing(missing)}")
        if extra:
            parts.append(f"{len(extra)} prediction(s) in {pred_dir} have no truth mask: "
                         f"{_listing(extra)}")
        hint = ""
        if missing and not extra and ids is None:  # e.g. the val images predicted, all truths
            hint = (" (to score only the predicted images, list them with --ids, e.g. "
                    "--ids kvasir-seg/val.txt)")
        raise UserError("; ".join(parts) + hint)
    return [(stem, preds[stem], truths[stem]) for stem in sorted(truths)]


def evaluate_folders(pred_dir: str | Path, truth_dir: str | Path, progress: bool = True,
                     ids: list[str] | None = None, force: bool = False) -> EvaluationResult:
    """Score every predicted mask in ``pred_dir`` against the same-stem mask in ``truth_dir``
    (only the stems in ``ids`` when given, e.g. a split's ``val.txt``).

    Raises UserError (before any scoring) when the folders are missing or do not pair up, and,
    after reading every pair, a single UserError that lists all the unreadable or mismatched pairs,
    or names the files that are not binary masks (``force``: score those anyway).
    A mean over only part of the images would be misleading, so nothing is reported in that case.
    """
    pred_dir, truth_dir = Path(pred_dir).expanduser(), Path(truth_dir).expanduser()
    pairs = pair_masks(pred_dir, truth_dir, ids)
    counts: list[Counts] = []
    sizes: list[tuple[int, int]] = []
    problems: list[str] = []
    not_masks: dict[str, list[tuple[Path, str]]] = {"truth": [], "prediction": []}
    for stem, pred_path, truth_path in tqdm(pairs, desc="evaluate", unit="mask",
                                            disable=None if progress else True):
        try:
            greys = {"truth": read_mask_grey(truth_path), "prediction": read_mask_grey(pred_path)}
        except UserError as err:  # read_mask_grey's message already names the file
            problems.append(str(err))
            continue
        if not force:
            reasons = {role: mask_problem(grey) for role, grey in greys.items()}
            for role, path in (("truth", truth_path), ("prediction", pred_path)):
                if reasons[role] is not None:
                    not_masks[role].append((path, reasons[role]))
            if any(reasons.values()):
                continue
        truth, pred = binarize_mask(greys["truth"]), binarize_mask(greys["prediction"])
        if pred.shape != truth.shape:
            (ph, pw), (th, tw) = pred.shape, truth.shape
            problems.append(f"{pred_path.name}: prediction is {pw}x{ph} (WxH) "
                            f"but truth {truth_path.name} is {tw}x{th}")
            continue
        if pred.size == 0:
            problems.append(f"{truth_path.name}: mask has no pixels")
            continue
        counts.append(confusion_counts(pred, truth, batched=False))
        sizes.append(truth.shape)
    if not_masks["truth"] or not_masks["prediction"]:
        raise UserError(_not_masks_message(not_masks, len(pairs)))
    if problems:
        raise UserError(f"{len(problems)} of {len(pairs)} mask pairs cannot be scored "
                        f"(masks are never resized): {_listing(problems, sep='; ')}")
    all_counts = Counts(*(np.array([c[i] for c in counts], dtype=np.int64) for i in range(4)))
    medai = medai_scores(all_counts)
    nnunet = nnunet_scores(all_counts)
    rows = tuple(
        ImageRow(
            name=stem, pred_file=pred_path.name, truth_file=truth_path.name,
            height=int(sizes[i][0]), width=int(sizes[i][1]),
            empty_truth=bool(all_counts.tp[i] + all_counts.fn[i] == 0),
            tp=int(all_counts.tp[i]), fp=int(all_counts.fp[i]),
            fn=int(all_counts.fn[i]), tn=int(all_counts.tn[i]),
            **{k: float(medai[k][i]) for k in MEDAI_KEYS},
            nnunet_dice=float(nnunet["dice"][i]), nnunet_jaccard=float(nnunet["jaccard"][i]),
        )
        for i, (stem, pred_path, truth_path) in enumerate(pairs)
    )
    return EvaluationResult(pred_dir=pred_dir, truth_dir=truth_dir, per_image=rows,
                            summary=summarize(all_counts))


def _not_masks_message(not_masks: dict[str, list[tuple[Path, str]]], n_pairs: int) -> str:
    """One line: how many truth / prediction files are not masks, the first one and why, and what
    to do about it."""
    parts = []
    for role, flag in (("truth", "--truth"), ("prediction", "--pred")):
        found = not_masks[role]
        if not found:
            continue
        path, reason = found[0]
        try:
            kind = "a colour image; " if is_colour(read_image(path)) else ""
        except UserError:
            kind = ""
        parts.append(f"{len(found)} of {n_pairs} {role} files are not binary masks, e.g. {path}: "
                     f"{kind}{reason}; is {flag} a folder of masks?")
    return ("; ".join(parts) + " Masks are black and white (0/255 or 0/1; JPEG noise is fine); "
            "--force scores these files anyway")


def format_table(result: EvaluationResult) -> str:
    """A plain-text table: one row per metric, one column per protocol (medai, pooled, nnunet)."""
    n_empty = sum(row.empty_truth for row in result.per_image)
    lines = [
        f"{len(result.per_image)} images ({n_empty} with empty truth)",
        f"  pred:  {result.pred_dir}",
        f"  truth: {result.truth_dir}",
        "",
        f"{'metric':<10}" + "".join(f"{p:>10}" for p in PROTOCOLS),
    ]
    for metric in TABLE_METRICS:
        cells = []
        for protocol in PROTOCOLS:
            value = result.summary[protocol].get(metric)
            if value is None:
                cells.append("-")
            elif isinstance(value, int):
                cells.append(str(value))
            else:
                cells.append(f"{value:.4f}")
        lines.append(f"{metric:<10}" + "".join(f"{c:>10}" for c in cells))
    lines += [
        "",
        "medai:  mean over images; both masks inverted when the truth is empty "
        "(MedAI 2021 evaluator)",
        "pooled: counts summed over all pixels of all images, then the formulas",
        "nnunet: mean over images whose Dice is defined (both masks empty: left out)",
    ]
    return "\n".join(lines)


def default_csv_path(output: str | Path) -> Path:
    """Where the per-image CSV goes when only --output is given: <output stem>_per_image.csv."""
    output = Path(output)
    return output.with_name(f"{output.stem}_per_image.csv")


def write_metrics_json(result: EvaluationResult, path: str | Path) -> None:
    """Write ``result.summary`` as JSON (NaN becomes null), atomically."""
    text = json.dumps(json_safe(result.summary), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    logger.info("wrote %s", path)


def write_per_image_csv(result: EvaluationResult, path: str | Path) -> None:
    """Write one row per image (the columns of ``ImageRow``, NaN as ``nan``), atomically."""
    buf = io.StringIO()
    names = [f.name for f in dataclasses.fields(ImageRow)]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in result.per_image:
        values = dataclasses.astuple(row)
        writer.writerow([int(v) if isinstance(v, bool) else repr(v) if isinstance(v, float)
                         else v for v in values])
    atomic_write_text(path, buf.getvalue())
    logger.info("wrote %s", path)
