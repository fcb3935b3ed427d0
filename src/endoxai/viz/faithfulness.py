"""The faithfulness figure: each method's mean perturbation curve, MoRF beside LeRF."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from endoxai.viz.style import legend_below, method_colour

PANELS = (("morf", "MoRF: most relevant first (falls fast = good)"),
          ("lerf", "LeRF: least relevant first (stays high = good)"))


def faithfulness_figure(summary: Mapping[str, Mapping[str, Any]], fractions: Sequence[float],
                        title: str | None = None, floor: str = "random") -> Figure:
    """Two panels, MoRF and LeRF: each method's mean logit over the explained pixels (averaged over
    the images; ``summary``: method -> ``curve_morf`` / ``curve_lerf``, as
    ``FaithfulnessResult.summary`` gives it) against the share of the image perturbed
    (``fractions``), with one legend below them (the AOPC values are in the table). The
    ``floor`` method (the random order) is dashed black."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    x = 100 * np.asarray(fractions)
    others = [m for m in summary if m != floor]
    styles = {m: {"color": method_colour(i)} for i, m in enumerate(others)}
    styles[floor] = {"color": "black", "ls": "--"}
    for ax, (order, label) in zip(axes, PANELS):
        for method, s in summary.items():
            curve = s.get(f"curve_{order}") or []
            if len(curve) != len(x):
                continue
            ax.plot(x, curve, marker=".", lw=1.5, label=method, **styles[method])
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("image perturbed (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean logit over the explained pixels\n(mean over images)")
    legend_below(fig, axes[0], title)
    return fig
