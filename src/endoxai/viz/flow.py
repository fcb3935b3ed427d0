"""The skip-flow figure: where a U-Net explanation's relevance crosses from decoder to encoder.

Left panel: the U drawn as two columns of blocks (encoder ``down1..downD`` on the left, the
decoder block that reads each level's skip on the right, the bottleneck at the bottom). Relevance
enters at the top right (the output), runs down the decoder trunk, and leaves it sideways through
each skip; every band's thickness is proportional to its share of the output relevance (red:
positive, blue: negative). Right panel: the same shares as bars, with what each decoder block
absorbed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

if TYPE_CHECKING:
    from endoxai.explain.flow import SkipFlow

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"  # the heatmaps' red and blue
BAND = 0.7  # thickness, in rows, of a band carrying the whole output relevance
BOX_COLOUR = "#e8e8e8"


def flow_figure(flow: SkipFlow, *, title: str | None = None) -> Figure:
    """Draw ``flow`` (an ``endoxai.explain.flow.SkipFlow``) summed over its images: the U-shaped
    band diagram and a bar chart of the shares (module docstring). Shares are of the output's
    relevance; a band thicker than ``BAND`` rows is clipped to it and its label says so."""
    f = flow.summed()
    shares = {key: np.asarray(value[0], dtype=np.float64) for key, value in f.shares().items()}
    depth = f.depth
    fig = Figure(figsize=(12.5, 0.55 * depth + 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_u, ax_bar = fig.subplots(1, 2, width_ratios=(1.35, 1))
    _draw_u(ax_u, shares, depth)
    _draw_bars(ax_bar, shares, depth)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _thickness(share: float) -> float:
    return BAND * min(abs(share), 1.0) if np.isfinite(share) else 0.0


def _colour(share: float) -> str:
    return NEGATIVE if share < 0 else POSITIVE


def _draw_u(ax, shares: dict[str, np.ndarray], depth: int) -> None:
    left, right, box_w = 0.0, 8.0, 1.6
    trunk_x = right + box_w / 2
    rows = {k: -float(k) for k in range(1, depth + 1)}  # level k at y = -k; the bottleneck at -D
    for k in range(1, depth + 1):
        for x, label in ((left, f"down{k}"), (right, f"up{depth + 1 - k}")):
            ax.add_patch(FancyBboxPatch((x, rows[k] - 0.32), box_w, 0.64,
                                        boxstyle="round,pad=0.02", fc=BOX_COLOUR, ec="#888888",
                                        lw=0.8, zorder=3))
            ax.text(x + box_w / 2, rows[k], label, ha="center", va="center", fontsize=9, zorder=4)
    # relevance arriving at the output, entering the trunk from above
    ax.add_patch(Rectangle((trunk_x - BAND / 2, rows[1] + 0.3), BAND, 0.6, fc=POSITIVE,
                           alpha=0.55, lw=0, zorder=1))
    ax.text(trunk_x, rows[1] + 1.0, "output relevance (100 %)", ha="center", va="bottom",
            fontsize=9)
    for k in range(1, depth):
        skip = float(shares["skip"][k - 1])
        deeper = float(shares["deeper"][k - 1])
        h = _thickness(skip)
        ax.add_patch(Rectangle((left + box_w, rows[k] - h / 2), right - left - box_w, h,
                               fc=_colour(skip), alpha=0.55, lw=0, zorder=1))
        clipped = " (clipped)" if abs(skip) > 1 else ""
        ax.text((left + box_w + right) / 2, rows[k] + max(h / 2, 0.05) + 0.04,
                f"skip to level {k}: {_percent(skip)}{clipped}", ha="center", va="bottom",
                fontsize=8.5)
        w = _thickness(deeper)
        ax.add_patch(Rectangle((trunk_x - w / 2, rows[k + 1]), w, 1.0, fc=_colour(deeper),
                               alpha=0.55, lw=0, zorder=1))
        ax.text(trunk_x + max(w / 2, 0.05) + 0.1, (rows[k] + rows[k + 1]) / 2,
                _percent(deeper), ha="left", va="center", fontsize=8, color="#444444")
    bottleneck = float(shares["bottleneck"])
    h = _thickness(bottleneck)
    ax.add_patch(Rectangle((left + box_w, rows[depth] - h / 2), right - left - box_w, h,
                           fc=_colour(bottleneck), alpha=0.55, lw=0, zorder=1))
    ax.text((left + box_w + right) / 2, rows[depth] - max(h / 2, 0.05) - 0.06,
            f"bottleneck: {_percent(bottleneck)}", ha="center", va="top", fontsize=8.5)
    ax.text(left + box_w / 2, rows[1] + 0.6,
            f"input: {_percent(float(shares['input']))}\n"
            f"(encoder absorbed {_percent(float(shares['absorbed_encoder'].sum()))})",
            ha="center", va="bottom", fontsize=9)
    ax.set_xlim(left - 0.3, right + box_w + 1.4)
    ax.set_ylim(rows[depth] - 0.9, rows[1] + 1.6)
    ax.set_axis_off()
    ax.set_title("Relevance through the U-Net (band width = share of the output's)", fontsize=10)


def _draw_bars(ax, shares: dict[str, np.ndarray], depth: int) -> None:
    labels = [f"skip to down{k} (up{depth + 1 - k})" for k in range(1, depth)] \
        + ["bottleneck (up1)"]
    values = np.append(shares["skip"], shares["bottleneck"])
    absorbed = shares["absorbed_decoder"][::-1]  # up_D (reads level 1) ... up1 (bottleneck)
    y = np.arange(len(labels))
    ax.barh(y - 0.2, 100 * values, height=0.4, color=[_colour(v) for v in values],
            label="enters through the skip")
    ax.barh(y + 0.2, 100 * absorbed, height=0.4, color="#7f7f7f",
            label="absorbed by the decoder block that reads it (in brackets)")
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("share of the output relevance (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.set_title("Shares per level", fontsize=10)


def _percent(share: float) -> str:
    return "n/a" if not np.isfinite(share) else f"{100 * share:.1f} %"
