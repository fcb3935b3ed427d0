"""Explanation and layer-grid figures render to valid PNGs that show the signed heatmap."""

import io

import numpy as np
import pytest
from PIL import Image

from endoxai.viz.figures import explanation_figure, figure_png, layers_figure


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


def test_layers_figure_png():
    rng = np.random.default_rng(0)
    maps = {f"down{i}": rng.standard_normal((64 >> i, 64 >> i)) for i in range(1, 7)}
    maps["zero"] = np.zeros((2, 2))  # an all-zero map must not break the colour scale
    shapes = {name: (3, *m.shape) for name, m in maps.items()}
    rgb = _decode(figure_png(layers_figure(maps, shapes, title="layers"), dpi=60))
    h, w, _ = rgb.shape
    assert (w, h) == (798, 450)  # 4 x 2 panels of 3.0 x 3.35 in + colourbar strip + title, 60 dpi
    red, blue = _count_red_blue(rgb)
    assert red > 20 and blue > 20
    with pytest.raises(ValueError, match="no layer maps"):
        layers_figure({})
