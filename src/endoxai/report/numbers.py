"""The numbers a report shows, computed from a model and its validation images (no HTML here).

What the report computes itself (nothing is taken from files other tools may have left behind):

- predictions of the model on the validation images, resized to the checkpoint's size; mask =
  logit > 0, bilinearly upsampled to each image's original size (exactly what ``endoxai predict``
  writes);
- scores at the original resolution with the MedAI 2021 protocol (``endoxai.metrics``): per-image
  scores, their mean, and the pooled scores; so they equal ``endoxai predict`` followed by
  ``endoxai evaluate`` on the same images;
- LRP (``endoxai.explain.explain``, target = the predicted mask, start = logits) of the gallery
  images (the lowest Dice first), at model resolution, with the relevance at every block and the
  skip-flow ledger of each (``endoxai.explain.flow``).

Faithfulness and sanity-check results and the training history are read from the files
``endoxai evaluate-explanations`` (with ``--sanity``) and ``endoxai train`` wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from endoxai.config import Config
from endoxai.data import Arrays, load_arrays, read_mask
from endoxai.data.layouts import DatasetIndex
from endoxai.data.preprocess import to_model_input
from endoxai.data.run_split import validation_set
from endoxai.errors import UserError
from endoxai.explain import DEFAULT_COMPOSITE, explain
from endoxai.explain.faithfulness_files import read_faithfulness
from endoxai.explain.flow import SkipFlow
from endoxai.explain.sanity_files import read_sanity
from endoxai.metrics import Counts, confusion_counts, medai_scores, summarize
from endoxai.predict import logits_to_mask, predict_logits_batched
from endoxai.report.history import read_history
from endoxai.runtime import resolve_precision
from endoxai.train.checkpoint import load_generator
from endoxai.train.logbook import HISTORY_FILE


@dataclass
class GalleryEntry:
    """One gallery image at model resolution: ``image`` (H, W, 3) uint8, ``truth`` and ``pred``
    (H, W) bool, ``relevance`` (H, W) input relevance summed over the colour channels, ``layers``
    block name -> ((C, h, w) of the block's output, (h, w) relevance summed over its channels),
    ``flow`` the image's skip-flow ledger (None for a model that is not a U-Net)."""

    rank: int  # 1 = lowest Dice
    index: int  # position in ReportNumbers.stems
    stem: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    relevance: np.ndarray
    layers: dict[str, tuple[tuple[int, int, int], np.ndarray]] = field(default_factory=dict)
    flow: SkipFlow | None = None


@dataclass
class ReportNumbers:
    """Everything the page shows. ``per_image``: metric -> (N,) MedAI scores at the original
    size, in ``stems`` order; ``order``: indices into ``stems``, lowest Dice first;
    ``truth_share`` / ``pred_share``: (N,) foreground shares at model resolution."""

    run_dir: Path | None
    checkpoint: Path
    config: Config
    dataset: str  # where the images were read (DatasetIndex.where)
    layout: str
    composite: str
    stems: list[str]
    failures: list[str]  # unreadable pairs, skipped
    metrics: dict[str, dict[str, float | int]]  # endoxai.metrics.summarize
    per_image: dict[str, np.ndarray]
    order: np.ndarray
    truth_share: np.ndarray
    pred_share: np.ndarray
    gallery: list[GalleryEntry]
    history: list[dict[str, float]]  # history.csv rows; [] without a run folder
    faithfulness: dict[str, Any] | None = None  # faithfulness.json
    faithfulness_path: Path | None = None
    sanity: dict[str, Any] | None = None  # sanity.json
    sanity_path: Path | None = None

    def gallery_flow(self) -> SkipFlow | None:
        """The skip-flow ledgers of the gallery images as one batch (None without any)."""
        flows = [entry.flow for entry in self.gallery if entry.flow is not None]
        return SkipFlow.concat(flows) if flows else None


def compute_numbers(
    checkpoint: Path,
    data: str | Path | None,
    split_file: Path | None,
    run_dir: Path | None = None,
    max_images: int = 24,
    faithfulness_path: Path | None = None,
    composite: str = DEFAULT_COMPOSITE,
    batch_size: int = 4,
    progress: bool | None = None,
    precision: str = "auto",
    sanity_path: Path | None = None,
) -> ReportNumbers:
    """Predict, score and explain (module docstring) the validation images of ``split_file``
    (or of ``data``'s validation list) with the generator in ``checkpoint``; read the run's
    history, ``faithfulness_path`` and ``sanity_path``. UserError when nothing can be read."""
    faith = read_faithfulness(faithfulness_path) if faithfulness_path is not None else None
    sanity = read_sanity(sanity_path) if sanity_path is not None else None
    model, config = load_generator(checkpoint)
    index, ids = validation_set(data, split_file)
    arrays = load_arrays(index, ids, config.data.image_size, progress=progress is not False)
    if not arrays.stems:
        raise UserError(f"none of the {len(ids)} validation pairs of {index.where} could be read")
    precision = resolve_precision(precision, torch.device("cpu"), inference=True)
    logits = predict_logits_batched(model, arrays.images, batch_size, precision)
    counts = _original_size_counts(index, arrays.stems, logits)
    per_image = {k: np.asarray(v, dtype=np.float64) for k, v in medai_scores(counts).items()}
    order = np.argsort(per_image["dice"], kind="stable")  # worst Dice first
    gallery = _gallery(model, arrays, logits, order[:max_images], composite, batch_size, progress)
    return ReportNumbers(
        run_dir=run_dir, checkpoint=Path(checkpoint), config=config, dataset=index.where,
        layout=index.layout, composite=composite, stems=list(arrays.stems),
        failures=list(arrays.failures), metrics=summarize(counts), per_image=per_image,
        order=order, truth_share=arrays.masks.flatten(1).float().mean(1).numpy(),
        pred_share=(logits > 0).flatten(1).float().mean(1).numpy(), gallery=gallery,
        history=read_history(run_dir / HISTORY_FILE) if run_dir is not None else [],
        faithfulness=faith, faithfulness_path=faithfulness_path,
        sanity=sanity, sanity_path=sanity_path,
    )


def _original_size_counts(index: DatasetIndex, stems: list[str], logits: torch.Tensor) -> Counts:
    rows = []
    for stem, logit in zip(stems, logits):
        source, name = index.mask_source(stem)
        truth = read_mask(source, name)
        rows.append(confusion_counts(logits_to_mask(logit, truth.shape), truth))
    return Counts(*(np.array([int(r[i]) for r in rows], dtype=np.int64) for i in range(4)))


def _gallery(model: torch.nn.Module, arrays: Arrays, logits: torch.Tensor, indices: np.ndarray,
             composite: str, batch_size: int, progress: bool | None) -> list[GalleryEntry]:
    entries: list[GalleryEntry] = []
    indices = [int(i) for i in indices]
    with tqdm(total=len(indices), desc="explain gallery", unit="image",
              disable=None if progress is None else not progress) as bar:
        for first in range(0, len(indices), batch_size):
            batch = indices[first:first + batch_size]
            exp = explain(model, to_model_input(arrays.images[batch]), target="mask",
                          composite=composite, layers=True, start="logit", layer_inputs=True)
            try:
                flow = exp.flow
            except ValueError:  # not a U-Net: no skip flow to show
                flow = None
            for j, i in enumerate(batch):
                layers = {name: (tuple(r.shape[1:]), r[j].sum(0).detach().float().cpu().numpy())
                          for name, r in exp.layers.items()}
                entries.append(GalleryEntry(
                    rank=first + j + 1, index=i, stem=arrays.stems[i],
                    image=arrays.images[i].permute(1, 2, 0).numpy(),
                    truth=arrays.masks[i, 0].numpy().astype(bool),
                    pred=(logits[i, 0] > 0).numpy(),
                    relevance=exp.input[j].sum(0).detach().float().cpu().numpy(),
                    layers=layers, flow=None if flow is None else flow.image(j)))
                bar.update()
    return entries
