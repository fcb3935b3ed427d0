"""What endoxai's figures that compare explanation methods share: one colour per method, and one
legend below all panels."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

# One colour per method in report order; black stays free for a baseline such as random order.
METHOD_COLOURS = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#1f77b4", "#17becf",
                  "#2ca02c", "#9467bd", "#7f7f7f")


def method_colour(i: int) -> str:
    """The colour of the ``i``-th method (the colours repeat after ten)."""
    return METHOD_COLOURS[i % len(METHOD_COLOURS)]


def legend_below(fig: Figure, ax: Axes, title: str | None = None, ncols: int = 5) -> None:
    """One legend for the whole figure, below its panels, from ``ax``'s labelled lines, and the
    figure's ``title`` above them. The figure needs ``layout="constrained"``."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(handles)),
                   fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
