"""endoxai.view.render: the viewer draws a mask's errors in the colours of every other picture."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np

from endoxai.view.render import mask_layer
from endoxai.viz.overlays import FN_COLOUR, FP_COLOUR, TP_COLOUR


def test_mask_layer_uses_the_overlay_colours():
    pred = np.array([[True, True, False, False]])
    truth = np.array([[True, False, True, False]])
    layer = mask_layer(pred, truth)
    assert [tuple(p) for p in layer[0]] == [(*TP_COLOUR, 255), (*FP_COLOUR, 255),
                                            (*FN_COLOUR, 255), (0, 0, 0, 0)]
    alone = mask_layer(pred, None)  # no truth: the prediction in the true-positive colour
    assert [tuple(p) for p in alone[0]] == [(*TP_COLOUR, 255)] * 2 + [(0, 0, 0, 0)] * 2


def test_the_pages_legend_shows_the_same_colours():
    css = (resources.files("endoxai.view") / "static" / "viewer.css").read_text(encoding="utf-8")
    swatches = {kind: tuple(int(v) for v in rgb.split(","))
                for kind, rgb in re.findall(r"\.swatch\.(tp|fp|fn)\s*\{\s*background:\s*"
                                            r"rgb\(([\d,\s]+)\)", css)}
    assert swatches == {"tp": TP_COLOUR, "fp": FP_COLOUR, "fn": FN_COLOUR}
