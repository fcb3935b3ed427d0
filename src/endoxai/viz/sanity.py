"""The sanity-check figure: how similar each method's maps stay as the model is randomised.

Top row: the cascade (``up_D`` first, then deeper, then the encoder from ``down_D`` to
``down1``), one line per method with its 95 % interval over images as a band, for Spearman's ρ
of |R|, the same ρ beyond what the distance to the target predicts (partial ρ) and SSIM, left
to right; the first point, "original", is the trained model (1 by definition). Bottom row: the
independent randomisations (encoder, decoder, skips) and the model trained on shuffled masks, as
grouped bars with their intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from endoxai.viz.style import legend_below, method_colour

MEASURE_LABELS = {"spearman": "Spearman ρ of |R|",
                  "spearman_partial": "ρ beyond the distance to the target",
                  "ssim": "SSIM of |R| / max|R|"}


def sanity_figure(summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
                  stages: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """``summary``: stage -> method -> measure -> {"mean", "low", "high", ...} (as
    ``SanityResult.summary`` gives it); ``stages``: the stage records in order, each with
    ``name`` and ``kind`` ("cascade", or "independent" / "data": drawn as bars)."""
    cascade = [s["name"] for s in stages if s["kind"] == "cascade"]
    independent = [s["name"] for s in stages if s["kind"] != "cascade"]
    methods = list(next(iter(summary.values()))) if summary else []
    colours = {m: method_colour(i) for i, m in enumerate(methods)}
    rows = int(bool(cascade)) + int(bool(independent))
    # results written before the partial ρ existed have two measures
    measures = [m for m in MEASURE_LABELS
                if all(m in per for per_stage in summary.values() for per in per_stage.values())]
    fig = Figure(figsize=(6.5 * len(measures), 4.6 * max(rows, 1) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(max(rows, 1), len(measures), squeeze=False))
    row = 0
    if cascade:
        x = np.arange(len(cascade) + 1)
        for ax, measure in zip(axes[row], measures):
            for method in methods:
                mean, low, high = _series(summary, cascade, method, measure)
                ax.plot(x, mean, marker=".", lw=1.5, color=colours[method], label=method)
                ax.fill_between(x, low, high, color=colours[method], alpha=0.12, lw=0)
            ax.set_xticks(x, ["original"] + [f"+{name}" for name in cascade], rotation=60,
                          fontsize=8)
            ax.set_ylabel(MEASURE_LABELS[measure])
            ax.set_title(f"Cascading randomisation, output → input: {MEASURE_LABELS[measure]}",
                         fontsize=10)
            ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
            ax.axhline(0, color="black", lw=0.6)
            ax.grid(alpha=0.3)
        row += 1
    if independent:
        x = np.arange(len(independent))
        width = 0.8 / max(len(methods), 1)
        for ax, measure in zip(axes[row], measures):
            for i, method in enumerate(methods):
                stats = [summary[s][method][measure] for s in independent]
                mean = np.array([_value(st, "mean") for st in stats])
                err = np.array([[mean[j] - _value(st, "low", mean[j]),
                                 _value(st, "high", mean[j]) - mean[j]]
                                for j, st in enumerate(stats)]).T
                ax.bar(x - 0.4 + width * (i + 0.5), mean, width, yerr=err, capsize=2,
                       color=colours[method], label=method, error_kw={"lw": 0.8})
            ax.set_xticks(x, [f"{name} only" for name in independent])
            ax.set_ylabel(MEASURE_LABELS[measure])
            ax.set_title(f"Independent randomisation: {MEASURE_LABELS[measure]}", fontsize=10)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
            ax.grid(axis="y", alpha=0.3)
    legend_below(fig, axes[0][0], title, ncols=6)
    return fig


def _value(stats: Mapping[str, Any], key: str, default: float = np.nan) -> float:
    v = stats.get(key)
    return default if v is None else float(v)


def _series(summary, cascade: Sequence[str], method: str, measure: str):
    stats = [summary[s][method][measure] for s in cascade]
    mean = np.array([1.0] + [_value(st, "mean") for st in stats])
    low = np.array([1.0] + [_value(st, "low", m) for st, m in zip(stats, mean[1:])])
    high = np.array([1.0] + [_value(st, "high", m) for st, m in zip(stats, mean[1:])])
    return mean, low, high
