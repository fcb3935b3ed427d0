"""Diverging relevance heatmaps centred at zero: red = positive, white = 0, blue = negative.

Unlike the seed paper, which min-max scales relevance to [0, 1] (so "zero" lands wherever the
minimum happens to be and the sign is lost), we scale symmetrically by ±max|R|: white is exactly
zero relevance and the colour tells whether a pixel spoke for (red) or against (blue) the target.
The colours are matplotlib's ``bwr`` colormap, computed here without matplotlib.
"""

from __future__ import annotations

import numpy as np

NONFINITE_GREY = 128  # NaN / inf relevance: mid-grey, never a colour that means something


def channel_sum(relevance: np.ndarray) -> np.ndarray:
    """(C, H, W) relevance -> (H, W) pixel map: a pixel's relevance is its channels' summed."""
    relevance = np.asarray(relevance)
    if relevance.ndim != 3:
        raise ValueError(f"expected (C, H, W) relevance; got shape {relevance.shape}")
    return relevance.sum(axis=0)


def symmetric_limit(relevance: np.ndarray) -> float:
    """max |R| over the finite values (0.0 if there are none); the colour scale is ±limit."""
    values = np.abs(np.asarray(relevance, dtype=np.float64))
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 0.0


def heatmap_rgb(relevance: np.ndarray, limit: float | None = None) -> np.ndarray:
    """(H, W) relevance -> uint8 (H, W, 3) RGB, ``bwr`` colours on the symmetric scale ±limit.

    ``limit`` defaults to max |R|, so the strongest pixel is pure red (255, 0, 0) or pure blue
    (0, 0, 255); R = 0 is white (255, 255, 255); R = ±limit/2 is (255, 128, 128) / (128, 128, 255).
    Values beyond ±limit saturate. An all-zero map (limit 0) is all white. Non-finite values are
    grey (128, 128, 128).
    """
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) relevance map; got shape {r.shape}")
    if limit is None:
        limit = symmetric_limit(r)
    elif not (np.isfinite(limit) and limit >= 0):
        raise ValueError(f"limit must be a finite number >= 0; got {limit!r}")
    finite = np.isfinite(r)
    v = np.zeros_like(r)
    if limit > 0:
        np.clip(np.where(finite, r, 0.0) / limit, -1.0, 1.0, out=v)
    # bwr is piecewise linear: from white, positive values fade green and blue, negative ones
    # fade red and green.
    rgb = np.stack([1.0 - np.maximum(-v, 0.0), 1.0 - np.abs(v), 1.0 - np.maximum(v, 0.0)], axis=-1)
    out = np.rint(rgb * 255.0).astype(np.uint8)
    out[~finite] = NONFINITE_GREY
    return out
