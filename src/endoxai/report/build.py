"""``build_report``: predict, score and explain a run's validation images, then write the HTML page.

What the report computes itself (nothing is taken from files other tools may have left behind):

- predictions of ``RUN/best.pt`` on the ``val`` ids of ``RUN/split.json`` (without a run folder:
  of a given model, e.g. the bundled one, on the dataset's validation list), images resized to the
  checkpoint's size; mask = logit > 0, bilinearly upsampled to each image's original size
  (exactly what ``endoxai predict`` writes);
- scores at the original resolution with the MedAI 2021 protocol (``endoxai.metrics``): per-image
  scores, their mean, and the pooled scores; so they equal ``endoxai predict`` followed by
  ``endoxai evaluate`` on the same images;
- LRP (``endoxai.explain.explain``, target = the predicted mask, start = logits) of the gallery
  images, at model resolution.

Faithfulness results are read from ``endoxai evaluate-explanations`` output when available.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from endoxai import __version__
from endoxai.data import SPLIT_FILE, load_arrays, read_mask
from endoxai.data.layouts import DatasetIndex
from endoxai.data.preprocess import to_model_input
from endoxai.data.run_split import validation_set
from endoxai.errors import UserError
from endoxai.explain import COMPOSITES, explain
from endoxai.explain.faithfulness_files import JSON_NAME, curves_figure, read_faithfulness
from endoxai.fileio import atomic_write_text
from endoxai.metrics import Counts, confusion_counts, medai_scores, summarize
from endoxai.predict import logits_to_mask, predict_logits_batched
from endoxai.report.history import HISTORY_FILE, best_epoch, read_history, training_curves_figure
from endoxai.report.page import (
    METRIC_COLUMNS,
    GalleryItem,
    Panel,
    esc,
    fmt,
    gallery_card,
    image,
    page,
    swatch,
    table,
)
from endoxai.runtime import resolve_precision
from endoxai.train.checkpoint import load_generator
from endoxai.viz import heatmap_rgb, overlay_heatmap, overlay_mask

logger = logging.getLogger(__name__)

PAGE_NAME = "index.html"
IMAGE_DIR = "img"
# Table 2 of Ahmed & Ali (2021): their results on the MedAI 2021 challenge *test* set.
PAPER_TABLE2 = {
    "polyp": {"accuracy": 0.84, "jaccard": 0.46, "dice": 0.56, "recall": 0.64, "precision": 0.59},
    "instrument": {"accuracy": 0.96, "jaccard": 0.70, "dice": 0.80, "recall": 0.80,
                   "precision": 0.80},
}
TASK_OF_LAYOUT = {"kvasir-seg": "polyp", "kvasir-instrument": "instrument"}
TRUTH_COLOUR = (0, 200, 0)
TP_COLOUR, FP_COLOUR, FN_COLOUR = (0, 200, 0), (255, 190, 0), (230, 0, 230)
LAYER_MIN_PX = 64  # deep blocks (down8 is 1x1 at 256²) are enlarged by repeating pixels


@dataclass
class ReportSummary:
    """What ``build_report`` wrote: the page, how many validation images it scored and showed,
    the scores (``endoxai.metrics.summarize`` of the validation set) and any skipped pairs."""

    path: Path
    n_images: int
    n_gallery: int
    metrics: dict[str, dict[str, float | int]]
    failures: list[str] = field(default_factory=list)
    faithfulness: Path | None = None


def build_report(
    run_dir: str | Path,
    output_dir: str | Path,
    data: str | Path | None = None,
    max_images: int = 24,
    faithfulness: str | Path | None = None,
    composite: str = "epsilon-gamma-box",
    batch_size: int = 4,
    progress: bool | None = None,
    precision: str = "auto",
    checkpoint: str | Path | None = None,
) -> ReportSummary:
    """Write ``output_dir/index.html`` and its images in ``output_dir/img/`` for the run in
    ``run_dir`` (``best.pt``, ``split.json``, ``history.csv``; see the module docstring), or,
    with ``run_dir`` None, for the model in ``checkpoint`` (a file ``load_generator`` reads, e.g.
    ``endoxai.weights.resolve_model()``) on the validation list of ``data``, without curves.

    ``data``: the dataset (default: the path recorded in ``split.json``). ``max_images``: gallery
    size, the validation images with the lowest Dice first (0: no gallery). ``faithfulness``: a
    folder or ``faithfulness.json`` from ``endoxai evaluate-explanations`` (default:
    ``run_dir/faithfulness`` if it exists). ``composite``: LRP rules of the gallery heatmaps.
    ``progress``: tqdm bars (None: only on a terminal). ``precision``: of the validation
    predictions, as for ``endoxai predict`` (so the report's metrics equal predict + evaluate).
    UserError for a missing run file, dataset or faithfulness file, an unknown composite or a bad
    number.
    """
    out, split_file = Path(output_dir), None
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"run folder not found: {run_dir}")
        split_file = run_dir / SPLIT_FILE
        if not split_file.is_file():
            raise UserError(f"{split_file} not found: the report scores the run's validation "
                            "split")
        checkpoint = run_dir / "best.pt"
    elif checkpoint is None or data is None:
        raise UserError("without a run folder the report needs a model and --data (the dataset "
                        "whose validation images it scores)")
    if max_images < 0 or batch_size < 1:
        raise UserError("--max-images must be >= 0 and --batch-size >= 1")
    if composite not in COMPOSITES:
        raise UserError(f"unknown composite {composite!r}; choose from {', '.join(COMPOSITES)}")
    faith_file = faithfulness_file(run_dir, faithfulness)
    faith = read_faithfulness(faith_file) if faith_file is not None else None
    model, config = load_generator(checkpoint)
    size = config.data.image_size
    index, ids = validation_set(data, split_file)
    arrays = load_arrays(index, ids, size, progress=progress is not False)
    if not arrays.stems:
        raise UserError(f"none of the {len(ids)} validation pairs of {index.where} could be read")
    precision = resolve_precision(precision, torch.device("cpu"), inference=True)
    logits = predict_logits_batched(model, arrays.images, batch_size, precision)
    counts = _original_size_counts(index, arrays.stems, logits)
    metrics = summarize(counts)
    per_image = {k: np.asarray(v, dtype=np.float64) for k, v in medai_scores(counts).items()}
    order = np.argsort(per_image["dice"], kind="stable")  # worst Dice first

    img_dir = out / IMAGE_DIR
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {img_dir}: {err.strerror or err}") from err
    gallery = _gallery(model, arrays, logits, order[:max_images], per_image, composite,
                       batch_size, img_dir, progress)
    history = read_history(run_dir / HISTORY_FILE) if run_dir is not None else []
    truth_share = arrays.masks.flatten(1).float().mean(1).numpy()
    pred_share = (logits > 0).flatten(1).float().mean(1).numpy()

    sections = [
        _header(run_dir, Path(checkpoint), index, config, history, len(arrays.stems),
                arrays.failures, composite),
        _metrics_section(metrics, index.layout),
        _curves_section(history, config, img_dir),
        _gallery_section(gallery, len(arrays.stems), composite),
        _per_image_section(arrays.stems, per_image, order, truth_share, pred_share,
                           {item.stem: item.anchor for item in gallery}),
        _faithfulness_section(faith, faith_file, img_dir),
    ]
    path = out / PAGE_NAME
    title = _title(run_dir, Path(checkpoint))
    atomic_write_text(path, page(f"endoxai report — {title}", sections))
    return ReportSummary(path, len(arrays.stems), len(gallery), metrics, arrays.failures,
                         faith_file)


def faithfulness_file(run_dir: Path | None, given: str | Path | None) -> Path | None:
    """The faithfulness.json to show: ``given`` (a file or folder; UserError if missing), else
    ``run_dir/faithfulness/faithfulness.json`` when it exists, else None."""
    if given is not None:
        path = Path(given)
        path = path / JSON_NAME if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"faithfulness results not found: {path}")
        return path
    if run_dir is None:
        return None
    default = run_dir / "faithfulness" / JSON_NAME
    return default if default.is_file() else None


def _original_size_counts(index: DatasetIndex, stems: list[str], logits: torch.Tensor) -> Counts:
    rows = []
    for stem, logit in zip(stems, logits):
        source, name = index.mask_source(stem)
        truth = read_mask(source, name)
        rows.append(confusion_counts(logits_to_mask(logit, truth.shape), truth))
    return Counts(*(np.array([int(r[i]) for r in rows], dtype=np.int64) for i in range(4)))


# ---------------------------------------------------------------- gallery images

def _png(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False)
    try:
        path.write_bytes(buffer.getvalue())
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from err


def _error_overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    out = overlay_mask(image, pred & truth, TP_COLOUR, alpha=0.5)
    out = overlay_mask(out, pred & ~truth, FP_COLOUR, alpha=0.6)
    return overlay_mask(out, ~pred & truth, FN_COLOUR, alpha=0.6)


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(LAYER_MIN_PX / max(rgb.shape[:2])))
    return rgb.repeat(factor, 0).repeat(factor, 1) if factor > 1 else rgb


def _gallery(model, arrays, logits, indices, per_image, composite, batch_size, img_dir,
             progress) -> list[GalleryItem]:
    items: list[GalleryItem] = []
    indices = [int(i) for i in indices]
    bar = tqdm(total=len(indices), desc="explain gallery", unit="image",
               disable=None if progress is None else not progress)
    for first in range(0, len(indices), batch_size):
        batch = indices[first:first + batch_size]
        exp = explain(model, to_model_input(arrays.images[batch]), target="mask",
                      composite=composite, layers=True, start="logit")
        for j, i in enumerate(batch):
            rank = first + j + 1
            items.append(_gallery_item(rank, i, j, arrays, logits, exp, per_image, img_dir))
            bar.update()
    bar.close()
    return items


def _gallery_item(rank, i, j, arrays, logits, exp, per_image, img_dir) -> GalleryItem:
    stem = arrays.stems[i]
    base = f"g{rank:03d}"
    picture = arrays.images[i].permute(1, 2, 0).numpy()
    truth = arrays.masks[i, 0].numpy().astype(bool)
    pred = (logits[i, 0] > 0).numpy()
    relevance = exp.input[j].sum(0).detach().float().cpu().numpy()
    files = {
        "image": picture,
        "truth": overlay_mask(picture, truth, TRUTH_COLOUR, alpha=0.45),
        "prediction": _error_overlay(picture, pred, truth),
        "relevance": heatmap_rgb(relevance),
        "overlay": overlay_heatmap(picture, relevance),
    }
    for key, array in files.items():
        _png(img_dir / f"{base}_{key}.png", array)
    src = {key: f"{IMAGE_DIR}/{base}_{key}.png" for key in files}
    empty = "" if pred.any() else " (empty prediction: nothing to explain)"
    panels = [
        Panel(src["image"], "image (model input)", f"{stem}: image"),
        Panel(src["truth"], "ground truth", f"{stem}: ground truth"),
        Panel(src["prediction"], "prediction: TP / FP / FN", f"{stem}: prediction errors"),
        Panel(src["relevance"], f"input relevance, ΣR = {relevance.sum():.3g}{esc(empty)}",
              f"{stem}: input relevance"),
        Panel(src["overlay"], "relevance over the image", f"{stem}: relevance overlay"),
    ]
    layers = []
    for name, r in exp.layers.items():
        channels, h, w = r.shape[1:]
        layer_map = r[j].sum(0).detach().float().cpu().numpy()
        _png(img_dir / f"{base}_layer_{name}.png", _enlarge(heatmap_rgb(layer_map)))
        layers.append(Panel(f"{IMAGE_DIR}/{base}_layer_{name}.png",
                            f"{esc(name)} {channels}×{h}×{w}<br>ΣR {layer_map.sum():.3g}",
                            f"{stem}: relevance at {name}"))
    return GalleryItem(rank, base, stem, {k: float(v[i]) for k, v in per_image.items()},
                       float(truth.mean()), float(pred.mean()), panels, layers)


# ---------------------------------------------------------------- sections

def _title(run_dir: Path | None, checkpoint: Path) -> str:
    return run_dir.resolve().name if run_dir is not None else checkpoint.name


def _header(run_dir, checkpoint, index, config, history, n_images, failures, composite) -> str:
    best = best_epoch(history)
    trained = f"{len(history)} of {config.train.epochs} epochs in history.csv" if history else \
        "no history.csv"
    if run_dir is None:
        source = [("model", str(checkpoint.resolve()))]
    else:
        source = [("run", str(run_dir.resolve())),
                  ("checkpoint", f"best.pt (epoch {best}, the highest validation Dice; {trained})"
                   if best is not None else f"best.pt ({trained})")]
    listed = "split.json" if run_dir is not None else "the dataset's validation list"
    facts = [
        *source,
        ("data", f"{index.where} ({index.layout}); {n_images} validation images from {listed}"
         + (f", {len(failures)} unreadable and skipped" if failures else "")),
        ("model input", f"{config.data.image_size}×{config.data.image_size}, mask = logit > 0"),
        ("explanations", f"LRP composite {composite}, target = predicted mask, start = logits"),
        ("generated", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by endoxai {__version__}"),
    ]
    rows = [[esc(k), esc(v)] for k, v in facts]
    skipped = ""
    if failures:
        skipped = "<p class=\"bad\">Skipped: " + "; ".join(esc(f) for f in failures) + "</p>"
    return (f"<h1>endoxai report — {esc(_title(run_dir, checkpoint))}</h1>"
            "<p class=\"sub\">Segmentation with a pix2pix GAN, explained with layer-wise relevance "
            "propagation. Static page: no server, no network.</p>"
            + table(["", ""], rows, table_id="table-run", text_columns=(0, 1)) + skipped
            + f"<details><summary>config.toml</summary><pre>{esc(config.to_toml())}</pre>"
              "</details>")


def _metrics_section(metrics: dict[str, Any], layout: str) -> str:
    task = TASK_OF_LAYOUT.get(layout)
    n = metrics["medai"]["n_images"]
    rows, classes = [], []
    for key, label in (("medai", f"this run — MedAI protocol, mean of {n} images"),
                       ("pooled", "this run — pooled over all pixels")):
        rows.append([esc(label)] + [fmt(metrics[key][k]) for k, _ in METRIC_COLUMNS])
        classes.append("ours")
    for name, scores in PAPER_TABLE2.items():
        rows.append([esc(f"paper, Table 2 — {name} (MedAI test set)")]
                    + [fmt(scores[k], 2) for k, _ in METRIC_COLUMNS])
        classes.append("relevant" if name == task else "")
    return ("<h2 id=\"metrics\">Segmentation metrics</h2>"
            + table(["", *(label for _, label in METRIC_COLUMNS)], rows, classes,
                    table_id="table-metrics")
            + "<p class=\"note\">This run: the validation split of <code>split.json</code>, scored "
              "at each image's original resolution (the mask is the logit upsampled bilinearly, "
              "then > 0, as <code>endoxai predict</code> writes it) with the official MedAI 2021 "
              "evaluator's protocol: per-image scores, both masks inverted when the ground truth "
              "is empty, then the mean. Pooled: counts summed over all pixels first. The paper's "
              "numbers (Ahmed &amp; Ali 2021, Table 2) were measured by the challenge organisers "
              "on the MedAI 2021 <em>test</em> set, which is not public: the comparison is "
              "indicative, not like for like."
            + (f" The highlighted row is the {esc(task)} task of this dataset." if task else "")
            + "</p>")


def _curves_section(history, config, img_dir: Path) -> str:
    head = "<h2 id=\"training\">Training curves</h2>"
    if not history:
        return head + "<p class=\"note\">No <code>history.csv</code> in the run folder.</p>"
    fig = training_curves_figure(history, config.train.l1_weight, config.train.seg_weight)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    (img_dir / "training_curves.png").write_bytes(buffer.getvalue())
    return (head + "<figure>" + image(f"{IMAGE_DIR}/training_curves.png",
                                      "training curves: generator and discriminator losses and "
                                      "validation scores per epoch", "plot") + "</figure>"
            + "<p class=\"note\">Epoch means of the training losses; validation scores at model "
              "resolution after each epoch (the numbers training used to pick best.pt).</p>")


def _gallery_section(items: list[GalleryItem], n_images: int, composite: str) -> str:
    head = (f"<h2 id=\"gallery\">Gallery: the {len(items)} validation images with the lowest "
            f"Dice (of {n_images})</h2>")
    legend = ("<p class=\"note\">Prediction:" + swatch(TP_COLOUR, "true positive")
              + swatch(FP_COLOUR, "false positive") + swatch(FN_COLOUR, "false negative")
              + ". Relevance (LRP, composite " + esc(composite) + "): red = evidence for the "
              "predicted foreground, blue = against, white = 0; every map on its own symmetric "
              "scale ±max|R|. Small maps: relevance at the output of each generator block, summed "
              "over its channels (down1..down8 encoder, up1..up8 decoder). Panels are at model "
              "resolution; scores at the original resolution.</p>")
    if not items:
        return head + "<p class=\"note\">Gallery disabled (--max-images 0).</p>"
    return head + legend + "\n".join(gallery_card(item) for item in items)


def _per_image_section(stems, per_image, order, truth_share, pred_share, anchors) -> str:
    rows = []
    for rank, i in enumerate(order, start=1):
        stem = stems[i]
        name = (f'<a href="#{esc(anchors[stem])}">{esc(stem)}</a>' if stem in anchors
                else esc(stem))
        rows.append([str(rank), name, fmt(per_image["dice"][i])]
                    + [fmt(per_image[k][i]) for k, _ in METRIC_COLUMNS if k != "dice"]
                    + [f"{100 * truth_share[i]:.1f}", f"{100 * pred_share[i]:.1f}"])
    header = ["rank", "image", "Dice", *(label for k, label in METRIC_COLUMNS if k != "dice"),
              "truth %", "predicted %"]
    return ("<h2 id=\"per-image\">Every validation image, worst Dice first</h2>"
            + table(header, rows, table_id="table-per-image", text_columns=(1,))
            + "<p class=\"note\">MedAI per-image scores at the original resolution; foreground "
              "shares at model resolution.</p>")


def _faithfulness_section(faith: dict | None, path: Path | None, img_dir: Path) -> str:
    head = "<h2 id=\"faithfulness\">Do the explanations tell the truth?</h2>"
    if faith is None:
        return head + ("<p class=\"note\">No faithfulness results: run <code>endoxai "
                       "evaluate-explanations --run RUN</code> (writes RUN/faithfulness, which "
                       "this report picks up) or pass <code>--faithfulness DIR</code>.</p>")
    summary, settings = faith["summary"], faith["settings"]
    fig = curves_figure(summary, faith["fractions"])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    (img_dir / "faithfulness_curves.png").write_bytes(buffer.getvalue())
    rows = []
    for method, s in summary.items():
        rows.append([esc(method), str(s.get("n_images", "")),
                     _pm(s.get("aopc_morf"), s.get("aopc_morf_sem")),
                     _pm(s.get("aopc_lerf"), s.get("aopc_lerf_sem")), fmt(s.get("abpc")),
                     fmt(s.get("mass_accuracy")), fmt(s.get("pointing_game")),
                     fmt(s.get("seconds"), 1)])
    n = len(faith.get("images", []))
    described = (f"{n} validation image(s), {settings.get('patch')} px patches, "
                 f"{settings.get('steps')} steps up to {100 * settings.get('fraction', 0):.0f}% "
                 f"of the image, baseline {settings.get('baseline')}, integrated gradients with "
                 f"{settings.get('ig_steps')} steps")
    return (head + "<p class=\"note\">Region perturbation (Samek et al. 2017): patches are replaced "
            "by the baseline in the order each method ranks them, and the explained score "
            "(Σ logit over the originally predicted mask) is tracked; curves show it as the mean "
            "logit over those pixels. AOPC = its mean drop over the steps, in logits: higher for "
            "MoRF (most relevant first) and lower for LeRF (least relevant first) is better, "
            "negative = the perturbation raised the score; ABPC = AOPC MoRF − AOPC LeRF. Mass accuracy: share "
            "of the positive relevance inside the ground truth; pointing game: is the most "
            f"relevant pixel inside it. {esc(described)}; from <code>{esc(path)}</code>.</p>"
            + table(["method", "images", "AOPC MoRF ↑", "AOPC LeRF ↓", "ABPC ↑",
                     "mass accuracy ↑", "pointing game ↑", "seconds / image"], rows,
                    table_id="table-faithfulness")
            + "<figure>" + image(f"{IMAGE_DIR}/faithfulness_curves.png",
                                 "mean MoRF and LeRF perturbation curves per method", "plot")
            + "</figure>")


def _pm(mean: float | None, sem: float | None) -> str:
    return fmt(mean) + ("" if sem is None else f" ± {sem:.3f}")
