"""The sanity-check figure draws each method's mean similarity per stage and its interval."""

from __future__ import annotations

import numpy as np

from endoxai.viz.sanity import sanity_figure

STAGES = [{"name": "up2", "kind": "cascade"}, {"name": "down2", "kind": "cascade"},
          {"name": "decoder", "kind": "independent"}, {"name": "skips", "kind": "independent"}]


def stats(mean: float) -> dict:
    return {"n": 3, "mean": mean, "std": 0.1, "low": mean - 0.05, "high": mean + 0.05}


def test_lines_and_bars_follow_the_summary():
    means = {"up2": (0.9, 0.6), "down2": (0.5, 0.2), "decoder": (0.7, 0.3), "skips": (0.8, 0.4)}
    summary = {stage: {"lrp:a": {"spearman": stats(a), "ssim": stats(a / 2)},
                       "gradient": {"spearman": stats(g), "ssim": stats(g / 2)}}
               for stage, (a, g) in means.items()}
    fig = sanity_figure(summary, STAGES, title="t")
    spearman_cascade, ssim_cascade, spearman_parts, _ = fig.axes[:4]
    lines = {line.get_label(): line.get_ydata() for line in spearman_cascade.get_lines()
             if not line.get_label().startswith("_")}
    np.testing.assert_allclose(lines["lrp:a"], [1.0, 0.9, 0.5])
    np.testing.assert_allclose(lines["gradient"], [1.0, 0.6, 0.2])
    ssim_lines = [line.get_ydata() for line in ssim_cascade.get_lines()
                  if not line.get_label().startswith("_")]
    np.testing.assert_allclose(ssim_lines[0], [1.0, 0.45, 0.25])
    heights = sorted(round(p.get_height(), 6) for p in spearman_parts.patches)
    assert heights == [0.3, 0.4, 0.7, 0.8]
    labels = [t.get_text() for t in spearman_cascade.get_xticklabels()]
    assert labels == ["original", "+up2", "+down2"]


def test_the_partial_rank_correlation_gets_its_own_column():
    summary = {stage: {"gradient": {"spearman": stats(0.9), "spearman_partial": stats(m),
                                    "ssim": stats(0.5)}}
               for stage, m in {"up2": 0.6, "down2": 0.1, "decoder": 0.3, "skips": 0.4}.items()}
    fig = sanity_figure(summary, STAGES)
    assert len(fig.axes) == 6
    partial_cascade, partial_parts = fig.axes[1], fig.axes[4]
    assert "distance" in partial_cascade.get_ylabel()
    np.testing.assert_allclose(partial_cascade.get_lines()[0].get_ydata(), [1.0, 0.6, 0.1])
    assert sorted(round(p.get_height(), 6) for p in partial_parts.patches) == [0.3, 0.4]
