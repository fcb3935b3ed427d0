"""heatmap_rgb: bwr colours on a symmetric scale; overlays blend as documented."""

import matplotlib
import numpy as np
import pytest

from endoxai.viz import channel_sum, heatmap_rgb, overlay_heatmap, overlay_mask, symmetric_limit

RED, BLUE, WHITE, GREY = (255, 0, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128)


def test_colours_by_sign_and_magnitude():
    rgb = heatmap_rgb(np.array([[2.0, -2.0, 0.0], [1.0, -1.0, 0.5]]))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert tuple(rgb[0, 0]) == RED
    assert tuple(rgb[0, 1]) == BLUE
    assert tuple(rgb[0, 2]) == WHITE
    assert tuple(rgb[1, 0]) == (255, 128, 128)  # half of max: half-faded red (127.5 rounds to 128)
    assert tuple(rgb[1, 1]) == (128, 128, 255)
    assert tuple(rgb[1, 2]) == (255, 191, 191)  # a quarter of max: 255 * 0.75 = 191.25


def test_scale_is_symmetric_not_min_max():
    # max|R| = 4 comes from the negative side, so +1 is only a quarter-strength red; min-max
    # scaling would have made +1 the full colour and put "zero" off-white.
    rgb = heatmap_rgb(np.array([[1.0, -4.0, 0.0]]))
    assert tuple(rgb[0, 0]) == (255, 191, 191)
    assert tuple(rgb[0, 1]) == BLUE
    assert tuple(rgb[0, 2]) == WHITE
    assert symmetric_limit(np.array([[1.0, -4.0]])) == 4.0


def test_scale_invariance_and_explicit_limit():
    r = np.random.default_rng(0).standard_normal((5, 7))
    np.testing.assert_array_equal(heatmap_rgb(r), heatmap_rgb(1000.0 * r))
    rgb = heatmap_rgb(np.array([[3.0, -3.0, 0.5]]), limit=1.0)
    assert tuple(rgb[0, 0]) == RED and tuple(rgb[0, 1]) == BLUE  # beyond the limit saturates
    assert tuple(rgb[0, 2]) == (255, 128, 128)


def test_all_zero_is_white_and_nonfinite_is_grey():
    assert (heatmap_rgb(np.zeros((3, 4))) == 255).all()
    rgb = heatmap_rgb(np.array([[np.nan, np.inf, -2.0]]))
    assert tuple(rgb[0, 0]) == GREY and tuple(rgb[0, 1]) == GREY
    assert tuple(rgb[0, 2]) == BLUE  # the limit ignores non-finite values


def test_matches_matplotlib_bwr():
    r = np.random.default_rng(1).standard_normal((20, 30))
    limit = np.abs(r).max()
    reference = matplotlib.colormaps["bwr"]((r + limit) / (2 * limit))[..., :3] * 255
    # matplotlib quantises bwr to a 256-entry table: up to ~2 levels off our exact interpolation.
    assert np.abs(heatmap_rgb(r).astype(float) - reference).max() <= 3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="2-D"):
        heatmap_rgb(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="limit"):
        heatmap_rgb(np.zeros((2, 2)), limit=-1.0)


def test_channel_sum():
    r = np.arange(24, dtype=float).reshape(2, 3, 4)
    np.testing.assert_array_equal(channel_sum(r), r[0] + r[1])
    with pytest.raises(ValueError):
        channel_sum(np.zeros((3, 4)))


def test_overlay_mask_blends_only_masked_pixels():
    image = np.zeros((2, 2, 3), np.uint8) + np.array([100, 50, 200], np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = overlay_mask(image, mask, colour=(0, 255, 0), alpha=0.4)
    assert tuple(out[0, 0]) == (60, 132, 120)  # 0.6 * (100, 50, 200) + 0.4 * (0, 255, 0)
    np.testing.assert_array_equal(out[1], image[1])
    with pytest.raises(ValueError, match="sizes must match"):
        overlay_mask(image, np.zeros((3, 3), bool))


def test_overlay_heatmap_weights_by_strength():
    image = np.full((1, 3, 3), 100, np.uint8)
    out = overlay_heatmap(image, np.array([[0.0, 2.0, -1.0]]), alpha=0.5)
    assert tuple(out[0, 0]) == (100, 100, 100)  # no relevance: the image shows through
    assert tuple(out[0, 1]) == (178, 50, 50)  # weight 0.5 towards pure red (177.5 rounds to even)
    assert tuple(out[0, 2]) == (107, 107, 139)  # weight 0.25 towards (128, 128, 255)
