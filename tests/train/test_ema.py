"""The moving average of the generator's weights: its arithmetic, and fit() validating, saving
and resuming it (tiny stand-in models of conftest.py)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torch import nn

import endoxai.train.loop as loop
import endoxai.train.validation as validation
from endoxai.config import load_config
from endoxai.errors import Interrupted
from endoxai.train.checkpoint import load_checkpoint
from endoxai.train.ema import WeightAverage
from endoxai.train.loop import fit


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))


def _fill(model: nn.Module, value: float) -> None:
    """Every floating-point tensor (weights, running statistics) := value; the counter := value."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.fill_(int(value) if not tensor.is_floating_point() else value)


def test_the_average_follows_the_formula_with_its_warm_up():
    model = _model()
    _fill(model, 0.0)
    ema = WeightAverage(model, decay=0.2)
    values = [4.0, 8.0, 2.0, 6.0]
    expected = 0.0
    for n, value in enumerate(values):
        d = min(0.2, (1 + n) / (10 + n))  # 0.1, 0.1818... (warm-up), then 0.2, 0.2
        expected = d * expected + (1 - d) * value
        _fill(model, value)
        ema.update(model)
    assert ema.updates == 4
    for name, tensor in ema.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert tensor.item() == 6  # integer buffers are copied, not averaged
        else:
            torch.testing.assert_close(tensor, torch.full_like(tensor, expected), msg=name)
    # the trained model is untouched, the average is a separate, frozen, eval-mode copy
    assert all(torch.all(t == 6) for t in model.state_dict().values())
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_the_decay_reaches_its_set_value_after_the_warm_up():
    ema = WeightAverage(_model(), decay=0.9)
    seen = []
    for _ in range(100):
        seen.append(ema.current_decay())
        ema.update(ema.module)
    assert seen[0] == pytest.approx(0.1)
    assert seen == sorted(seen) and max(seen) == 0.9 and seen[80] == 0.9 and seen[79] < 0.9


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_a_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(), decay)


def _cfg(tiny_recipe, **train):
    return load_config(tiny_recipe).override(train={"ema_decay": 0.9, **train})


def test_fit_validates_and_saves_the_average(tiny_models, tiny_recipe, pair_folder, tmp_path,
                                             monkeypatch):
    scored = []  # (model, limit, scores) of each validation
    real = validation.validate

    def spy(g, *args, **kwargs):
        scores = real(g, *args, **kwargs)
        scored.append((g, kwargs.get("limit"), scores))
        return scores

    monkeypatch.setattr(validation, "validate", spy)
    result = fit(_cfg(tiny_recipe), pair_folder, tmp_path / "run", progress=False)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["ema_updates"] == 4  # 4 training pairs, batch 2, 2 epochs
    trained, averaged = last["generator_train"], last["generator"]
    assert averaged.keys() == trained.keys()
    assert not all(torch.equal(averaged[k], trained[k]) for k in averaged)
    # each epoch: the average on the validation split and on the fit images, and the trained
    # weights on the validation split only
    assert len(scored) == 6
    average, weights = scored[0][0], scored[0][0].state_dict()
    assert not average.training and all(torch.equal(weights[k], averaged[k]) for k in averaged)
    on_average = [s for g, _, s in scored if g is average]
    on_trained = [(g, limit, s) for g, limit, s in scored if g is not average]
    assert len(on_average) == 4 and len(on_trained) == 2
    assert all(limit is None for _, limit, _ in on_trained)
    model = on_trained[-1][0].state_dict()
    assert all(torch.equal(model[k], trained[k]) for k in trained)
    # the history keeps both: val_dice is the average's, val_dice_trained the trained weights'
    assert [row["val_dice"] for row in result.history] == [s["dice"] for s in on_average[::2]]
    assert [row["val_dice_trained"] for row in result.history] == \
        [s["dice"] for _, _, s in on_trained]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == result.best_epoch and "generator_train" in best


def test_without_ema_the_checkpoint_has_one_generator(tiny_models, tiny_recipe, pair_folder,
                                                      tmp_path):
    result = fit(load_config(tiny_recipe), pair_folder, tmp_path / "run", progress=False)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert "generator_train" not in last and "ema_updates" not in last
    assert all("val_dice_trained" not in row for row in result.history)


def test_resume_mid_epoch_restores_the_average_bit_for_bit(tiny_models, tiny_recipe, pair_folder,
                                                           tmp_path, monkeypatch):
    cfg = _cfg(tiny_recipe)
    fit(cfg, pair_folder, tmp_path / "straight", progress=False)
    real = loop.train_step
    count = {"n": 0}

    def step(*args, **kwargs):
        logs = real(*args, **kwargs)
        count["n"] += 1
        if count["n"] == 3:  # inside epoch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return logs

    monkeypatch.setattr(loop, "train_step", step)
    with pytest.raises(Interrupted):
        fit(cfg, pair_folder, tmp_path / "cut", progress=False)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["ema_updates"] == 3
    monkeypatch.setattr(loop, "train_step", real)
    fit(cfg, pair_folder, tmp_path / "cut", resume=True, progress=False)
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "cut"))
    assert a["ema_updates"] == b["ema_updates"] == 4
    for key in ("generator", "generator_train"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
