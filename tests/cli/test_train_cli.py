"""`endoxai train` as a user calls it: --help lists the recipes from their files, --resume finds the
run's dataset, the run folder records it absolutely, a failed first call leaves no folder behind,
-q hides the progress bars. A real width-8 generator on 6 tiny images (seconds per run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from endoxai.cli import main
from endoxai.config import load_config, recipe_names

TINY = """\
[data]
val_fraction = 0.34

[data.augment]
enabled = false

[model]
width = 8

[train]
epochs = 1
batch_size = 2
precision = "fp32"
num_threads = 1
fit_images = 0
"""


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _train(*args: str) -> int:
    return main(["train", *args, "--no-progress"])


def test_help_gives_each_recipes_epochs_from_its_file(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for name in recipe_names():
        cfg = load_config(name)
        assert f"{name} {cfg.train.epochs} epochs at {cfg.data.image_size}x" in text, name
    assert "docs/guides/training.md" in text


def test_resume_without_data_uses_the_recorded_dataset(tmp_path, pair_folder, tiny_recipe,
                                                        monkeypatch, capsys):
    work = tmp_path / "work"  # trained from here with a relative --data; the run lies elsewhere
    work.mkdir()
    shutil.move(pair_folder, work / "data")
    run = tmp_path / "runs" / "r"
    monkeypatch.chdir(work)
    assert _train("--data", "data", "--out", str(run), "--config", str(tiny_recipe)) == 0
    recorded = json.loads((run / "split.json").read_text())
    assert recorded["dataset"] == str((work / "data").resolve())  # absolute, not "data"
    assert recorded["checksum"].startswith("sha256:")

    monkeypatch.chdir(tmp_path)  # another folder: the README's resume command, no --data
    assert _train("--resume", "--out", str(run), "--epochs", "2") == 0
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2

    moved = tmp_path / "moved"
    shutil.move(work / "data", moved)
    capsys.readouterr()
    assert _train("--resume", "--out", str(run), "--epochs", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(work / "data") in err[0] and "pass --data" in err[0]
    assert _train("--resume", "--out", str(run), "--epochs", "3", "--data", str(moved)) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3


def test_a_changed_dataset_is_named_on_resume(tmp_path, pair_folder, tiny_recipe, capsys):
    data = pair_folder
    run = tmp_path / "run"
    assert _train("--data", str(data), "--out", str(run), "--config", str(tiny_recipe)) == 0
    assert "is not the dataset" not in capsys.readouterr().err
    assert _train("--resume", "--out", str(run), "--epochs", "2") == 0
    assert "is not the dataset" not in capsys.readouterr().err
    with open(data / "masks" / "case0.png", "ab") as f:  # same pixels, another size
        f.write(b"\0" * 7)
    assert _train("--resume", "--out", str(run), "--epochs", "3") == 0
    err = capsys.readouterr().err
    assert f"{data} is not the dataset that {run / 'split.json'} records" in err


def test_train_without_data_and_without_resume_is_one_line(tmp_path, capsys):
    assert _train("--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data is required" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_failed_first_call_leaves_no_run_folder(tmp_path, pair_folder, tiny_recipe, capsys):
    data = pair_folder
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("val_fraction = 0.34", "val_fraction = 0.34\nholdout = 50"))
    run = tmp_path / "runs" / "r"
    assert _train("--data", str(data), "--out", str(run), "--config", str(bad)) == 2
    assert "data.holdout must be between" in capsys.readouterr().err
    assert not run.exists()  # split.json etc. of a run that never trained would trip the next try
    assert _train("--data", str(data), "--out", str(run), "--config", str(tiny_recipe)) == 0


def test_quiet_hides_the_progress_bars(tmp_path, pair_folder, tiny_recipe, capsys):
    assert main(["-q", "train", "--data", str(pair_folder), "--out", str(tmp_path / "run"),
                 "--config", str(tiny_recipe)]) == 0
    captured = capsys.readouterr()
    assert "epoch 1/1" not in captured.err and "it/s" not in captured.err
    assert "trained 1 epochs" in captured.out


def test_report_of_a_run_works_from_another_folder(tmp_path, pair_folder, tiny_recipe,
                                                    monkeypatch):
    # split.json records the dataset absolutely, so `report` (and `evaluate-explanations`, which
    # finds the dataset the same way) need no --data when run from anywhere
    work = tmp_path / "work"
    work.mkdir()
    shutil.move(pair_folder, work / "data")
    run = tmp_path / "runs" / "r"
    monkeypatch.chdir(work)
    assert _train("--data", "data", "--out", str(run), "--config", str(tiny_recipe)) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["-q", "report", "--run", str(run), "--output", "report", "--max-images", "0"]) == 0
    assert (elsewhere / "report" / "index.html").is_file()
