"""Sanity checks on files: the driver behind ``endoxai evaluate-explanations --sanity``.

``evaluate_sanity_files`` loads a checkpoint and validation images (``choose_images``, the same
images as the region perturbation), runs ``evaluate_sanity`` and writes (``write_sanity``):
``sanity.json`` (settings, stages, per-stage summary, every image's similarities),
``sanity_per_image.csv`` (one row per image, stage and method) and ``sanity.png`` (similarity vs
randomised depth, ``viz.sanity``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from endoxai.errors import UserError
from endoxai.explain.faithfulness_files import choose_images
from endoxai.explain.sanity import MEASURES, SanityResult, SanitySettings, evaluate_sanity
from endoxai.fileio import atomic_write_bytes, atomic_write_text, read_json
from endoxai.formatting import fmt, fmt_csv, fmt_interval
from endoxai.train.checkpoint import load_generator
from endoxai.viz.figures import figure_png
from endoxai.viz.sanity import sanity_figure
from endoxai.weights import resolve_model

JSON_NAME = "sanity.json"
CSV_NAME = "sanity_per_image.csv"
PLOT_NAME = "sanity.png"
KEY_STAGE = "decoder"  # the criterion: similarity once the whole decoder is randomised


def evaluate_sanity_files(
    checkpoint: str | Path,
    data: str | Path | None,
    output_dir: str | Path,
    split_file: str | Path | None = None,
    n_images: int = 4,
    settings: SanitySettings | None = None,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
    data_random: str | Path | None = None,
) -> tuple[SanityResult, dict[str, Path]]:
    """Run the randomisation sanity checks of ``settings`` for the generator in ``checkpoint`` on
    the images ``choose_images`` picks (the first ``n_images`` validation images with a
    non-empty prediction) and write ``write_sanity``'s files into ``output_dir``. Returns the
    result and the written paths; UserError for a bad checkpoint, dataset or setting.
    ``data_random``: a checkpoint (or run folder: its best.pt) of the same architecture trained
    on shuffled masks (``data.shuffle_masks``), compared as the stage ``data``."""
    settings = settings or SanitySettings()
    chosen = choose_images(checkpoint, data, split_file, n_images, progress, device)
    shuffled = (None if data_random is None
                else load_generator(resolve_model(data_random), device)[0])
    try:
        result = evaluate_sanity(chosen.model, chosen.images, chosen.names, settings, progress,
                                 data_random=shuffled)
    except ValueError as err:  # e.g. not a U-Net
        raise UserError(str(err)) from err
    result.skipped = chosen.skipped + result.skipped
    result.settings.update(checkpoint=str(checkpoint), dataset=chosen.dataset,
                           split_file=None if split_file is None else str(split_file),
                           data_random=None if data_random is None else str(data_random))
    return result, write_sanity(result, output_dir)


def write_sanity(result: SanityResult, output_dir: str | Path) -> dict[str, Path]:
    """Write ``sanity.json``, ``sanity_per_image.csv`` and ``sanity.png`` into ``output_dir``
    (atomically); returns kind ("json", "csv", "png") -> path."""
    out = Path(output_dir)
    paths = {"json": out / JSON_NAME, "csv": out / CSV_NAME, "png": out / PLOT_NAME}
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("name", "stage", "method") + MEASURES)
    for stage, per_method in result.similarity.items():
        for method, values in per_method.items():
            for i, name in enumerate(result.names):
                writer.writerow([name, stage, method] + [fmt_csv(values[m][i]) for m in MEASURES])
    atomic_write_text(paths["csv"], buffer.getvalue())
    fig = sanity_figure(result.summary(), result.stages,
                        title=f"Randomisation sanity check, {len(result.names)} image(s): "
                              "similarity to the trained model's maps (lower = depends more on "
                              "the randomised weights)")
    atomic_write_bytes(paths["png"], figure_png(fig, dpi=110))
    return paths


def format_sanity_table(result: SanityResult | dict[str, Any]) -> str:
    """Plain-text table: one row per method, the mean Spearman ρ of |R| (with its 95 % interval)
    after each independent randomisation and at the end of the cascade, and, once the decoder is
    randomised, the same ρ beyond the distance to the target (its interval) and the mean SSIM.
    ``result``: a ``SanityResult`` or a read ``sanity.json``."""
    summary = result.summary() if isinstance(result, SanityResult) else result["summary"]
    stages = result.stages if isinstance(result, SanityResult) else result["stages"]
    names = result.names if isinstance(result, SanityResult) else result["names"]
    columns = [s["name"] for s in stages if s["kind"] != "cascade"]
    cascade = [s["name"] for s in stages if s["kind"] == "cascade"]
    if cascade:
        columns.append(cascade[-1])
    labels = {c: (f"ρ all to {c}" if c in cascade else f"ρ {c} only") for c in columns}
    methods = list(next(iter(summary.values()))) if summary else []
    header = f"{'method':<26} " + " ".join(f"{labels[c]:>20}" for c in columns)
    has_key = KEY_STAGE in summary
    if has_key:
        header += f" {'ρ beyond distance, decoder only':>32} {'SSIM decoder only':>18}"
    lines = [f"Randomisation sanity check on {len(names)} image(s): similarity of |R| to the "
             "trained model's maps (1 = unchanged; lower = the map depends on those weights)",
             header]
    for method in methods:
        cells = [_interval(summary[c][method]["spearman"]) for c in columns]
        line = f"{method:<26} " + " ".join(f"{cell:>20}" for cell in cells)
        if has_key:
            key = summary[KEY_STAGE][method]
            line += (f" {_interval(key.get('spearman_partial', {})):>32}"
                     f" {fmt(key['ssim']['mean'], 2):>18}")
        lines.append(line)
    return "\n".join(lines)


def _interval(stats: dict[str, Any]) -> str:
    return fmt_interval(stats.get("mean"), stats.get("low"), stats.get("high"))


def read_sanity(path: str | Path) -> dict[str, Any]:
    """``sanity.json`` (or the folder holding it) as written by ``write_sanity``; UserError if
    missing or unreadable."""
    path = Path(path)
    return read_json(path / JSON_NAME if path.is_dir() else path, "sanity-check results",
                     ("settings", "stages", "summary", "names"), JSON_NAME)
