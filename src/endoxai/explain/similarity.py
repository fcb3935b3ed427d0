"""How alike two relevance maps are: Spearman rank correlation and SSIM, and intervals over images.

Both compare maps of *absolute* relevance, |R|, as Adebayo et al. (2018, "Sanity checks for
saliency maps") do for their rank-correlation plots: a map whose sign flips but whose layout
stays is still the same explanation of where the evidence is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004 (11 × 11 taps, σ = 1.5)
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004's constants, for data range 1
BOOTSTRAP_RESAMPLES = 10_000


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """(N, P) -> (N, P) float64 ranks 0..P-1 along dim 1; ties get the mean of their ranks (so a
    map that is 0 over half the image is not ranked by pixel order there)."""
    ordered, order = torch.sort(values, dim=1)
    n, p = ordered.shape
    position = torch.arange(p, device=values.device).expand(n, p)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    # each position's tie group runs from the last start at or before it to the first end at or
    # after it; the group's ranks average to the midpoint
    first = torch.where(starts, position, 0).cummax(1).values
    last = torch.where(ends, position, p).flip(1).cummin(1).values.flip(1)
    ranks = torch.empty((n, p), dtype=torch.float64, device=values.device)
    return ranks.scatter_(1, order, (first + last).double() / 2)


def centred_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, ...) maps -> (N, P) tie-averaged ranks minus their mean: what ``rank_correlation``
    takes, worth keeping for a map compared many times."""
    r = average_ranks(maps.flatten(1))
    return r - r.mean(1, keepdim=True)


def rank_correlation(ra: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
    """(N,) Pearson correlation of two ``centred_ranks``: Spearman's ρ; NaN for a constant map."""
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp(min=1e-300),
                       torch.full_like(den, math.nan))


def partial_rank_correlation(ra: torch.Tensor, rb: torch.Tensor, rc: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman's ρ of a and b with c held fixed, from three ``centred_ranks``: the partial
    correlation (ρab − ρac ρbc) / √((1 − ρac²)(1 − ρbc²)), that is the correlation of a's and b's
    ranks once each is rid of its linear fit on c's ranks. A constant c holds nothing to take out
    (the partial ρ is the plain one); NaN where a or b is constant or c ranks one of them exactly.
    """
    ab, ac, bc = rank_correlation(ra, rb), rank_correlation(ra, rc), rank_correlation(rb, rc)
    constant = (rc.square().sum(1) == 0).to(ab.device)
    ac, bc = (torch.where(constant, torch.zeros_like(r), r) for r in (ac, bc))
    den = ((1 - ac.square()) * (1 - bc.square())).clamp(min=0).sqrt()
    return torch.where(den > 1e-12, (ab - ac * bc) / den.clamp(min=1e-12),
                       torch.full_like(den, math.nan))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, ...) maps -> (N,) float64 Spearman rank correlation of each pair (with tie-averaged
    ranks); NaN where one map is constant."""
    return rank_correlation(centred_ranks(a), centred_ranks(b))


def chessboard_distance(mask: torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) boolean masks -> (N, H, W) float32: each pixel's chessboard
    distance in pixels to the nearest mask pixel (0 on the mask; 0 everywhere for an empty mask),
    found by growing the mask one 3 × 3 dilation at a time."""
    grown = mask.reshape(mask.shape[0], 1, *mask.shape[-2:]).float()
    dist = torch.zeros_like(grown)
    for step in range(1, max(grown.shape[-2:])):
        wider = F.max_pool2d(grown, 3, stride=1, padding=1)
        if torch.equal(wider, grown):
            break
        dist += (wider - grown) * step  # the ring reached at this step
        grown = wider
    return dist[:, 0]


def _window(dtype: torch.dtype) -> torch.Tensor:
    taps = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=dtype)
    g = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _blur(x: torch.Tensor) -> torch.Tensor:
    w = _window(x.dtype)
    x = F.conv2d(x, w.view(1, 1, 1, -1))
    return F.conv2d(x, w.view(1, 1, -1, 1))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps in [0, 1] -> (N,) float64 mean structural similarity (Wang et al. 2004:
    Gaussian window σ = 1.5 over the valid 11 × 11 neighbourhoods, K1 = 0.01, K2 = 0.03, data
    range 1). Identical maps give 1."""
    # float32 unless given float64: the maps are in [0, 1], and float32 convolutions take the
    # fast path (the sanity checks compare thousands of maps)
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    x, y = a.to(dtype)[:, None], b.to(dtype)[:, None]
    if min(x.shape[-2:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs maps of at least {2 * SSIM_RADIUS + 1} pixels a side")
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mx, my = _blur(x), _blur(y)
    vx = _blur(x * x) - mx * mx
    vy = _blur(y * y) - my * my
    cxy = _blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).double().mean(1)


def normalise_abs(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> |map| / max |map| per map, in [0, 1] (an all-zero map stays 0), in the maps'
    floating dtype."""
    a = maps.abs()
    peak = a.flatten(1).amax(1).clamp(min=torch.finfo(a.dtype).tiny)
    return a / peak[:, None, None]


def mean_interval(values: Sequence[float], level: float = 0.95, seed: int = 0,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, float | int | None]:
    """Mean, standard deviation and a percentile-bootstrap confidence interval of the mean of the
    finite ``values`` (``resamples`` resamples of the images, seeded): ``n``, ``mean``, ``std``,
    ``low``, ``high``. Statistics that need more values than there are are None."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    out: dict[str, float | int | None] = {"n": int(v.size), "mean": None, "std": None,
                                          "low": None, "high": None}
    if v.size == 0:
        return out
    out["mean"] = float(v.mean())
    if v.size > 1:
        out["std"] = float(v.std(ddof=1))
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(1)
        tail = (1 - level) / 2
        out["low"], out["high"] = (float(q) for q in np.quantile(means, [tail, 1 - tail]))
    return out
