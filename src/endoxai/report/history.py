"""A run's ``history.csv`` (one row per epoch) and the training-curve figure drawn from it."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from endoxai.errors import UserError

logger = logging.getLogger(__name__)

VAL_COLUMNS = ("val_dice", "val_jaccard", "val_recall", "val_precision", "val_accuracy")


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of ``history.csv`` as {column: float} (an empty cell is NaN), in file order.

    A missing file gives [] (a run that has not finished an epoch); an unreadable one UserError.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return [{k: _float(v) for k, v in row.items() if k} for row in csv.DictReader(f)]
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from err


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def best_epoch(history: Sequence[dict[str, float]]) -> int | None:
    """The epoch whose ``val_dice`` is highest (the first on ties, as training keeps best.pt)."""
    scored = [(row.get("val_dice", math.nan), i) for i, row in enumerate(history)]
    scored = [(d, i) for d, i in scored if not math.isnan(d)]
    if not scored:
        return None
    _, i = max(scored, key=lambda t: (t[0], -t[1]))
    return int(history[i].get("epoch", i + 1))


def training_curves_figure(
    history: Sequence[dict[str, float]], l1_weight: float = 100.0, seg_weight: float = 1.0
) -> Figure:
    """Three panels over the epochs: generator losses (total, adversarial, λ·L1 and the weighted
    segmentation term when present; log scale, since λ·L1 dominates), discriminator losses (total,
    on real and on generated masks), and the validation scores with the best epoch marked (plus
    the Dice of the first training images, dashed, when the history has ``fit_dice``, and the
    trained weights' validation Dice, dotted, when it has ``val_dice_trained``)."""
    if not history:
        raise ValueError("no epochs to plot")
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)])
    fig = Figure(figsize=(13.5, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax_g, ax_d, ax_v = fig.subplots(1, 3)

    def series(key: str, scale: float = 1.0) -> np.ndarray | None:
        values = np.array([row.get(key, math.nan) for row in history], dtype=np.float64)
        return None if np.isnan(values).all() else scale * values

    style = {"marker": "o", "markersize": 3, "lw": 1.5}
    for key, label, scale in (("loss_g", "total", 1.0), ("loss_g_adv", "adversarial", 1.0),
                              ("loss_g_l1", f"{l1_weight:g} · L1", l1_weight),
                              ("loss_g_seg", f"{seg_weight:g} · segmentation", seg_weight)):
        values = series(key, scale)
        if values is not None:
            ax_g.plot(epochs, values, label=label, **style)
    if any(line.get_ydata().min() > 0 for line in ax_g.get_lines()):
        ax_g.set_yscale("log")
    ax_g.set_title("Generator loss", fontsize=11)
    for key, label in (("loss_d", "total"), ("loss_d_real", "on real masks"),
                       ("loss_d_fake", "on generated masks")):
        values = series(key)
        if values is not None:
            ax_d.plot(epochs, values, label=label, **style)
    ax_d.set_title("Discriminator loss", fontsize=11)
    for key in VAL_COLUMNS:
        values = series(key)
        if values is not None:
            ax_v.plot(epochs, values, label=key[4:], lw=2.5 if key == "val_dice" else 1.2,
                      marker="o", markersize=3)
    trained = series("val_dice_trained")  # train.ema_decay: val_dice is the weight average's
    if trained is not None:
        ax_v.plot(epochs, trained, label="dice, trained weights", color="grey", ls=":", lw=1.5,
                  marker="o", markersize=3)
    fit = series("fit_dice")  # train.fit_images: low = underfitting, far above = overfitting
    if fit is not None:
        ax_v.plot(epochs, fit, label="dice, training images", color="black", ls="--", lw=1.5,
                  marker="o", markersize=3)
    best = best_epoch(history)
    if best is not None:
        ax_v.axvline(best, color="grey", ls=":", lw=1)
        ax_v.annotate(f"best.pt (epoch {best})", (best, 0.02), fontsize=8, color="grey",
                      xytext=(3, 0), textcoords="offset points")
    ax_v.set_ylim(0, 1)
    ax_v.set_title("Validation (MedAI, model resolution)", fontsize=11)
    for ax in (ax_g, ax_d, ax_v):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    return fig
