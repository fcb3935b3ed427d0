"""Faithfulness on files: the driver behind ``endoxai evaluate-explanations``, its files and table.

``evaluate_explanation_files`` loads a checkpoint and validation images, runs
``evaluate_faithfulness`` and writes (``write_faithfulness``): ``faithfulness.json`` (settings,
per-method summary with mean curves, every image's raw curves and scores),
``faithfulness_per_image.csv`` (one row per image and method) and ``faithfulness_curves.png``
(mean MoRF and LeRF curves of every method).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from endoxai.data import decode_pair
from endoxai.data.preprocess import to_model_input
from endoxai.data.run_split import validation_set
from endoxai.errors import ItemError, UserError
from endoxai.explain.faithfulness import (
    FaithfulnessResult,
    FaithfulnessSettings,
    evaluate_faithfulness,
)
from endoxai.explain.methods import RANDOM
from endoxai.fileio import atomic_write_bytes, atomic_write_text, read_json
from endoxai.formatting import fmt, fmt_csv, fmt_interval, fmt_pm
from endoxai.train.checkpoint import load_generator
from endoxai.viz.faithfulness import faithfulness_figure
from endoxai.viz.figures import figure_png

logger = logging.getLogger(__name__)

JSON_NAME = "faithfulness.json"
CSV_NAME = "faithfulness_per_image.csv"
PLOT_NAME = "faithfulness_curves.png"
CSV_COLUMNS = ("name", "method", "initial_score", "target_pixels", "aopc_morf", "aopc_lerf",
               "abpc", "aopc_dice_morf", "aopc_dice_lerf", "mass_accuracy", "pointing_game",
               "seconds")


@dataclass
class ChosenImages:
    """A checkpoint's generator (eval mode, on its device) and the validation images it explains:
    ``images`` (N, 3, S, S) in [-1, 1], ``masks`` (N, S, S) bool ground truth, ``names`` their ids,
    ``skipped`` the ids passed over (unreadable, or an empty prediction) with the reason, and
    ``dataset`` where they were read from."""

    model: nn.Module
    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    skipped: list[dict[str, str]]
    dataset: str


def choose_images(
    checkpoint: str | Path,
    data: str | Path | None,
    split_file: str | Path | None = None,
    n_images: int = 4,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
) -> ChosenImages:
    """Load the generator in ``checkpoint`` onto ``device`` and the first ``n_images`` validation
    images (``validation_set``, sorted ids) whose prediction is not empty, at the checkpoint's
    image size. Unreadable pairs are logged and skipped. UserError for a bad checkpoint or
    dataset, or when no image has a non-empty prediction. ``progress``: a tqdm bar while the
    images are chosen (None: only on a terminal)."""
    if n_images < 1:
        raise UserError(f"--n-images must be >= 1; got {n_images}")
    model, config = load_generator(checkpoint, device)
    size = config.data.image_size
    index, ids = validation_set(data, split_file)
    images, masks, names, skipped = [], [], [], []
    with logging_redirect_tqdm(), tqdm(
        total=n_images, desc="choosing images", unit="image",
        disable=None if progress is None else not progress,
    ) as bar:
        for stem in ids:
            if len(names) == n_images:
                break
            try:
                image, mask = decode_pair(index, stem, size)
            except ItemError as err:
                logger.error("skipped: %s", err)
                skipped.append({"name": stem, "reason": str(err)})
                continue
            x = to_model_input(torch.from_numpy(image).permute(2, 0, 1)[None])
            with torch.inference_mode():
                if not (model.logits(x.to(device)) > 0).any():
                    skipped.append({"name": stem, "reason": "empty prediction"})
                    bar.set_postfix_str(f"{len(skipped)} skipped")
                    continue
            images.append(x)
            masks.append(torch.from_numpy(mask))
            names.append(stem)
            bar.update()
    if not names:
        raise UserError(f"none of the {len(ids)} validation images of {index.where} has a "
                        "non-empty prediction: nothing to explain")
    if len(names) < n_images:
        logger.warning("only %d image(s) with a non-empty prediction among %d validation images",
                       len(names), len(ids))
    return ChosenImages(model, torch.cat(images), torch.stack(masks), names, skipped,
                        str(index.where))


def evaluate_explanation_files(
    checkpoint: str | Path,
    data: str | Path | None,
    output_dir: str | Path,
    split_file: str | Path | None = None,
    n_images: int = 4,
    settings: FaithfulnessSettings | None = None,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
) -> tuple[FaithfulnessResult, dict[str, Path]]:
    """Evaluate the explanations of the generator in ``checkpoint`` on the images
    ``choose_images`` picks, with the model on ``device``; write the files of
    ``write_faithfulness`` into ``output_dir``.

    Returns the result and the written paths. UserError for a bad checkpoint, dataset or setting.
    ``progress``: tqdm bars while the images are chosen and evaluated (None: only on a terminal).
    """
    settings = settings or FaithfulnessSettings()
    chosen = choose_images(checkpoint, data, split_file, n_images, progress, device)
    try:
        result = evaluate_faithfulness(chosen.model, chosen.images, chosen.masks, chosen.names,
                                       settings, progress)
    except ValueError as err:  # e.g. more steps than patches
        raise UserError(str(err)) from err
    result.skipped = chosen.skipped + result.skipped
    result.settings.update(checkpoint=str(checkpoint), dataset=chosen.dataset,
                           split_file=None if split_file is None else str(split_file))
    return result, write_faithfulness(result, output_dir)


def format_table(result: FaithfulnessResult) -> str:
    """Plain-text table of the summary: one row per method."""
    summary = result.summary()
    header = (f"{'method':<26} {'AOPC MoRF ↑':>13} {'AOPC LeRF ↓':>13} {'ABPC ↑':>8} "
              f"{'Dice MoRF ↑ [95% CI]':>21} {'Dice LeRF ↓':>11} "
              f"{'mass acc.':>9} {'pointing':>8} {'s/img':>6}")
    lines = [(f"Region perturbation on {len(result.images)} image(s), patch "
             f"{result.settings['patch']} px, {result.settings['steps']} steps up to "
             f"{100 * result.settings['fraction']:.0f}% of the image, baseline "
             f"{result.settings['baseline']}"), header]
    for method, s in summary.items():
        lines.append(f"{method:<26} {fmt_pm(s['aopc_morf'], s['aopc_morf_sem']):>13} "
                     f"{fmt_pm(s['aopc_lerf'], s['aopc_lerf_sem']):>13} {fmt(s['abpc']):>8} "
                     f"{_interval(s, 'aopc_dice_morf'):>21} {fmt(s['aopc_dice_lerf']):>11} "
                     f"{fmt(s['mass_accuracy']):>9} {fmt(s['pointing_game']):>8} "
                     f"{fmt(s['seconds'], 1):>6}")
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} image(s) with an empty prediction")
    return "\n".join(lines)


def _interval(summary: dict[str, Any], key: str) -> str:
    """``mean [low, high]`` of a summarised AOPC (the mean alone for one image)."""
    return fmt_interval(summary.get(key), summary.get(key + "_low"), summary.get(key + "_high"),
                        mean_digits=3)


def write_faithfulness(result: FaithfulnessResult, output_dir: str | Path) -> dict[str, Path]:
    """Write ``faithfulness.json``, ``faithfulness_per_image.csv`` and ``faithfulness_curves.png``
    into ``output_dir`` (atomically); returns kind ("json", "csv", "png") -> path."""
    out = Path(output_dir)
    paths = {"json": out / JSON_NAME, "csv": out / CSV_NAME, "png": out / PLOT_NAME}
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for image in result.images:
        for method, r in image["methods"].items():
            writer.writerow([image["name"], method, f"{image['initial_score']:.6g}",
                             image["target_pixels"]]
                            + [fmt_csv(r[k]) for k in CSV_COLUMNS[4:]])
    atomic_write_text(paths["csv"], buffer.getvalue())
    s = result.settings
    title = (f"Region perturbation, {len(result.images)} image(s), {s['patch']} px patches, "
             f"baseline {s['baseline']}")
    fig = faithfulness_figure(result.summary(), result.fractions, title=title, floor=RANDOM)
    atomic_write_bytes(paths["png"], figure_png(fig, dpi=110))
    return paths


def read_faithfulness(path: str | Path) -> dict[str, Any]:
    """``faithfulness.json`` (or the folder holding it) as written by ``write_faithfulness``;
    UserError if missing or unreadable."""
    path = Path(path)
    return read_json(path / JSON_NAME if path.is_dir() else path, "faithfulness results",
                     ("settings", "summary", "fractions"), JSON_NAME)
