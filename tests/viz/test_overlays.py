"""Mask and error overlays: where they colour, and that a reader with any common colour-vision
deficiency can tell the error colours apart and see them on mucosa."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from endoxai.viz.overlays import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    error_overlay,
    overlay_mask,
)

# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear RGB.
CVD = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
MUCOSA = (200, 110, 90)  # a typical colon wall in Kvasir-SEG


def _seen(colour, vision: str) -> np.ndarray:
    c = np.asarray(colour, dtype=np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = np.clip(CVD[vision] @ linear, 0, 1)
    return 255 * np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("vision", list(CVD))
def test_error_colours_stay_apart_and_visible_on_mucosa(vision):
    seen = [_seen(c, vision) for c in (TP_COLOUR, FP_COLOUR, FN_COLOUR)]
    for a, b in itertools.combinations(seen, 2):
        assert np.linalg.norm(a - b) > 80, vision
    for colour in seen:
        assert np.linalg.norm(colour - _seen(MUCOSA, vision)) > 80, vision


def test_error_overlay_colours_each_kind_and_outlines_the_errors():
    image = np.full((20, 20, 3), MUCOSA, np.uint8)
    truth = np.zeros((20, 20), bool)
    pred = np.zeros((20, 20), bool)
    truth[2:8, 2:8] = pred[2:8, 2:8] = True  # true positive
    pred[10:16, 2:8] = True  # false positive
    truth[10:16, 10:16] = True  # false negative
    out = error_overlay(image, pred, truth)
    assert (out[~(pred | truth)] == MUCOSA).all()  # true negatives untouched
    for region, colour in (((slice(10, 16), slice(2, 8)), FP_COLOUR),
                           ((slice(10, 16), slice(10, 16)), FN_COLOUR)):
        block = out[region]
        assert (block[0] == colour).all() and (block[:, -1] == colour).all()  # opaque outline
        inner = block[1:-1, 1:-1].astype(float)
        expected = overlay_mask(image, np.ones((20, 20), bool), colour, 0.55)[0, 0]
        assert np.abs(inner - expected).max() <= 1  # the inside blended, the image still seen
        # a reader sees the fill on mucosa: far from the mucosa's own colour
        assert np.linalg.norm(inner[0, 0] - np.array(MUCOSA)) > 60
    tp = out[3, 3].astype(float)
    assert np.abs(tp - overlay_mask(image, truth, TP_COLOUR, 0.55)[3, 3]).max() <= 1
    single = np.zeros((20, 20), bool)
    single[5, 5] = True  # a one-pixel false positive is drawn at full strength
    assert (error_overlay(image, single, np.zeros((20, 20), bool))[5, 5] == FP_COLOUR).all()
