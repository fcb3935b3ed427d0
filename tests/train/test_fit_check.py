"""train.fit_images: the per-epoch eval-mode Dice of the first training images (``fit_dice``)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from endoxai.config import load_config
from endoxai.data import find_dataset, load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.train.checkpoint import load_checkpoint
from endoxai.train.loop import fit


def _dice_of_first_training_images(namespace, run, n: int) -> float:
    """Recomputed from last.pt, split.json and the files: eval mode, logit > 0, per-image mean."""
    ckpt = load_checkpoint(run / "last.pt")
    g, _ = namespace["build_tiny"](None)
    g.load_state_dict(ckpt["generator"])
    g.eval()
    split = json.loads((run / "split.json").read_text())
    size = ckpt["config"]["data"]["image_size"]
    arrays = load_arrays(find_dataset(split["dataset"]), split["train"][:n], size, progress=False)
    with torch.no_grad():
        pred = g.logits(to_model_input(arrays.images)) > 0
    return float(medai_scores(confusion_counts(pred, arrays.masks.bool()))["dice"].mean())


def test_fit_dice_is_the_eval_mode_dice_of_the_first_n_training_images(
    tiny_models, tiny_recipe, pair_folder, tmp_path
):
    cfg = load_config(tiny_recipe).override(train={"epochs": 1, "fit_images": 2})
    result = fit(cfg, pair_folder, tmp_path / "run", progress=False)
    expected = _dice_of_first_training_images(tiny_models, tmp_path / "run", 2)
    assert result.history[0]["fit_dice"] == pytest.approx(expected, abs=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert float(rows[0]["fit_dice"]) == pytest.approx(expected, abs=1e-6)


def test_fit_images_zero_logs_no_fit_dice(tiny_models, tiny_recipe, pair_folder, tmp_path):
    cfg = load_config(tiny_recipe).override(train={"epochs": 1, "fit_images": 0})
    result = fit(cfg, pair_folder, tmp_path / "run", progress=False)
    assert "fit_dice" not in result.history[0] and "val_dice" in result.history[0]
