import tomllib

import pytest

from endoxai.config import Config, load_config, recipe_names
from endoxai.errors import UserError


def test_paper_recipe_matches_released_code():
    cfg = load_config("paper")
    assert cfg.data.image_size == 512
    assert cfg.train.lr_g == cfg.train.lr_d == 0.002
    assert cfg.train.batch_size == 8 and cfg.train.epochs == 10
    assert cfg.data.augment.enabled is False
    assert cfg.train.lr_schedule == "constant"
    assert cfg.train.l1_weight == 100 and (cfg.train.beta1, cfg.train.beta2) == (0.5, 0.999)


def test_shipped_recipes_load():
    assert {"paper", "default", "cpu"} <= set(recipe_names())
    for name in recipe_names():
        assert isinstance(load_config(name), Config)


def test_toml_round_trip():
    cfg = load_config("paper").override(train={"seg_loss": "dice", "epochs": 3})
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg


def test_override_ignores_none_and_validates():
    cfg = Config().override(train={"epochs": None, "batch_size": 4})
    assert cfg.train.batch_size == 4 and cfg.train.epochs == Config().train.epochs
    with pytest.raises(ValueError, match="multiple of 256"):
        Config().override(data={"image_size": 300})


@pytest.mark.parametrize(
    "text,match",
    [
        ("[train]\nepochs = 0\n", "train.epochs"),
        ("[train]\nseg_loss = 'focal'\n", "none, dice, bce"),
        ("[train]\ncritic_input = 'round'\n", "train.critic_input.*tanh, sign"),
        ("[train]\nema_decay = 1.0\n", "train.ema_decay"),
        ("[train]\nlr_g = -1.0\n", "lr_g"),
        ("[trian]\nepochs = 3\n", "unknown config key"),
        ("[data.augment]\nhflip = 2.0\n", "augment.hflip"),
        ("[train\n", "invalid config"),
    ],
)
def test_invalid_files_rejected_with_reason(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_config(path)


def test_unknown_recipe_lists_names():
    with pytest.raises(UserError, match="paper"):
        load_config("nonexistent")


def test_default_recipe_is_the_one_measured_in_the_results():
    # docs/results.md, section 1, row 3 trained this recipe: a change here makes that row stale
    cfg = load_config("default")
    assert (cfg.train.seg_loss, cfg.train.seg_weight, cfg.train.epochs) == ("dice+bce", 100.0, 80)
    assert cfg.data.image_size == 256 and cfg.train.lr_schedule == "linear"
