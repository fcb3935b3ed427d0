"""The skip-flow figure: band thicknesses and labels follow the ledger's shares."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from endoxai.explain.flow import SkipFlow
from endoxai.viz.figures import figure_png
from endoxai.viz.canvas import blend, hex_colour
from endoxai.viz.flow import BAND_ALPHA, NEGATIVE, POSITIVE, flow_figure

DEPTH = 4


def hand_flow() -> SkipFlow:
    # output 8, split at level 1 into skip 4 / deeper 4; level 2: skip -1 / deeper 5 (a negative
    # skip); level 3: skip 3 / deeper 2; up1 absorbs 0.5, the bottleneck gets 1.5.
    t = torch.tensor
    return SkipFlow(
        total=t([8.0], dtype=torch.float64),
        skip=t([[4.0, -1.0, 3.0]], dtype=torch.float64),
        deeper=t([[4.0, 5.0, 2.0]], dtype=torch.float64),
        bottleneck=t([1.5], dtype=torch.float64),
        absorbed_decoder=t([[0.5, 0.0, 0.0, 0.0]], dtype=torch.float64),
        absorbed_encoder=t([[0.0, 0.0, 0.0, 0.0]], dtype=torch.float64),
        input=t([7.5], dtype=torch.float64),
    )


def _runs(column: np.ndarray, colours: dict[tuple[int, ...], str]) -> list[tuple[str, int]]:
    """(colour name, length) of each run of the given colours down a column of pixels."""
    runs: list[tuple[str, int]] = []
    previous = None
    for pixel in map(tuple, column):
        name = colours.get(pixel)
        if name is not None and name == previous:
            runs[-1] = (name, runs[-1][1] + 1)
        elif name is not None:
            runs.append((name, 1))
        previous = name
    return runs


def test_bands_are_as_thick_as_their_shares():
    fig = flow_figure(hand_flow(), title="hand")
    rgb = np.asarray(Image.open(io.BytesIO(figure_png(fig))).convert("RGB"))
    colours = {blend(hex_colour(POSITIVE), BAND_ALPHA): "+", blend(hex_colour(NEGATIVE),
                                                                    BAND_ALPHA): "-"}
    # a column through the horizontal bands: 30 pixels right of where they leave the encoder
    x = next(x for x in range(rgb.shape[1]) if len(_runs(rgb[:, x], colours)) == DEPTH) + 30
    runs = _runs(rgb[:, x], colours)
    assert [sign for sign, _ in runs] == ["+", "-", "+", "+"]  # levels 1, 2, 3, bottleneck
    shares = np.array([0.5, 0.125, 0.375, 0.1875])
    pixels = np.array([n for _, n in runs])
    np.testing.assert_allclose(pixels, pixels[0] * shares / shares[0], atol=1.5)
    assert pixels[0] > 15  # thick enough to measure: BAND rows of the U per whole output
    texts = " | ".join(fig.texts)
    assert "skip to level 1: 50.0 %" in texts
    assert "skip to level 2: -12.5 %" in texts
    assert "bottleneck: 18.8 %" in texts
    assert "input: 93.8 %" in texts
    assert fig.size[0] > 500
