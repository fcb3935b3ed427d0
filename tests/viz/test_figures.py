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


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_a_pixel_targets_relevance_is_not_hidden_by_its_frame():
    # The relevance of a pixel target often sits on that pixel alone: the frame must leave it
    # visible (a marker drawn on the pixel hid it), and an enlarged panel shows it bigger.
    size = 64
    image = np.zeros((size, size, 3), np.uint8)
    relevance = np.zeros((size, size))
    relevance[32, 20] = 1.0
    mask = np.zeros((size, size), bool)
    plain = _count_red_blue(_decode(figure_png(explanation_figure(image, relevance, mask))))[0]
    fig = explanation_figure(image, relevance, mask, target=("pixel", 32, 20))
    framed = _count_red_blue(_decode(figure_png(fig)))[0]
    assert framed >= plain
    assert len(_image_axes(fig)) == 4  # image | relevance | mask | relevance around the target
    zoom = _image_axes(fig)[3]
    shown = zoom.get_images()[0].get_array()
    assert shown.shape == (25, 25) and shown[12, 12] == 1.0  # centred on the pixel


def test_panels_are_framed_without_ticks():
    size = 32
    fig = explanation_figure(np.zeros((size, size, 3), np.uint8), np.zeros((size, size)),
                             np.zeros((size, size), bool))
    panels = _image_axes(fig)
    assert len(panels) == 3  # no target: no enlarged panel
    for ax in panels:
        assert ax.axison and all(s.get_visible() for s in ax.spines.values())
        assert not ax.get_xticks().size and not ax.get_yticks().size


@pytest.mark.parametrize("scale, unit", [(1e-3, "in units of 10⁻³"), (1e4, "in units of 10⁴"),
                                         (1.0, "")])
def test_the_colour_bars_scale_is_in_its_label(scale, unit):
    size = 64
    relevance = _blob_relevance(size) * scale * 4  # max|R| = about 4 x scale
    fig = explanation_figure(np.zeros((size, size, 3), np.uint8), relevance,
                             np.zeros((size, size), bool))
    figure_png(fig)  # draws: tick labels and offset texts exist only then
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    label = bar.get_ylabel()
    assert label.startswith("relevance") and (unit in label if unit else "units" not in label)
    assert bar.yaxis.get_offset_text().get_text() == ""  # no "1e-3" above the bar
    ticks = [float(t.get_text().replace("−", "-")) for t in bar.get_yticklabels()
             if t.get_text()]
    assert max(abs(t) for t in ticks) < 10  # read in the label's unit
