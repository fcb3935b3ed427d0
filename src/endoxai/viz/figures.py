"""Matplotlib figures of an explanation: image | relevance | mask (Fig. 2), a layer grid (Fig. 2c).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``) and rendered by the
Agg canvas: no pyplot, no display, no global backend switch, nothing left open after use.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from endoxai.viz.heatmaps import symmetric_limit

CMAP = "bwr"  # diverging, white at 0; heatmaps.heatmap_rgb computes the same colours in numpy
DPI = 120
MARKER_COLOUR = "#00c000"  # target pixel / box outline: green, distinct from red and blue
ZOOM_MIN_HALF = 12  # the enlarged window around a small target: at least 25 x 25 pixels
ZOOM_BELOW = 8  # a box is "small" (gets an enlarged panel) below 1/8 of the image side


def _imshow_relevance(fig: Figure, ax, relevance: np.ndarray, label: str | None = None,
                      limit: float | None = None):
    if limit is None:
        limit = symmetric_limit(relevance) or 1.0  # an all-zero map is white at any scale
    im = ax.imshow(relevance, cmap=CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    scale, unit = _scale(limit)
    # The scale goes into the label: matplotlib's "1e-2" above the bar is easily overlooked.
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03,
                       format=FuncFormatter(lambda v, _: f"{v / scale:g}"))
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(f"{label}{unit}", fontsize=8)
    return im


def _scale(limit: float) -> tuple[float, str]:
    """(divisor, label suffix) that keep colour-bar ticks between 0.1 and 999."""
    if not limit > 0 or not np.isfinite(limit):
        return 1.0, ""
    exponent = int(np.floor(np.log10(limit)))
    if -1 <= exponent <= 2:
        return 1.0, ""
    return 10.0 ** exponent, f" in units of 10{str(exponent).translate(_SUPERSCRIPT)}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _frame(ax) -> None:
    """A thin frame and no ticks: a white map on a white page still shows where it ends."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.8)
        spine.set_edgecolor("0.35")


def _mark_target(ax, target: object, size: int) -> None:
    """Frame a ("pixel", y, x) or ("box", y0, x0, y1, x1) target (model-resolution coords).

    A pixel gets a hollow square around it, leaving the relevance next to the pixel visible (a
    marker on the pixel would hide exactly what its explanation shows)."""
    if not isinstance(target, tuple) or not target or target[0] not in ("pixel", "box"):
        return
    if target[0] == "pixel":
        _, y, x = target
        r = _pixel_frame_radius(size)
        top, left, bottom, right = y - r, x - r, y + r + 1, x + r + 1
    else:
        _, top, left, bottom, right = target  # half-open: rows top..bottom-1
    _outline(ax, top, left, bottom, right)


def _outline(ax, top: int, left: int, bottom: int, right: int) -> None:
    """A green rectangle with a dark edge (visible on white, red and blue) around rows
    top..bottom-1 and columns left..right-1; pixel centres sit on integer coordinates."""
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           lw=1.5, ec=MARKER_COLOUR,
                           path_effects=[patheffects.withStroke(linewidth=3, foreground="black")]))


def _pixel_frame_radius(size: int) -> int:
    return max(3, size // 40)


def _zoom_window(target: object, size: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the window a small target is shown enlarged in, else None."""
    if not isinstance(target, tuple) or not target or target[0] not in ("pixel", "box"):
        return None
    if target[0] == "pixel":
        cy, cx, extent = target[1], target[2], 1
    else:
        _, by0, bx0, by1, bx1 = target
        extent = max(by1 - by0, bx1 - bx0)
        if extent > size // ZOOM_BELOW:
            return None
        cy, cx = (by0 + by1 - 1) // 2, (bx0 + bx1 - 1) // 2
    half = max(ZOOM_MIN_HALF, extent)
    y0 = min(max(0, cy - half), max(0, size - 2 * half - 1))  # kept inside the image
    x0 = min(max(0, cx - half), max(0, size - 2 * half - 1))
    return y0, min(size, y0 + 2 * half + 1), x0, min(size, x0 + 2 * half + 1)


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
    over colour channels, drawn with ``bwr`` on ±max|R| and a colourbar whose label carries the
    scale ("in units of 10⁻²"). mask: bool (H, W), logit > 0. ``target`` (a parsed pixel or box
    target) is framed on the relevance and mask panels; for a pixel or a small box a fourth
    panel shows the relevance around it enlarged, on the same colour scale (a pixel's relevance
    often covers only a few pixels). Every panel has a thin frame.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    h, w = relevance.shape
    if image.shape[:2] != (h, w) or mask.shape != (h, w):
        raise ValueError(
            f"image {image.shape[:2]}, relevance {relevance.shape} and mask {mask.shape} must match"
        )
    window = _zoom_window(target, h)
    fig = Figure(figsize=(18.0 if window else 13.5, 4.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4 if window else 3)
    ax_img, ax_rel, ax_mask = axes[:3]
    ax_img.imshow(image, interpolation="nearest")
    ax_img.set_title(f"Input image ({h}×{w}, as the model sees it)", fontsize=10)
    limit = symmetric_limit(relevance) or 1.0
    _imshow_relevance(fig, ax_rel, relevance, "relevance (red +, blue −)", limit)
    ax_rel.set_title(f"Input relevance, summed over RGB\nΣR = {relevance.sum():.4g}", fontsize=10)
    ax_mask.imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_mask.set_title(
        f"Predicted mask (logit > 0)\n{100 * mask.mean():.1f}% foreground", fontsize=10
    )
    for ax in (ax_img, ax_rel, ax_mask):
        _frame(ax)
    for ax in (ax_rel, ax_mask):
        _mark_target(ax, target, h)
    if window:
        y0, y1, x0, x1 = window
        ax_zoom = axes[3]
        _imshow_relevance(fig, ax_zoom, relevance[y0:y1, x0:x1], "relevance (red +, blue −)",
                          limit)
        ax_zoom.set_title(f"Input relevance around the target\nrows {y0}–{y1 - 1}, "
                          f"columns {x0}–{x1 - 1} (same colour scale)", fontsize=10)
        _frame(ax_zoom)
        if target[0] == "pixel":  # enlarged, the pixel itself can be framed
            _, y, x = target
            _outline(ax_zoom, y - y0, x - x0, y - y0 + 1, x - x0 + 1)
        else:
            _, by0, bx0, by1, bx1 = target
            _outline(ax_zoom, by0 - y0, bx0 - x0, by1 - y0, bx1 - x0)
        ax_rel.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=0.8,
                                   ec="0.35", ls="--"))
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
