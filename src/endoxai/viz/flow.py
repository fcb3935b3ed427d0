"""The skip-flow figure: where a U-Net explanation's relevance crosses from decoder to encoder.

Left panel: the U drawn as two columns of blocks (encoder ``down1..downD`` on the left, the
decoder block that reads each level's skip on the right, the bottleneck at the bottom). Relevance
enters at the top right (the output), runs down the decoder trunk, and leaves it sideways through
each skip; every band's thickness is proportional to its share of the output relevance (red:
positive, blue: negative). Right panel: the same shares as bars, with what each decoder block
absorbed. Drawn with Pillow (``endoxai.viz.canvas``), like the other figures of an explanation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from endoxai.viz.canvas import Box, Canvas, blend, hex_colour, nice_ticks, tick_label

if TYPE_CHECKING:
    from endoxai.explain.flow import SkipFlow

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"  # the heatmaps' red and blue
BAND = 0.7  # thickness, in rows, of a band carrying the whole output relevance
BOX_COLOUR = "#e8e8e8"
BAND_ALPHA = 0.55  # bands are drawn lighter than the bars: the boxes' labels stay readable
ABSORBED = (127, 127, 127)
WIDTH, ROW = 1300, 55  # figure width; pixels per level of the U
LEFT, RIGHT, BOX_W = 0.0, 8.0, 1.6  # the U's columns in its own units (a level is 1 unit high)


def flow_figure(flow: SkipFlow, *, title: str | None = None) -> Canvas:
    """Draw ``flow`` (an ``endoxai.explain.flow.SkipFlow``) summed over its images: the U-shaped
    band diagram and a bar chart of the shares (module docstring). Shares are of the output's
    relevance; a band thicker than ``BAND`` rows is clipped to it and its label says so."""
    f = flow.summed()
    shares = {key: np.asarray(value[0], dtype=np.float64) for key, value in f.shares().items()}
    depth = f.depth
    top = 34 if title else 8
    canvas = Canvas(WIDTH, top + 30 + round(ROW * (depth + 1.5)) + 40)
    if title:
        canvas.text(WIDTH / 2, 6, title, 15)
    height = canvas.size[1]
    _draw_u(canvas, (10, top + 30, 660, height - 40), shares, depth)
    _draw_bars(canvas, (860, top + 30, WIDTH - 20, height - 100), shares, depth)
    return canvas


def _thickness(share: float) -> float:
    return BAND * min(abs(share), 1.0) if np.isfinite(share) else 0.0


def _colour(share: float, alpha: float = 1.0) -> tuple[int, int, int]:
    return blend(hex_colour(NEGATIVE if share < 0 else POSITIVE), alpha)


def _draw_u(canvas: Canvas, box: Box, shares: dict[str, np.ndarray], depth: int) -> None:
    x_min, x_max = LEFT - 0.3, RIGHT + BOX_W + 1.4
    y_max = 0.6  # level k sits at y = -k, the bottleneck at -depth
    sx = (box[2] - box[0]) / (x_max - x_min)
    sy = (box[3] - box[1]) / (y_max - (-depth - 0.9))

    def px(x: float) -> float:
        return box[0] + (x - x_min) * sx

    def py(y: float) -> float:
        return box[1] + (y_max - y) * sy

    def band(x0: float, x1: float, y0: float, y1: float, share: float) -> None:
        """A band over x0..x1 and y0..y1 (y up), drawn in ``share``'s colour."""
        canvas.rectangle((round(px(x0)), round(py(y1)), round(px(x1)), round(py(y0))),
                         fill=_colour(share, BAND_ALPHA))

    trunk_x = RIGHT + BOX_W / 2
    canvas.text((box[0] + box[2]) / 2, box[1] - 26,
                "Relevance through the U-Net (band width = share of the output's)", 14)
    band(trunk_x - BAND / 2, trunk_x + BAND / 2, -1 + 0.3, -1 + 0.9, 1.0)  # the output's
    canvas.text(px(trunk_x), py(-1 + 1.0), "output relevance (100 %)", 13, anchor="mb")
    for k in range(1, depth):
        skip, deeper = float(shares["skip"][k - 1]), float(shares["deeper"][k - 1])
        h, w = _thickness(skip), _thickness(deeper)
        band(LEFT + BOX_W, RIGHT, -k - h / 2, -k + h / 2, skip)
        band(trunk_x - w / 2, trunk_x + w / 2, -k - 1, -k, deeper)
        clipped = " (clipped)" if abs(skip) > 1 else ""
        canvas.text(px((LEFT + BOX_W + RIGHT) / 2), py(-k + max(h / 2, 0.05) + 0.04),
                    f"skip to level {k}: {_percent(skip)}{clipped}", 12, anchor="mb")
        canvas.text(px(trunk_x + max(w / 2, 0.05) + 0.1), py(-k - 0.5), _percent(deeper), 11,
                    anchor="lm", fill=(68, 68, 68))
    bottleneck = float(shares["bottleneck"])
    h = _thickness(bottleneck)
    band(LEFT + BOX_W, RIGHT, -depth - h / 2, -depth + h / 2, bottleneck)
    canvas.text(px((LEFT + BOX_W + RIGHT) / 2), py(-depth - max(h / 2, 0.05) - 0.06),
                f"bottleneck: {_percent(bottleneck)}", 12, anchor="mt")
    for k in range(1, depth + 1):  # the blocks, over the bands' ends
        for x, label in ((LEFT, f"down{k}"), (RIGHT, f"up{depth + 1 - k}")):
            canvas.draw.rounded_rectangle(
                (round(px(x)), round(py(-k + 0.32)), round(px(x + BOX_W)), round(py(-k - 0.32))),
                radius=3, fill=hex_colour(BOX_COLOUR), outline=(136, 136, 136))
            canvas.text(px(x + BOX_W / 2), py(-k), label, 13, anchor="mm")
    canvas.text(px(LEFT), py(-1 + 0.6),
                f"input: {_percent(float(shares['input']))}\n"
                f"(encoder absorbed {_percent(float(shares['absorbed_encoder'].sum()))})", 13,
                anchor="lb")


