"""Figures of an explanation: image | relevance | mask (Fig. 2), a layer grid (Fig. 2c).

Drawn with Pillow (``endoxai.viz.canvas``): every model pixel a block of screen pixels, a thin
frame around every panel, colour bars whose label carries the scale. ``figure_png`` renders these
and matplotlib figures (the other figures of the tool) alike.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from endoxai.viz.canvas import Box, Canvas, scale_unit
from endoxai.viz.heatmaps import heatmap_rgb, symmetric_limit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CMAP = "bwr"  # diverging, white at 0: heatmaps.heatmap_rgb computes its colours
DPI = 120  # of matplotlib figures rendered by figure_png
MARKER_COLOUR = (0, 192, 0)  # target pixel / box outline: green, distinct from red and blue
ZOOM_MIN_HALF = 12  # the enlarged window around a small target: at least 25 x 25 pixels
ZOOM_BELOW = 8  # a box is "small" (gets an enlarged panel) below 1/8 of the image side
PANEL = 512  # target side of an explanation panel in pixels (whole multiples of the model size)
LAYER_PANEL = 256  # side of a layer-grid panel: every block's map of a 256² model fits exactly
MARGIN, GAP = 14, 26  # pixels around the figure and between panels
RELEVANCE_LABEL = "relevance (red +, blue −)"


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


def _target_rows_columns(target: object, size: int) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) framed for a ("pixel", y, x) target (a square around it: a
    marker on the pixel would hide exactly what its explanation shows) or a ("box", y0, x0, y1,
    x1) target (model-resolution coordinates, half-open); None for other targets."""
    if not isinstance(target, tuple) or not target or target[0] not in ("pixel", "box"):
        return None
    if target[0] == "pixel":
        _, y, x = target
        r = _pixel_frame_radius(size)
        return y - r, x - r, y + r + 1, x + r + 1
    _, top, left, bottom, right = target
    return top, left, bottom, right


def _outline(canvas: Canvas, box: Box) -> None:
    """A green frame with dark edges (visible on white, red and blue) drawn just outside
    ``box``: the pixels inside stay visible."""
    left, top, right, bottom = box
    canvas.rectangle((left - 5, top - 5, right + 5, bottom + 5), outline=(0, 0, 0), width=5)
    canvas.rectangle((left - 4, top - 4, right + 4, bottom + 4), outline=MARKER_COLOUR, width=3)


