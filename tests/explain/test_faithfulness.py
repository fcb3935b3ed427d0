"""The faithfulness evaluation on a planted dependency: curves against an oracle, the random floor,
skipped images, settings."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from endoxai.explain.faithfulness import FaithfulnessSettings, evaluate_faithfulness
from endoxai.explain.methods import RANDOM, method_names

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find planted
from planted import PATCH, SIZE, Planted, planted_model_and_image, region_mask

SENSIBLE = [m for m in method_names() if m != RANDOM]


@pytest.fixture(scope="module")
def planted():
    return planted_model_and_image()


@pytest.mark.slow  # ~4 s: every method, including 16-step integrated gradients, in float64
def test_random_order_does_not_rank_the_region_first_and_curves_match_the_oracle(planted):
    model, x = planted
    settings = FaithfulnessSettings(methods=tuple(method_names()), patch=PATCH, steps=8,
                                    fraction=0.5, baseline="mean", ig_steps=16, precision="fp32",
                                    batch_size=5)
    result = evaluate_faithfulness(model, x, region_mask()[None], ["planted"], settings,
                                   progress=False)
    image = result.images[0]
    # Oracle, computed directly: the model with the region replaced by the image's mean colour.
    with torch.no_grad():
        f0 = model.logits(x).sum().item()
        removed = torch.where(region_mask(), x.mean((2, 3), keepdim=True), x)
        f1 = model.logits(removed).sum().item()
    assert image["initial_score"] == pytest.approx(f0, rel=1e-9)
    # 32 of 64 patches in 8 steps: 4 per step, so MoRF removes exactly the region at step 1.
    oracle_morf = [f0] + [f1] * 8
    pixels = SIZE * SIZE  # every logit is > 0: the whole output is explained
    assert image["target_pixels"] == pixels
    for method in SENSIBLE:
        r = image["methods"][method]
        np.testing.assert_allclose(r["morf"], oracle_morf, rtol=1e-9)
        np.testing.assert_allclose(r["lerf"], [f0] * 9, rtol=1e-9)  # 32 untouched patches first
        assert r["aopc_morf"] == pytest.approx(8 / 9 * (f0 - f1) / pixels, rel=1e-9)
        assert r["aopc_lerf"] == pytest.approx(0, abs=1e-12)
        assert r["mass_accuracy"] == pytest.approx(1.0)
        assert r["pointing_game"] == 1.0
    rnd = image["methods"][RANDOM]
    assert rnd["morf"] == rnd["lerf"]
    assert rnd["aopc_morf"] < 0.9 * image["methods"]["gradient"]["aopc_morf"]
    assert math.isnan(rnd["mass_accuracy"]) and math.isnan(rnd["pointing_game"])
    summary = result.summary()
    assert summary["gradient"]["curve_morf"] == pytest.approx([f0 / pixels] + [f1 / pixels] * 8)
    assert summary[RANDOM]["mass_accuracy"] is None


def test_random_order_is_seeded_and_misses_the_region(planted):
    model, x = planted
    settings = FaithfulnessSettings(methods=(RANDOM,), patch=PATCH, steps=1, fraction=4 / 64,
                                    baseline="mean", precision="fp32")
    runs = [evaluate_faithfulness(model, x, settings=settings, progress=False) for _ in range(2)]
    curves = [run.images[0]["methods"][RANDOM]["morf"] for run in runs]
    assert curves[0] == curves[1]
    with torch.no_grad():
        f0 = model.logits(x).sum().item()
        f1 = model.logits(torch.where(region_mask(), x.mean((2, 3), keepdim=True), x)).sum().item()
    # Four random patches of 64 remove far less evidence than the four region patches.
    assert curves[0][0] == pytest.approx(f0) and curves[0][1] > f1 + 0.5 * (f0 - f1)


def test_empty_prediction_is_skipped(planted):
    _, x = planted
    model = Planted(region_mask(), bias=-1e6).eval()
    result = evaluate_faithfulness(model, x, settings=FaithfulnessSettings(
        methods=("gradient",), patch=PATCH, steps=2), progress=False)
    assert result.images == [] and result.skipped == [{"name": "image0",
                                                       "reason": "empty prediction"}]


def test_training_mode_model_is_refused(planted):
    _model, x = planted
    with pytest.raises(ValueError, match="eval mode"):
        evaluate_faithfulness(Planted(region_mask()).train(), x, progress=False)


def test_settings_validation():
    with pytest.raises(KeyError, match="choose from"):
        FaithfulnessSettings(methods=("lrp:nope",))
    with pytest.raises(ValueError, match="baseline"):
        FaithfulnessSettings(baseline="zeros")
    with pytest.raises(ValueError, match="steps"):
        FaithfulnessSettings(steps=0)


def test_dice_curves_and_intervals_in_the_summary(planted):
    model, x = planted
    # a bias that puts the prediction's edge inside the picture: removing the planted region
    # erases part of the predicted area, which the Dice curve must show
    shifted = Planted(region_mask(), bias=-40.0).eval()
    with torch.no_grad():
        target = shifted.logits(x) > 0
    assert 0 < int(target.sum()) < SIZE * SIZE
    settings = FaithfulnessSettings(methods=("gradient", RANDOM), patch=PATCH, steps=8,
                                    fraction=0.5, baseline="mean", precision="fp32")
    result = evaluate_faithfulness(shifted, torch.cat([x, x]), None, ["a", "b"], settings,
                                   progress=False)
    r = result.images[0]["methods"]["gradient"]
    with torch.no_grad():
        removed = torch.where(region_mask(), x.mean((2, 3), keepdim=True), x)
        after = shifted.logits(removed) > 0
    dice = 2 * int((after & target).sum()) / (int(after.sum()) + int(target.sum()))
    assert dice < 0.5
    assert r["dice_morf"] == pytest.approx([1.0] + [dice] * 8)  # the region goes at step 1
    assert r["aopc_dice_morf"] == pytest.approx(8 / 9 * (1 - dice))
    assert r["dice_lerf"][0] == 1.0
    s = result.summary()["gradient"]
    assert s["aopc_dice_morf"] == pytest.approx(r["aopc_dice_morf"])
    assert s["aopc_dice_morf_low"] <= s["aopc_dice_morf"] <= s["aopc_dice_morf_high"]
    assert s["dice_curve_morf"] == pytest.approx(r["dice_morf"])