def _draw_bars(canvas: Canvas, box: Box, shares: dict[str, np.ndarray], depth: int) -> None:
    labels = [f"skip to down{k} (up{depth + 1 - k})" for k in range(1, depth)] \
        + ["bottleneck (up1)"]
    values = 100 * np.append(shares["skip"], shares["bottleneck"])
    absorbed = 100 * shares["absorbed_decoder"][::-1]  # up_D (reads level 1) ... up1
    finite = np.concatenate([values, absorbed, [0.0]])
    finite = finite[np.isfinite(finite)]
    low, high = float(finite.min()), float(finite.max())
    pad = 0.05 * (high - low) or 1.0
    low, high = low - pad, high + pad
    left, top, right, bottom = box

    def px(value: float) -> int:
        return round(left + (value - low) / (high - low) * (right - left))

    canvas.text((left + right) / 2, top - 26, "Shares per level", 14)
    ticks = [t for t in nice_ticks(low, high, 8) if low <= t <= high]
    for t in ticks:  # grid first, under the bars
        canvas.rectangle((px(t), top, px(t) + 1, bottom), fill=(232, 232, 232))
    row = (bottom - top) / len(labels)
    for i, (label, value, gone) in enumerate(zip(labels, values, absorbed)):
        middle = top + (i + 0.5) * row
        for centre, share, colour in ((middle - 0.2 * row, value, _colour(value)),
                                      (middle + 0.2 * row, gone, ABSORBED)):
            if np.isfinite(share):
                a, b = sorted((px(0.0), px(share)))
                canvas.rectangle((a, round(centre - 0.2 * row), max(b, a + 1),
                                  round(centre + 0.2 * row)), fill=colour)
        canvas.text(left - 8, middle, label, 13, anchor="rm")
    canvas.rectangle((px(0.0), top, px(0.0) + 1, bottom), fill=(0, 0, 0))
    canvas.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    for t in ticks:
        canvas.rectangle((px(t), bottom, px(t) + 1, bottom + 4), fill=(0, 0, 0))
        canvas.text(px(t), bottom + 6, tick_label(t), 12)
    canvas.text((left + right) / 2, bottom + 24, "share of the output relevance (%)", 14)
    legend = (("enters through the skip (red +, blue −)", [_colour(1.0), _colour(-1.0)]),
              ("absorbed by the decoder block that reads it (in brackets)", [ABSORBED]))
    for i, (text, colours) in enumerate(legend):  # below the axis, clear of the bars
        y = bottom + 58 + 20 * i
        for j, colour in enumerate(colours):
            canvas.rectangle((left + 14 * j, y - 5, left + 14 * j + 12, y + 6), fill=colour)
        canvas.text(left + 14 * 2 + 6, y, text, 12, anchor="lm")


def _percent(share: float) -> str:
    return "n/a" if not np.isfinite(share) else f"{100 * share:.1f} %"