def _scale_factor(side: int, target: int = PANEL) -> float:
    """Screen pixels per model pixel: a whole number up to ``target`` pixels, shrunk beyond."""
    return float(max(1, target // side)) if side <= target else target / side


def _place(box: Box, scale: float, top: int, left: int, bottom: int, right: int) -> Box:
    """The screen box of model rows top..bottom-1 and columns left..right-1 in a panel."""
    return (box[0] + round(left * scale), box[1] + round(top * scale),
            box[0] + round(right * scale), box[1] + round(bottom * scale))


def relevance_label(limit: float) -> str:
    """The colour bar's label: what it shows and the unit of its ticks (canvas.scale_unit)."""
    return RELEVANCE_LABEL + scale_unit(limit)[1]


def explanation_figure(
    image: np.ndarray,
    relevance: np.ndarray,
    mask: np.ndarray,
    *,
    title: str | None = None,
    target: object = None,
) -> Canvas:
    """Three panels: the image, its input relevance map and the predicted mask, all (H, W).

    image: uint8 (H, W, 3), as the model saw it. relevance: (H, W), the input relevance summed
    over colour channels, drawn in ``bwr`` colours on ±max|R| beside a colour bar whose label
    carries the scale ("in units of 10⁻²"). mask: bool (H, W), logit > 0. ``target`` (a parsed
    pixel or box target) is framed on the relevance and mask panels; for a pixel or a small box a
    fourth panel shows the relevance around it enlarged, on the same colour scale (a pixel's
    relevance often covers only a few pixels). Every panel has a thin frame.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    h, w = relevance.shape
    if image.shape[:2] != (h, w) or mask.shape != (h, w):
        raise ValueError(
            f"image {image.shape[:2]}, relevance {relevance.shape} and mask {mask.shape} must match"
        )
    window = _zoom_window(target, h)
    scale = _scale_factor(max(h, w))
    pw, ph = round(w * scale), round(h * scale)
    bar = 130  # colour bar, its ticks and its label, right of a relevance panel
    title_h = 30 if title else 0
    heads = 50  # two lines of panel title
    widths = [pw, pw + bar, pw]
    zoom_scale = 0.0
    if window:
        y0, y1, x0, x1 = window
        zoom_scale = _scale_factor(max(y1 - y0, x1 - x0))
        widths.append(round((x1 - x0) * zoom_scale) + bar)
    canvas = Canvas(2 * MARGIN + sum(widths) + GAP * (len(widths) - 1),
                    MARGIN + title_h + heads + ph + MARGIN)
    if title:
        canvas.text(canvas.size[0] / 2, MARGIN - 4, title, 18)
    top = MARGIN + title_h + heads
    lefts = [MARGIN + sum(widths[:i]) + GAP * i for i in range(len(widths))]
    boxes = [(x, top, x + pw, top + ph) for x in lefts[:3]]
    limit = symmetric_limit(relevance) or 1.0  # an all-zero map is white at any scale

    canvas.panel(image[..., :3], boxes[0])
    canvas.panel(heatmap_rgb(relevance, limit), boxes[1])
    canvas.colour_bar((boxes[1][2] + 14, top + ph // 20, boxes[1][2] + 32, top + ph - ph // 20),
                      limit, RELEVANCE_LABEL, 13, 14)
    canvas.panel(np.where(mask[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2), boxes[2])
    titles = [f"Input image ({h}×{w}, as the model sees it)",
              f"Input relevance, summed over RGB\nΣR = {relevance.sum():.4g}",
              f"Predicted mask (logit > 0)\n{100 * mask.mean():.1f}% foreground"]
    for box, text in zip(boxes, titles):
        canvas.text((box[0] + box[2]) / 2, top - 8, text, 16, anchor="mb")
    framed = _target_rows_columns(target, h)
    if framed is not None:
        for box in boxes[1:]:
            _outline(canvas, _place(box, scale, *framed))
    if window:
        y0, y1, x0, x1 = window
        zw, zh = round((x1 - x0) * zoom_scale), round((y1 - y0) * zoom_scale)
        zoom = (lefts[3], top, lefts[3] + zw, top + zh)
        canvas.panel(heatmap_rgb(relevance[y0:y1, x0:x1], limit), zoom)
        canvas.colour_bar((zoom[2] + 14, top + zh // 20, zoom[2] + 32, top + zh - zh // 20),
                          limit, RELEVANCE_LABEL, 13, 14)
        canvas.text((zoom[0] + zoom[2]) / 2, top - 8,
                    f"Input relevance around the target\nrows {y0}–{y1 - 1}, columns "
                    f"{x0}–{x1 - 1} (same colour scale)", 16, anchor="mb")
        if target[0] == "pixel":  # enlarged, the pixel itself can be framed
            _, y, x = target
            inner = (y - y0, x - x0, y - y0 + 1, x - x0 + 1)
        else:
            _, by0, bx0, by1, bx1 = target
            inner = (by0 - y0, bx0 - x0, by1 - y0, bx1 - x0)
        _outline(canvas, _place(zoom, zoom_scale, *inner))
        canvas.dashed_rectangle(_place(boxes[1], scale, y0, x0, y1, x1), (89, 89, 89))
    return canvas


def layers_figure(
    layer_maps: Mapping[str, np.ndarray],
    shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    title: str | None = None,
    columns: int = 4,
) -> Canvas:
    """A grid of (h, w) relevance maps, one per block in the given order, each on its own ±max|R|.

    ``layer_maps``: block name -> (h, w) relevance summed over channels. ``shapes``: block name ->
    (C, h, w) of the full relevance, shown in the panel title with ΣR and max|R|. One shared
    colour bar reads in units of each panel's own max|R|. Every panel is ``LAYER_PANEL`` pixels
    square; deep blocks are only a few pixels wide (down8 is 1×1 at 256²) and are drawn as
    blocks, not interpolated.
    """
    names = list(layer_maps)
    if not names:
        raise ValueError("no layer maps to draw")
    rows = -(-len(names) // columns)
    side, heads, gap_x, gap_y, bar = LAYER_PANEL, 40, 18, 14, 120
    title_h = 30 if title else 0
    grid_w = columns * side + (columns - 1) * gap_x
    grid_h = rows * (heads + side) + (rows - 1) * gap_y
    canvas = Canvas(2 * MARGIN + grid_w + bar, 2 * MARGIN + title_h + grid_h)
    if title:
        canvas.text(canvas.size[0] / 2, MARGIN - 4, title, 15)
    for i, name in enumerate(names):
        relevance = np.asarray(layer_maps[name], dtype=np.float64)
        limit = symmetric_limit(relevance)
        left = MARGIN + (i % columns) * (side + gap_x)
        top = MARGIN + title_h + (i // columns) * (heads + side + gap_y) + heads
        canvas.panel(heatmap_rgb(relevance, limit), (left, top, left + side, top + side))
        shape = shapes.get(name) if shapes else None
        size = "×".join(str(s) for s in (shape or relevance.shape))
        canvas.text(left + side / 2, top - 6,
                    f"{name} ({size})\nΣR = {relevance.sum():.4g}, max|R| = {limit:.3g}", 13,
                    anchor="mb")
    middle = MARGIN + title_h + grid_h / 2
    canvas.colour_bar((MARGIN + grid_w + 22, round(middle - 0.2 * grid_h), MARGIN + grid_w + 40,
                       round(middle + 0.2 * grid_h)),
                      1.0, "R / max|R| of each panel (red +, blue −)", 12, 13)
    return canvas


def figure_png(fig: Canvas | Figure, dpi: int = DPI) -> bytes:
    """PNG bytes of a Pillow figure (``Canvas``, drawn at its pixel size: ``dpi`` is unused) or
    of a matplotlib figure at ``dpi``; the caller decides where and how to write them."""
    if isinstance(fig, Canvas):
        return fig.png()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
