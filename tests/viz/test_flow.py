"""The skip-flow figure: band thicknesses and labels follow the ledger's shares."""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle
from PIL import Image

from endoxai.explain.flow import SkipFlow
from endoxai.viz.figures import figure_png
from endoxai.viz.flow import BAND, NEGATIVE, POSITIVE, flow_figure

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


def test_bands_are_as_thick_as_their_shares():
    fig = flow_figure(hand_flow(), title="hand")
    ax_u = fig.axes[0]
    horizontal = sorted(
        (p for p in ax_u.patches if isinstance(p, Rectangle) and p.get_width() > 2),
        key=lambda p: -p.get_y())  # top (level 1) first
    heights = [p.get_height() for p in horizontal]
    np.testing.assert_allclose(heights, [BAND * s for s in (0.5, 0.125, 0.375, 0.1875)])
    colours = [p.get_facecolor()[:3] for p in horizontal]
    assert colours[1] == to_rgb(NEGATIVE) and colours[0] == to_rgb(POSITIVE)
    texts = " | ".join(t.get_text() for t in ax_u.texts)
    assert "skip to level 1: 50.0 %" in texts
    assert "skip to level 2: -12.5 %" in texts
    assert "bottleneck: 18.8 %" in texts
    assert "input: 93.8 %" in texts
    png = figure_png(fig)
    assert Image.open(io.BytesIO(png)).size[0] > 500
