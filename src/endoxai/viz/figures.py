"""Matplotlib figures of an explanation: image | relevance | mask (Fig. 2), a layer grid (Fig. 2c).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``) and rendered by the
Agg canvas: no pyplot, no display, no global backend switch, nothing left open after use.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from endoxai.viz.heatmaps import symmetric_limit

CMAP = "bwr"  # diverging, white at 0; heatmaps.heatmap_rgb computes the same colours in numpy
DPI = 120
MARKER_COLOUR = "#00c000"  # target pixel / box outline: green, distinct from red and blue


def _imshow_relevance(fig: Figure, ax, relevance: np.ndarray, label: str | None = None):
    limit = symmetric_limit(relevance) or 1.0  # an all-zero map is white at any scale
    im = ax.imshow(relevance, cmap=CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    bar.formatter.set_powerlimits((-2, 3))  # scientific notation for tiny or huge relevance
    if label:
        bar.set_label(label, fontsize=8)
    return im


def _mark_target(ax, target: object) -> None:
    """Outline a ("pixel", y, x) or ("box", y0, x0, y1, x1) target (model-resolution coords)."""
    if not isinstance(target, tuple) or not target:
        return
    if target[0] == "pixel":
        _, y, x = target
        ax.plot([x], [y], marker="+", markersize=14, markeredgewidth=2, color=MARKER_COLOUR)
    elif target[0] == "box":
        _, y0, x0, y1, x1 = target
        # Half-open box [y0, y1) x [x0, x1); pixel centres sit on integer coordinates.
        ax.add_patch(
            Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.5, ec=MARKER_COLOUR)
        )


def explanation_figure(
    image: np.ndarray,
    relevance: np.ndarray,
    mask: np.ndarray,
    *,
    title: str | None = None,
    target: object = None,
) -> Figure:
    """Three panels: the image, its input relevance map and the predicted mask, all (H, W).

    image: uint8 (H, W, 3), as the model saw it. relevance: (H, W), the input relevance summed
    over colour channels, drawn with ``bwr`` on ±max|R| and a colourbar. mask: bool (H, W),
    logit > 0. ``target`` (a parsed pixel or box target) is outlined on the last two panels.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    h, w = relevance.shape
    if image.shape[:2] != (h, w) or mask.shape != (h, w):
        raise ValueError(
            f"image {image.shape[:2]}, relevance {relevance.shape} and mask {mask.shape} must match"
        )
    fig = Figure(figsize=(13.5, 4.9), layout="constrained")
    FigureCanvasAgg(fig)
    ax_img, ax_rel, ax_mask = fig.subplots(1, 3)
    ax_img.imshow(image, interpolation="nearest")
    ax_img.set_title(f"Input image ({h}×{w}, as the model sees it)", fontsize=10)
    _imshow_relevance(fig, ax_rel, relevance, "relevance (red +, blue −)")
    ax_rel.set_title(f"Input relevance, summed over RGB\nΣR = {relevance.sum():.4g}", fontsize=10)
    ax_mask.imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_mask.set_title(
        f"Predicted mask (logit > 0)\n{100 * mask.mean():.1f}% foreground", fontsize=10
    )
    for ax in (ax_img, ax_rel, ax_mask):
        ax.set_axis_off()
    for ax in (ax_rel, ax_mask):
        _mark_target(ax, target)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def layers_figure(
    layer_maps: Mapping[str, np.ndarray],
    shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    title: str | None = None,
    columns: int = 4,
) -> Figure:
    """A grid of (h, w) relevance maps, one per block in the given order, each on its own ±max|R|.

    ``layer_maps``: block name -> (h, w) relevance summed over channels. ``shapes``: block name ->
    (C, h, w) of the full relevance, shown in the panel title with ΣR and max|R|. One shared
    colourbar reads in units of each panel's own max|R| (16 colourbars would double the drawing
    time). Deep blocks are only a few pixels wide (down8 is 1×1 at 256²); they are drawn as
    blocks, not interpolated.
    """
    names = list(layer_maps)
    if not names:
        raise ValueError("no layer maps to draw")
    rows = -(-len(names) // columns)
    bar_width = 1.3  # inches right of the grid for the shared colourbar and its label
    fig = Figure(figsize=(3.0 * columns + bar_width, 3.35 * rows + (0.8 if title else 0.5)))
    FigureCanvasAgg(fig)
    # Fixed margins instead of constrained layout: every panel is the same square, and the layout
    # solver would cost as much as drawing.
    top = 1 - (0.8 if title else 0.5) / fig.get_figheight()
    fig.subplots_adjust(left=0.01, right=1 - bar_width / fig.get_figwidth(), bottom=0.01, top=top,
                        wspace=0.06, hspace=0.26)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    image = None
    for ax, name in zip(axes, names):
        relevance = np.asarray(layer_maps[name], dtype=np.float64)
        limit = symmetric_limit(relevance)
        scaled = relevance / limit if limit > 0 else np.zeros_like(relevance)
        image = ax.imshow(scaled, cmap=CMAP, vmin=-1, vmax=1, interpolation="nearest")
        shape = shapes.get(name) if shapes else None
        size = "×".join(str(s) for s in (shape or relevance.shape))
        ax.set_title(
            f"{name} ({size})\nΣR = {relevance.sum():.4g}, max|R| = {limit:.3g}", fontsize=9
        )
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(names):]:
        ax.set_axis_off()
    bar_ax = fig.add_axes((1 - 1.05 / fig.get_figwidth(), 0.3, 0.18 / fig.get_figwidth(), 0.4))
    bar = fig.colorbar(image, cax=bar_ax)
    bar.set_label("R / max|R| of each panel (red +, blue −)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.15 / fig.get_figheight(), va="top")
    return fig


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes (the caller decides where and how to write them)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
