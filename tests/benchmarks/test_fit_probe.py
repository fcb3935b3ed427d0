"""benchmarks/fit_probe.py: the eval-mode Dice and saturated share it reports, and that its steps
learn with either critic."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fit_probe  # noqa: E402

from endoxai.data import Arrays  # noqa: E402
from endoxai.data.preprocess import to_model_input  # noqa: E402
from endoxai.models import Generator  # noqa: E402


class _Fixed(Generator):
    """A generator whose logits are given, whatever it sees."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.fixed = logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fixed


def test_fit_scores_are_per_image_dice_and_the_saturated_share_of_wrong_pixels():
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, :2] = 1  # image 0: top half
    masks[1, 0, 0, 0] = 1  # image 1: one pixel
    logits = torch.where(masks.bool(), 1.0, -1.0)  # image 0 exact
    logits[1, 0, 0, 0] = -5.0  # image 1 misses its pixel, confidently (saturated)...
    logits[1, 0, 3, 3] = 2.0  # ...and marks another, not saturated: Dice 0
    g = _Fixed(logits).train()
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    scores = fit_probe.fit_scores(g, images, masks)
    assert scores["dice"] == pytest.approx(0.5) and scores["batch_dice"] == pytest.approx(0.5)
    assert scores["saturated"] == pytest.approx(0.5)  # 1 of the 2 wrong pixels
    assert g.training  # restored
    assert fit_probe.fit_scores(g, images, logits > 0)["saturated"] == 0.0


def test_fit_scores_use_running_statistics_then_the_images_own_and_leave_them_alone():
    torch.manual_seed(0)
    g = Generator(dropout=0.5).eval()
    for m in g.modules():  # running statistics far from those of the images below
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        truth = g.logits(to_model_input(images)) > 0  # eval mode is right by definition
        own = copy.deepcopy(g)
        for m in own.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        batch_pred = own.logits(to_model_input(images)) > 0
    expected = fit_probe._dice(batch_pred, truth)
    assert expected < 0.99  # the two kinds of statistics disagree here
    before = {k: v.clone() for k, v in g.state_dict().items()}
    g.train()
    scores = fit_probe.fit_scores(g, images, truth.float())
    assert scores["dice"] == 1.0 and scores["batch_dice"] == pytest.approx(expected)
    assert g.training and all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())


@pytest.mark.slow
@pytest.mark.parametrize(("critic", "augmented"), [("constant", False), ("patchgan", True)])
def test_probe_steps_lower_the_training_l1(critic, augmented):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    masks = torch.zeros(2, 1, 256, 256)
    masks[:, :, 64:192, 64:192] = 1
    images[:, :, 64:192, 64:192] = 255  # the mask is the bright square
    rows = fit_probe.probe(images, masks, "default", steps=8, every=4, critic=critic,
                           augmented=augmented)
    assert [r["step"] for r in rows] == [4, 8]
    first = rows[0]["l1"]
    assert rows[-1]["l1"] < first and all(0 <= r["dice"] <= 1 for r in rows)
    assert all(0 <= r["saturated"] <= 1 for r in rows)
    assert all((r["loss_d"] is None) == (critic == "constant") for r in rows)


def test_eval_logits_in_chunks_equal_one_batch_in_eval_mode():
    torch.manual_seed(0)
    g = Generator(dropout=0.5).train()
    for m in g.modules():  # running statistics unlike any batch's, so that batch mode would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
    images = torch.randint(0, 256, (3, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        whole = copy.deepcopy(g).eval().logits(to_model_input(images))
    chunked = fit_probe.eval_logits(g, images, chunk=2)
    assert torch.allclose(chunked, whole, atol=1e-5) and g.training


@pytest.mark.slow
def test_held_out_images_are_scored_like_the_training_images():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    masks = torch.zeros(2, 1, 256, 256)
    masks[:, :, 64:192, 64:192] = 1
    images[:, :, 64:192, 64:192] = 255
    # the training images themselves as the "held-out" set: both Dice columns must agree
    held_out = Arrays(images, masks.to(torch.uint8), ["a", "b"])
    rows = fit_probe.probe(images, masks, "default", steps=2, every=1, held_out=held_out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["val_dice"] == pytest.approx(r["dice"]) for r in rows)
    assert "val_dice" not in fit_probe.probe(images, masks, "default", steps=1, every=1)[0]
