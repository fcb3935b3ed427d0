"""fit() on a tiny synthetic dataset: outputs, determinism and exact resume."""

import csv

import pytest
import torch

from endoxai.config import load_config
from endoxai.errors import UserError
from endoxai.train.checkpoint import load_checkpoint
from endoxai.train.loop import fit

pytestmark = pytest.mark.slow


def _cfg(epochs: int):
    # tiny but real: the default recipe (augmentation, linear decay) on 6 images, fp32
    return load_config("default").override(
        train={"epochs": epochs, "batch_size": 3, "precision": "fp32"}, data={"val_fraction": 0.34}
    )


def _weights(path):
    return load_checkpoint(path)["generator"]


def test_fit_writes_run_and_resume_is_exact(pair_folder, tmp_path, caplog):
    with caplog.at_level("INFO", logger="endoxai"):
        straight = fit(_cfg(2), pair_folder, tmp_path / "a", progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2 and "left)" in lines[0] and "left" not in lines[1]
    assert straight.epochs_done == 2
    for name in ("last.pt", "best.pt", "history.csv", "config.toml", "split.json"):
        assert (tmp_path / "a" / name).is_file(), name
    assert any((tmp_path / "a" / "tb").iterdir())
    rows = list(csv.DictReader(open(tmp_path / "a" / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_dice"]) <= 1 for r in rows)

    fit(_cfg(2), pair_folder, tmp_path / "b", progress=False, stop_after=1)  # "interrupted"
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    with pytest.raises(UserError, match="--resume"):
        fit(_cfg(2), pair_folder, tmp_path / "b", progress=False)
    resumed = fit(_cfg(2), pair_folder, tmp_path / "b", resume=True, progress=False)
    assert resumed.epochs_done == 2
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), f"resume diverged at {k}"
    assert [r["loss_g"] for r in straight.history] == [r["loss_g"] for r in resumed.history]


def test_seeded_runs_are_identical_and_seeds_matter(pair_folder, tmp_path):
    fit(_cfg(1), pair_folder, tmp_path / "a", progress=False)
    fit(_cfg(1), pair_folder, tmp_path / "b", progress=False)
    fit(_cfg(1).override(train={"seed": 1}), pair_folder, tmp_path / "c", progress=False)
    a, b, c = (_weights(tmp_path / x / "last.pt") for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_without_checkpoint_is_a_user_error(pair_folder, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        fit(_cfg(1), pair_folder, tmp_path / "none", resume=True, progress=False)


def test_shuffle_masks_trains_on_the_deranged_masks_only(pair_folder, tmp_path, monkeypatch,
                                                        caplog):
    import endoxai.train.loop as loop

    calls = []

    def spy(arrays, seed):
        out = loop_shuffle(arrays, seed)
        calls.append((arrays, out, seed))
        return out

    loop_shuffle = loop.shuffle_masks
    monkeypatch.setattr(loop, "shuffle_masks", spy)
    cfg = _cfg(1).override(model={"width": 8}, train={"seed": 3})
    fit(cfg, pair_folder, tmp_path / "plain", progress=False)
    assert calls == []
    with caplog.at_level("INFO", logger="endoxai"):
        fit(cfg.override(data={"shuffle_masks": True}), pair_folder, tmp_path / "shuffled",
            progress=False)
    [(given, trained, seed)] = calls
    assert seed == 3 and trained.stems == given.stems
    assert not any(torch.equal(a, b) for a, b in zip(trained.masks, given.masks))
    assert "shuffle_masks = true" in (tmp_path / "shuffled" / "config.toml").read_text()
    assert any("another's mask" in r.getMessage() for r in caplog.records)
