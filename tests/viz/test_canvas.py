"""endoxai.viz.canvas: the font, tick values, scale labels and text placement of Pillow figures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from endoxai.viz.canvas import Canvas, blend, font, hex_colour, nice_ticks, scale_unit, tick_label


def test_the_font_is_matplotlibs_dejavu_sans():
    assert font(16).getname()[0] == "DejaVu Sans"  # Σ, −, ⁻³ and × have glyphs in it


def test_an_explanations_figures_draw_without_matplotlib():
    code = """
import sys
import numpy as np
from endoxai.viz.figures import explanation_figure, figure_png, layers_figure
r = np.random.default_rng(0).standard_normal((16, 16))
figure_png(explanation_figure(np.zeros((16, 16, 3), np.uint8), r, r > 0, title="t",
                              target=("pixel", 3, 4)))
figure_png(layers_figure({"down1": r}))
print("matplotlib" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("low, high, most, expected", [
    (-1.0, 1.0, 9, [1.0, 0.75, 0.5, 0.25, 0.0, -0.25, -0.5, -0.75, -1.0]),
    (-0.268, 0.268, 9, [0.2, 0.1, 0.0, -0.1, -0.2]),
    (-24.0, 136.0, 8, [120.0, 100.0, 80.0, 60.0, 40.0, 20.0, 0.0, -20.0]),
    (2.0, 2.0, 9, [2.0]),
])
def test_nice_ticks(low, high, most, expected):
    ticks = nice_ticks(low, high, most)
    np.testing.assert_allclose(ticks, expected, atol=1e-12)


def test_nice_ticks_are_round_evenly_spaced_and_inside():
    for limit in (3.7e-5, 0.042, 0.9, 1.0, 7.3, 412.0):
        ticks = nice_ticks(-limit, limit)
        steps = -np.diff(ticks)
        assert 3 <= len(ticks) <= 9 and 0.0 in ticks
        assert np.allclose(steps, steps[0]) and max(ticks) <= limit and min(ticks) >= -limit
        mantissa = steps[0] / 10.0 ** np.floor(np.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5)) < 1e-9


@pytest.mark.parametrize("limit, scale, unit", [
    (4.2e-3, 1e-3, " in units of 10⁻³"), (0.5, 1.0, ""), (4.0, 1.0, ""), (999.0, 1.0, ""),
    (4.0e4, 1e4, " in units of 10⁴"), (0.0, 1.0, ""), (float("nan"), 1.0, ""),
])
def test_scale_unit_keeps_ticks_between_a_tenth_and_a_thousand(limit, scale, unit):
    found_scale, found_unit = scale_unit(limit)
    assert found_scale == pytest.approx(scale) and found_unit == unit


def test_tick_labels_use_a_typographic_minus():
    assert [tick_label(v) for v in (-0.25, 0.0, 1e-17, 0.30000000000000004, 120.0)] == \
        ["−0.25", "0", "0", "0.3", "120"]


def test_text_is_placed_by_its_anchor():
    canvas = Canvas(400, 200)
    left, top, right, bottom = canvas.text(200, 150, "two\nlines", 16, anchor="mb")
    assert bottom == 150 and abs((left + right) / 2 - 200) <= 1 and top < 150 - 30
    assert canvas.texts == ["two\nlines"]
    ink = np.asarray(canvas.image).min(axis=2) < 128
    rows, columns = np.nonzero(ink)
    assert top <= rows.min() and rows.max() <= bottom and left - 1 <= columns.min()
    assert columns.max() <= right + 1


def test_vertical_text_is_turned_and_centred():
    canvas = Canvas(100, 300)
    canvas.vertical_text(50, 150, "relevance", 16)
    rows, columns = np.nonzero(np.asarray(canvas.image).min(axis=2) < 128)
    assert np.ptp(rows) > 3 * np.ptp(columns)  # taller than wide
    assert abs((rows.min() + rows.max()) / 2 - 150) <= 3 and abs(columns.mean() - 50) <= 4


def test_colours():
    assert hex_colour("#d62728") == (214, 39, 40)
    assert blend((0, 0, 0), 0.55) == (115, 115, 115) and blend((10, 20, 30), 1.0) == (10, 20, 30)
