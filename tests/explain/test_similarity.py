"""Spearman, SSIM and the bootstrap interval against references they do not share code with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from endoxai.explain.similarity import (
    average_ranks,
    centred_ranks,
    chessboard_distance,
    mean_interval,
    normalise_abs,
    partial_rank_correlation,
    spearman,
    ssim,
)

stats = pytest.importorskip("scipy.stats")


def test_average_ranks_of_ties():
    r = average_ranks(torch.tensor([[3.0, 0.0, 0.0, 5.0, 0.0, 3.0]]))
    assert r.tolist() == [[3.5, 1.0, 1.0, 5.0, 1.0, 3.5]]


def test_spearman_matches_scipy_with_and_without_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 20, 20, generator=gen)
    b = a + 0.8 * torch.randn(3, 20, 20, generator=gen)
    b[1] = b[1].clamp(min=0)  # half the map tied at 0, as an LRP map often is
    a[2] = a[2].round()  # many ties in both
    ours = spearman(a, b)
    for i in range(3):
        expected = stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert ours[i].item() == pytest.approx(expected, abs=1e-10)
    assert spearman(a, a).tolist() == pytest.approx([1.0] * 3)
    assert spearman(a, -a).tolist() == pytest.approx([-1.0] * 3)
    assert spearman(a, torch.exp(a)).tolist() == pytest.approx([1.0] * 3)  # ranks only
    assert math.isnan(spearman(torch.ones(1, 4, 4), a[:1, :4, :4]).item())


def test_partial_rank_correlation_is_the_correlation_of_rank_residuals():
    gen = torch.Generator().manual_seed(1)
    c = torch.randn(2, 15, 15, generator=gen)
    a = c + 0.5 * torch.randn(2, 15, 15, generator=gen)
    b = c + 0.5 * torch.randn(2, 15, 15, generator=gen)
    b[1] = b[1] + 0.7 * a[1]  # a link beyond the common cause, in the second pair
    ours = partial_rank_correlation(centred_ranks(a), centred_ranks(b), centred_ranks(c))
    for i in range(2):
        ra, rb, rc = (stats.rankdata(m[i].flatten().numpy()) for m in (a, b, c))
        design = np.stack([np.ones_like(rc), rc], 1)
        res_a = ra - design @ np.linalg.lstsq(design, ra, rcond=None)[0]
        res_b = rb - design @ np.linalg.lstsq(design, rb, rcond=None)[0]
        expected = np.corrcoef(res_a, res_b)[0, 1]
        assert ours[i].item() == pytest.approx(expected, abs=1e-10)
    # alike through c only: high ρ, partial ρ near 0; the added link survives the partialling
    assert spearman(a, b)[0] > 0.6 and abs(ours[0].item()) < 0.15
    assert ours[1].item() > 0.4
    assert math.isnan(partial_rank_correlation(*(centred_ranks(c[:1]),) * 3).item())
    # a constant c (a target that covers the image) takes nothing out
    flat = centred_ranks(torch.zeros(2, 15, 15))
    assert partial_rank_correlation(centred_ranks(a), centred_ranks(b), flat).tolist() == \
        pytest.approx(spearman(a, b).tolist(), abs=1e-12)


def test_chessboard_distance_to_a_mask():
    mask = torch.zeros(2, 1, 5, 6, dtype=torch.bool)
    mask[0, 0, 1, 1] = True
    mask[1, 0, :, 5] = True
    d = chessboard_distance(mask)
    assert d.shape == (2, 5, 6)
    assert d[0].tolist() == [[1, 1, 1, 2, 3, 4], [1, 0, 1, 2, 3, 4], [1, 1, 1, 2, 3, 4],
                             [2, 2, 2, 2, 3, 4], [3, 3, 3, 3, 3, 4]]
    assert d[1, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert chessboard_distance(torch.zeros(1, 4, 4, dtype=torch.bool)).eq(0).all()


def test_ssim_of_constant_maps_is_the_luminance_term():
    # Constant maps have no variance or covariance: SSIM = (2ab + C1) / (a² + b² + C1).
    a, b = 0.2, 0.7
    c1 = 0.01 ** 2
    value = ssim(torch.full((1, 16, 16), a, dtype=torch.float64),
                 torch.full((1, 16, 16), b, dtype=torch.float64)).item()
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_ssim_identity_symmetry_and_structure():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 32, 32, generator=gen)
    y = torch.rand(2, 32, 32, generator=gen)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert (ssim(x, y) < 0.2).all()  # independent noise shares no structure
    # same structure, other contrast: high; inverted structure: negative
    assert (ssim(x, 0.5 * x + 0.25) > 0.6).all()
    assert (ssim(x, 1 - x) < 0).all()
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))


def test_normalise_abs():
    m = torch.tensor([[[-4.0, 2.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert normalise_abs(m).tolist() == [[[1.0, 0.5], [0.0, 0.25]], [[0.0, 0.0], [0.0, 0.0]]]


def test_mean_interval():
    s = mean_interval([1.0, 2.0, 3.0, 4.0, float("nan"), None])
    assert s["n"] == 4 and s["mean"] == 2.5
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert 1.0 <= s["low"] < 2.5 < s["high"] <= 4.0
    # the bootstrap's percentile interval of the mean is near mean ± 1.96 σ/√n for many values
    v = np.random.default_rng(3).normal(10, 2, 400)
    s = mean_interval(v)
    half = 1.96 * v.std(ddof=1) / math.sqrt(v.size)
    assert s["low"] == pytest.approx(v.mean() - half, abs=0.06)
    assert s["high"] == pytest.approx(v.mean() + half, abs=0.06)
    assert mean_interval([5.0]) == {"n": 1, "mean": 5.0, "std": None, "low": None, "high": None}
    assert mean_interval([])["mean"] is None
