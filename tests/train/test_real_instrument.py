"""Kvasir-Instrument is ready to train: the real masks and official split in the data folder
(tests/conftest.py), with stand-in images (the real ones are not on these machines)."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from endoxai.config import load_config
from endoxai.data import find_dataset, load_arrays, resolve_split
from endoxai.data.check import check_dataset
from endoxai.train.loop import fit

pytestmark = pytest.mark.slow


@pytest.fixture
def instrument_folder(kvasir_instrument: Path, tmp_path: Path) -> Path:
    """What unpacking the official archive gives, with a plain stand-in image of each mask's size
    (nothing below depends on the images' pixels)."""
    root = tmp_path / "kvasir-instrument"
    (root / "images").mkdir(parents=True)
    shutil.copytree(kvasir_instrument / "masks", root / "masks")  # 3 MB
    for name in ("train.txt", "test.txt"):
        shutil.copy(kvasir_instrument / name, root / name)
    for mask in sorted((kvasir_instrument / "masks").glob("*.png")):
        with Image.open(mask) as m:
            size = m.size
        Image.new("RGB", size, (150, 60, 50)).save(root / "images" / f"{mask.stem}.jpg")
    return root


def test_real_masks_and_official_split_pass_the_check_and_train(instrument_folder, tmp_path,
                                                                 tiny_models, kvasir_instrument):
    index = find_dataset(instrument_folder)
    assert index.layout == "kvasir-instrument" and len(index.stems) == 590
    report = check_dataset(index, progress=False)
    assert report.errors == [], report.errors[:3]
    split = resolve_split(index, val_fraction=0.5, seed=0)
    assert len(split["train"]) == 472 and len(split["val"]) == 118  # test.txt is the validation
    assert split["val"] == sorted((kvasir_instrument / "test.txt").read_text().split())
    masks = load_arrays(index, split["val"][:8], 256, progress=False).masks
    assert set(masks.unique().tolist()) == {0, 1}

    # the default recipe trains on it unchanged (one epoch of the tiny stand-in networks)
    cfg = load_config("default").override(train={"epochs": 1, "batch_size": 64,
                                                  "precision": "fp32"})
    result = fit(cfg, instrument_folder, tmp_path / "run", progress=False)
    assert result.epochs_done == 1 and 0 <= result.history[0]["val_dice"] <= 1
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(saved["train"]) == 472 and len(saved["val"]) == 118
