"""Invalid configuration values are refused, with the key named, before any work starts."""

from __future__ import annotations

import pytest

from endoxai.cli import main
from endoxai.config import Config, TrainConfig, load_config
from endoxai.errors import UserError


@pytest.mark.parametrize("text, match", [
    ("[train]\nepochs = 1.5\n", "train.epochs must be an integer; got 1.5"),
    ("[train]\nepochs = '10'\n", "train.epochs must be an integer"),
    ("[train]\nbatch_size = true\n", "train.batch_size must be an integer; got True"),
    ("[data]\nimage_size = 256.0\n", "data.image_size must be an integer"),
    ("[data]\nimage_size = 1048576\n", "at most 4096"),
    ("[data.augment]\nenabled = 'yes'\n", "data.augment.enabled must be true or false"),
    ("[data.augment]\nrot90 = 1\n", "data.augment.rot90 must be true or false"),
    ("[train]\nl1_weight = inf\n", "train.l1_weight must be a finite number"),
    ("[train]\nseg_weight = nan\n", "train.seg_weight must be a finite number"),
    ("[train]\nlr_g = nan\n", "train.lr_g"),
    ("[train]\nseed = -1\n", "train.seed must be in"),
    ("[train]\nsave_every = 0\n", "train.save_every must be >= 1"),
    ("[train]\nfit_images = -1\n", "train.fit_images must be >= 0"),
    ("[train]\nprecision = 16\n", "train.precision must be a string"),
    ("[model]\ndropout = 'half'\n", "model.dropout must be a finite number"),
    ("[train]\nepochs = {value = 3}\n", "train.epochs must be an integer"),
    ("train = 3\n", "train must be a table"),
])
def test_bad_values_in_a_recipe_file(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_config(path)


def test_integers_are_fine_where_floats_are_expected():
    assert TrainConfig(l1_weight=100, lr_g=1e-4).l1_weight == 100


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="train.epochs must be an integer"):
        Config().override(train={"epochs": 2.0})


@pytest.mark.parametrize("argv, match", [
    (["--epochs", "0"], "train.epochs must be >= 1"),
    (["--save-every", "0"], "train.save_every must be >= 1"),
    (["--lr", "nan"], "train.lr_g"),
    (["--batch-size", "-2"], "train.batch_size"),
    (["--image-size", "300"], "multiple of 256"),
    (["--seed", "-5"], "train.seed"),
    (["--stop-after", "0"], "stop_after must be >= 1"),
    (["--config", "missing.toml"], "config file not found"),
])
def test_train_refuses_bad_options_before_any_work(pair_folder, tmp_path, capsys, argv, match):
    run = tmp_path / "run"
    code = main(["train", "--data", str(pair_folder), "--out", str(run), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not run.exists()


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_batch_size_zero_is_refused(tmp_path, capsys, command):
    code = main([command, "--checkpoint", str(tmp_path / "c.pt"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "o"), "--batch-size", "0"])
    assert code == 2 and "batch size must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
