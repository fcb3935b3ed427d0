"""A tiny training run (random Table-1 generator, 6 synthetic pairs) and the report built from it,
shared by the report tests (built once per session: the LRP gallery is the slow part)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

VAL = ["case2", "case3", "case4", "case5"]
TRAIN = ["case0", "case1"]
GALLERY = 3
FAITH_METHODS = ("lrp:epsilon-gamma-box", "gradient", "random")


def _write_pairs(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    for i in range(len(TRAIN) + len(VAL)):
        cy, cx, r = rng.integers(15, 45), rng.integers(20, 60), 8 + 2 * i
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        image = rng.integers(0, 90, size=(h, w, 3), dtype=np.uint8)
        image[disc] = (210, 110, 90)
        Image.fromarray(image).save(root / "images" / f"case{i}.jpg", quality=95)
        Image.fromarray(disc.astype(np.uint8) * 255).save(root / "masks" / f"case{i}.png")


def _write_history(path: Path) -> None:
    columns = ["epoch", "lr_g", "lr_d", "loss_d", "loss_d_real", "loss_d_fake", "loss_g_adv",
               "loss_g_l1", "loss_g", "val_dice", "val_jaccard", "val_accuracy", "val_recall",
               "val_precision", "seconds"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for epoch, dice in ((1, 0.2), (2, 0.45), (3, 0.4)):
            writer.writerow([epoch, 2e-4, 2e-4, 0.6 / epoch, 0.3, 0.3, 1.5 + epoch / 10,
                             0.4 / epoch, 1.5 + 40 / epoch, dice, dice * 0.7, 0.8, 0.5, 0.5, 10.0])


def _write_faithfulness(folder: Path) -> None:
    from endoxai.explain.faithfulness import FaithfulnessSettings, evaluate_faithfulness
    from endoxai.explain.faithfulness_files import write_faithfulness

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 1, 3, padding=1)).eval()
    with torch.no_grad():
        model[2].bias.fill_(1.0)  # a non-empty prediction
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[:, 8:20, 8:24] = True
    result = evaluate_faithfulness(
        model, images, masks, ["a", "b"],
        FaithfulnessSettings(methods=FAITH_METHODS, steps=4, precision="fp32"), progress=False)
    write_faithfulness(result, folder)


SANITY_METHODS = ("gradient", "gradient-x-input")


def _write_sanity(folder: Path) -> None:
    from endoxai.explain.sanity import SanitySettings, evaluate_sanity
    from endoxai.explain.sanity_files import write_sanity
    from endoxai.models import Generator

    torch.manual_seed(0)
    model = Generator(width=4).eval()  # the checks randomise U-Net blocks: a small U-Net
    with torch.no_grad():
        model.up8[0].bias.fill_(0.5)  # a non-empty prediction
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    write_sanity(evaluate_sanity(model, images, ["a", "b"],
                                 SanitySettings(methods=SANITY_METHODS), progress=False), folder)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> SimpleNamespace:
    from endoxai.config import Config
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION

    root = tmp_path_factory.mktemp("tiny_run")
    data, run = root / "data", root / "run"
    _write_pairs(data)
    run.mkdir()
    torch.manual_seed(0)
    config = Config().override(train={"epochs": 5})
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                "generator": Generator().state_dict()}, run / "best.pt")
    (run / "split.json").write_text(json.dumps(
        {"source": "seeded", "dataset": str(data), "layout": "folder-pair", "train": TRAIN,
         "val": VAL}))
    _write_history(run / "history.csv")
    _write_faithfulness(run / "faithfulness")
    _write_sanity(run / "faithfulness")
    return SimpleNamespace(root=root, data=data, run=run, val=VAL, gallery=GALLERY,
                           faith_methods=FAITH_METHODS, sanity_methods=SANITY_METHODS)


@pytest.fixture(scope="session")
def built_report(tiny_run) -> SimpleNamespace:
    from endoxai.report import build_report

    torch.set_num_threads(1)
    out = tiny_run.root / "report"
    summary = build_report(tiny_run.run, out, max_images=GALLERY, batch_size=2, progress=False)
    return SimpleNamespace(summary=summary, out=out, run=tiny_run)
