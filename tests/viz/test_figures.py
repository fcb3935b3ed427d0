"""Explanation and layer-grid figures render to valid PNGs that show the signed heatmap."""

import io

import numpy as np
import pytest
from PIL import Image

from endoxai.viz.canvas import FRAME
from endoxai.viz.figures import (
    LAYER_PANEL,
    PANEL,
    explanation_figure,
    figure_png,
    layers_figure,
    relevance_label,
)


def _decode(png: bytes) -> np.ndarray:
    Image.open(io.BytesIO(png)).verify()  # raises on a truncated or malformed PNG
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB")).astype(int)


def _count_red_blue(rgb: np.ndarray) -> tuple[int, int]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r > 220) & (g < 40) & (b < 40)
    blue = (b > 220) & (r < 40) & (g < 40)
    return int(red.sum()), int(blue.sum())


def _red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 220) & (rgb[..., 1] < 40) & (rgb[..., 2] < 40)


def _has_full_square(on: np.ndarray, side: int) -> bool:
    """Whether some side x side square of ``on`` is true throughout."""
    sums = np.pad(on.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = (sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side]
               + sums[:-side, :-side])
    return bool((windows == side * side).any())


def _blob_relevance(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    positive = np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / 50.0)
    negative = np.exp(-((yy - 45) ** 2 + (xx - 15) ** 2) / 50.0)
    return positive - negative


def test_explanation_figure_png():
    size = 64
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    relevance = _blob_relevance(size)
    png = figure_png(explanation_figure(image, relevance, relevance > 0.5, title="t",
                                        target=("box", 10, 10, 30, 50)))
    rgb = _decode(png)
    h, w, _ = rgb.shape
    assert 1000 <= w <= 2500 and 350 <= h <= 1000 and w > 2 * h  # three panels side by side
    red, blue = _count_red_blue(rgb)
    assert red > 50 and blue > 50  # both signs at full strength (colourbar ends, blob centres)


def test_explanation_figure_all_positive_shows_no_blue_in_map():
    # With a symmetric scale a positive-only map has no blue pixels; only the colourbar's lower end
    # is blue, so blue pixels must be far fewer than with a signed map.
    size = 64
    image = np.zeros((size, size, 3), np.uint8)
    signed = _count_red_blue(_decode(figure_png(explanation_figure(image, _blob_relevance(size),
                                                                   np.zeros((size, size), bool)))))
    positive = _count_red_blue(_decode(figure_png(explanation_figure(
        image, np.clip(_blob_relevance(size), 0, None), np.zeros((size, size), bool)))))
    assert positive[1] < signed[1] / 2


def test_explanation_figure_shape_mismatch():
    with pytest.raises(ValueError, match="must match"):
        explanation_figure(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8)), np.zeros((4, 4), bool))


def test_layers_figure_draws_every_model_pixel_as_a_block():
    # A 2x2 map fills its square panel with four blocks, one per model pixel: a quarter of the
    # panel pure red, a quarter pure blue (interpolation would blur them into fewer pure pixels).
    maps = {"deep": np.array([[1.0, 0.0], [0.0, -1.0]]), "zero": np.zeros((2, 2))}
    fig = layers_figure(maps, {"deep": (3, 2, 2), "zero": (3, 2, 2)}, title="layers")
    red, blue = _count_red_blue(_decode(figure_png(fig)))
    quarter = (LAYER_PANEL // 2) ** 2
    assert quarter <= red < quarter + 2000 and quarter <= blue < quarter + 2000  # + colour bar
    assert "deep (3×2×2)\nΣR = 0, max|R| = 1" in fig.texts  # an all-zero map draws too
    assert "zero (3×2×2)\nΣR = 0, max|R| = 0" in fig.texts
    with pytest.raises(ValueError, match="no layer maps"):
        layers_figure({})


def test_a_pixel_targets_relevance_is_not_hidden_by_its_frame():
    # The relevance of a pixel target often sits on that pixel alone: the frame must leave it
    # visible (a marker drawn on the pixel hid it), and an enlarged panel shows it bigger.
    size = 64
    image = np.zeros((size, size, 3), np.uint8)
    relevance = np.zeros((size, size))
    relevance[32, 20] = 1.0
    mask = np.zeros((size, size), bool)
    plain = _red(_decode(figure_png(explanation_figure(image, relevance, mask))))
    fig = explanation_figure(image, relevance, mask, target=("pixel", 32, 20))
    framed = _red(_decode(figure_png(fig)))
    # the first three panels keep their places: every red pixel there is still red
    assert plain.any() and framed[:, :plain.shape[1]][plain].all()
    # the 25 x 25 window around the pixel, enlarged 20 times: the pixel is a 20 x 20 red block
    assert _has_full_square(framed[:, plain.shape[1]:], 20)
    assert not _has_full_square(plain, 20)
    assert any(t.startswith("Input relevance around the target\nrows 20–44, columns 8–32")
               for t in fig.texts)
    assert not any("around the target" in t for t in explanation_figure(
        image, relevance, mask, target=("box", 0, 0, 40, 40)).texts)  # a large box: no zoom


def test_panels_are_framed():
    # A white map on a white page still shows where it ends: every panel has a thin grey frame.
    size = 32
    rgb = _decode(figure_png(explanation_figure(np.zeros((size, size, 3), np.uint8),
                                                np.zeros((size, size)),
                                                np.zeros((size, size), bool))))
    panel = size * (PANEL // size)
    grey = (rgb == FRAME).all(axis=2)
    assert (grey.sum(axis=0) >= 0.95 * panel).sum() == 6  # left and right edges of 3 panels
    assert (grey.sum(axis=1) >= 3 * 0.95 * panel).sum() == 2  # their top and bottom edges


@pytest.mark.parametrize("scale, unit", [(1e-3, "in units of 10⁻³"), (1e4, "in units of 10⁴"),
                                         (1.0, "")])
def test_the_colour_bars_scale_is_in_its_label(scale, unit):
    size = 64
    relevance = _blob_relevance(size) * scale * 4  # max|R| = about 4 x scale
    fig = explanation_figure(np.zeros((size, size, 3), np.uint8), relevance,
                             np.zeros((size, size), bool))
    label = next(t for t in fig.texts if t.startswith("relevance"))
    assert label == relevance_label(np.abs(relevance).max())
    assert unit in label if unit else "units" not in label
    ticks = [float(t.replace("−", "-")) for t in fig.texts
             if t.replace("−", "-").replace(".", "").lstrip("-").isdigit()]
    assert len(ticks) >= 5 and 1 <= max(abs(t) for t in ticks) < 10  # read in the label's unit
