"""Interrupted, killed and diverging training: resumable checkpoints, exact resume, exit codes.

These tests use the tiny stand-in models of conftest.py: the interruption and resume logic does
not depend on the model, and test_loop.py already proves an exact (end-of-epoch) resume with the
Table-1 generator, whose 690 MB checkpoints make each extra fit() cost tens of seconds.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time

import pytest
import torch

import endoxai.train.loop as loop
import endoxai.train.resume as resume
from endoxai.config import load_config
from endoxai.errors import Interrupted, TrainingDiverged, UserError
from endoxai.train.checkpoint import MODEL_KEYS, check_resumable, load_checkpoint
from endoxai.train.loop import fit
from endoxai.train.run_folder import LOCK_FILE


def _weights(path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in ckpt["generator"].items()},
            **{f"d.{k}": v for k, v in ckpt["discriminator"].items()}}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"differs at {k}"


def _after_step(monkeypatch, action) -> None:
    """Call ``action(global_step)`` after every real train_step (1-based step count)."""
    real = loop.train_step
    count = {"n": 0}

    def step(*args, **kwargs):
        logs = real(*args, **kwargs)
        count["n"] += 1
        action(count["n"])
        return logs

    monkeypatch.setattr(loop, "train_step", step)


def _signal_at(monkeypatch, at: int, signum: int, times: int = 1) -> None:
    def action(n):
        if n == at:
            for _ in range(times):
                os.kill(os.getpid(), signum)

    _after_step(monkeypatch, action)


# 4 training pairs, batch 2: 2 steps per epoch, 2 epochs. Interrupting after global step 1 stops
# mid-epoch, after step 2 stops before validation (all batches done), after 3 inside epoch 2.
@pytest.mark.parametrize("at, signum, epoch, step", [
    (1, signal.SIGINT, 0, 1),
    (2, signal.SIGTERM, 0, 2),
    (3, signal.SIGINT, 1, 1),
])
def test_signal_writes_resumable_state_and_resume_is_bit_identical(
    tiny_models, tiny_recipe, pair_folder, tmp_path, monkeypatch, at, signum, epoch, step
):
    cfg = load_config(tiny_recipe)
    straight = fit(cfg, pair_folder, tmp_path / "straight", progress=False)

    # the handlers in place before fit (SIGINT may be ignored, e.g. under nohup or in CI)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _signal_at(monkeypatch, at, signum)
    with pytest.raises(Interrupted) as info:
        fit(cfg, pair_folder, tmp_path / "cut", progress=False)
    assert info.value.signum == signum
    assert "--resume" in str(info.value) and f"after step {step} of 2" in str(info.value)
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["epoch"] == epoch and ckpt["partial"]["step"] == step
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # restored

    monkeypatch.setattr(loop, "train_step", _real_step())
    resumed = fit(cfg, pair_folder, tmp_path / "cut", resume=True, progress=False)
    _assert_same(_weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "cut" / "last.pt"))
    for key in ("loss_g", "loss_d", "val_dice"):
        assert [r[key] for r in straight.history] == [r[key] for r in resumed.history], key
    assert "partial" not in load_checkpoint(tmp_path / "cut" / "last.pt")


def _real_step():
    from endoxai.train.steps import train_step

    return train_step


def test_second_signal_stops_at_once_without_saving(tiny_models, tiny_recipe, pair_folder,
                                                    tmp_path, monkeypatch):
    _signal_at(monkeypatch, 1, signal.SIGINT, times=2)
    with pytest.raises(Interrupted, match="second SIGINT"):
        fit(load_config(tiny_recipe), pair_folder, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing complete to keep yet
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(
    tiny_models, tiny_recipe, pair_folder, tmp_path, monkeypatch
):
    def poison(n):
        if n == 3:  # first step of epoch 2: the next forward pass produces NaN
            for p in run_models["g"].parameters():
                p.data.fill_(float("nan"))

    run_models = {}
    real_build = loop.build_models

    def build(model_cfg):
        run_models["g"], run_models["d"] = real_build(model_cfg)
        return run_models["g"], run_models["d"]

    monkeypatch.setattr(loop, "build_models", build)
    real = loop.train_step
    count = {"n": 0}

    def step(*args, **kwargs):
        count["n"] += 1
        poison(count["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    with pytest.raises(TrainingDiverged) as info:
        fit(load_config(tiny_recipe), pair_folder, tmp_path / "run", progress=False)
    message = str(info.value)
    assert "epoch 2, step 1 of 2" in message and "global step 3" in message
    assert "last good checkpoint, after epoch 1" in message
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and "partial" not in ckpt
    assert all(torch.isfinite(v).all() for v in ckpt["generator"].values() if v.is_floating_point())


def test_dataset_failing_the_check_is_refused_before_any_work(tiny_models, tiny_recipe,
                                                              pair_folder, tmp_path):
    victim = sorted((pair_folder / "images").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(UserError, match="data check found 1 error.*unreadable.*" + victim.name):
        fit(load_config(tiny_recipe), pair_folder, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_second_fit_on_the_same_run_folder_is_refused(tiny_models, tiny_recipe, pair_folder,
                                                        tmp_path):
    fcntl = pytest.importorskip("fcntl")
    run = tmp_path / "run"
    run.mkdir()
    with open(run / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="in use by another"):
            fit(load_config(tiny_recipe), pair_folder, run, progress=False)


def test_stale_temp_files_of_a_killed_write_are_removed(tiny_models, tiny_recipe, pair_folder,
                                                        tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".last.pt.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = run / ".notes.tmp"  # not our pattern: left alone
    keep.write_text("mine")
    fit(load_config(tiny_recipe).override(train={"epochs": 1}), pair_folder, run, progress=False)
    assert not stale.exists() and keep.exists()


def test_resume_refuses_a_changed_training_set(tiny_models, tiny_recipe, pair_folder, tmp_path,
                                               monkeypatch):
    cfg = load_config(tiny_recipe)
    _signal_at(monkeypatch, 1, signal.SIGINT)
    with pytest.raises(Interrupted):
        fit(cfg, pair_folder, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    ckpt["partial"]["order"] = ckpt["partial"]["order"][:-1]
    torch.save(ckpt, tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match="stopped mid-epoch with 3 training pairs"):
        fit(cfg, pair_folder, tmp_path / "run", resume=True, progress=False)


def test_resume_refuses_a_checkpoint_without_training_state(tiny_models, tiny_recipe,
                                                            pair_folder, tmp_path):
    cfg = load_config(tiny_recipe).override(train={"epochs": 1})
    fit(cfg, pair_folder, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    del ckpt["opt_d"], ckpt["rng"]
    torch.save(ckpt, tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match="cannot resume.*lacks opt_d, rng"):
        fit(cfg, pair_folder, tmp_path / "run", resume=True, progress=False)


def _spy_saves(monkeypatch) -> list[tuple[str, int]]:
    """(file name, epoch stored) for every checkpoint fit() writes."""
    saves: list[tuple[str, int]] = []
    real = resume.atomic_save

    def save(state, path):
        saves.append((path.name, state["epoch"]))
        real(state, path)

    monkeypatch.setattr(resume, "atomic_save", save)
    return saves


def test_save_every_writes_last_pt_every_n_epochs_best_pt_on_every_best(
    tiny_models, tiny_recipe, pair_folder, tmp_path, monkeypatch
):
    saves = _spy_saves(monkeypatch)
    cfg = load_config(tiny_recipe).override(train={"epochs": 5, "save_every": 2})
    result = fit(cfg, pair_folder, tmp_path / "run", progress=False)
    assert [e for name, e in saves if name == "last.pt"] == [2, 4, 5]  # every 2nd, and the end
    best, expected = -1.0, []
    for row in result.history:  # best.pt is still written on every new best, saved or not
        if row["val_dice"] > best:
            best = row["val_dice"]
            expected.append(row["epoch"])
    assert [e for name, e in saves if name == "best.pt"] == expected
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 5


def test_best_pt_holds_the_model_and_last_pt_the_training_state(
    tiny_models, tiny_recipe, pair_folder, tmp_path, monkeypatch
):
    saves = _spy_saves(monkeypatch)
    cfg = load_config(tiny_recipe).override(train={"epochs": 1})  # epoch 1: a best and the last
    fit(cfg, pair_folder, tmp_path / "run", progress=False)
    assert sorted(saves) == [("best.pt", 1), ("last.pt", 1)]
    run = tmp_path / "run"
    best, last = (load_checkpoint(run / name) for name in ("best.pt", "last.pt"))
    assert set(best) == set(MODEL_KEYS) & set(last)
    assert not set(best) & {"discriminator", "opt_g", "opt_d", "rng"}
    for key, value in last["generator"].items():
        assert torch.equal(best["generator"][key], value), key
    assert best["history"] == last["history"] and best["config"] == last["config"]
    check_resumable(last, run / "last.pt")
    with pytest.raises(UserError, match="cannot resume"):
        check_resumable(best, run / "best.pt")


def test_save_every_still_saves_on_a_signal_and_resume_is_bit_identical(
    tiny_models, tiny_recipe, pair_folder, tmp_path, monkeypatch
):
    cfg = load_config(tiny_recipe).override(train={"epochs": 3, "save_every": 10})
    straight = fit(cfg, pair_folder, tmp_path / "straight", progress=False)
    saves = _spy_saves(monkeypatch)
    real_scores = loop.epoch_scores

    def scores_then_signal(*args, **kwargs):  # the signal comes once epoch 1 is complete
        scores = real_scores(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return scores

    monkeypatch.setattr(loop, "epoch_scores", scores_then_signal)
    with pytest.raises(Interrupted):
        fit(cfg, pair_folder, tmp_path / "cut", progress=False)
    assert [e for name, e in saves if name == "last.pt"] == [1]  # not due, written for the signal
    assert "partial" not in load_checkpoint(tmp_path / "cut" / "last.pt")
    monkeypatch.setattr(loop, "epoch_scores", real_scores)
    resumed = fit(cfg, pair_folder, tmp_path / "cut", resume=True, progress=False)
    _assert_same(_weights(tmp_path / "straight" / "last.pt"),
                 _weights(tmp_path / "cut" / "last.pt"))
    assert [r["loss_g"] for r in straight.history] == [r["loss_g"] for r in resumed.history]


def test_cli_save_every_may_change_on_resume(tiny_models, tiny_recipe, pair_folder, tmp_path):
    from endoxai.cli import main

    argv = ["train", "--data", str(pair_folder), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*argv, "--config", str(tiny_recipe), "--stop-after", "1",
                 "--save-every", "3"]) == 0
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert first["epoch"] == 1 and first["config"]["train"]["save_every"] == 3
    assert main([*argv, "--resume", "--save-every", "2"]) == 0
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 2 and last["config"]["train"]["save_every"] == 2


def test_bad_stop_after_is_refused_before_any_work(pair_folder, tmp_path):
    with pytest.raises(UserError, match="stop_after"):
        fit(load_config("default"), pair_folder, tmp_path / "run", stop_after=0)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the real CLI, in a child


def _wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _events(trace) -> list[str]:
    return trace.read_text().split() if trace.exists() else []


def _train_argv(runner, recipe, data, out, resume: bool = False) -> list[str]:
    config = ["--resume"] if resume else ["--config", str(recipe)]  # a resume uses the stored one
    return [*runner, "train", "--data", str(data), "--out", str(out), *config, "--no-progress"]


def _start_slowed(runner, recipe, data, out, trace, fsync_delay: float = 0.0):
    """Start training in a child that pauses 0.4 s after each step (and before each fsync)."""
    env = {**os.environ, "ENDOXAI_TEST_TRACE": str(trace), "ENDOXAI_TEST_STEP_DELAY": "0.4",
           "ENDOXAI_TEST_FSYNC_DELAY": str(fsync_delay)}
    with open(trace.with_suffix(".stderr"), "w") as err:  # a file: a full pipe would block it
        return subprocess.Popen(_train_argv(runner, recipe, data, out), env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def _finish(child, trace) -> str:
    """Wait for the child; its stderr."""
    child.wait(timeout=120)
    return trace.with_suffix(".stderr").read_text()


@pytest.mark.slow
def test_cli_sigterm_exits_143_and_resume_is_bit_identical(runner, tiny_recipe, pair_folder,
                                                           tmp_path):
    reference = subprocess.run(_train_argv(runner, tiny_recipe, pair_folder, tmp_path / "ref"),
                               capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr

    trace = tmp_path / "trace"
    child = _start_slowed(runner, tiny_recipe, pair_folder, tmp_path / "cut", trace)
    _wait_for(lambda: _events(trace).count("step") >= 3, what="3 training steps")
    child.send_signal(signal.SIGTERM)  # during the pause after some step of epoch 2
    err = _finish(child, trace)
    assert child.returncode == 143, err
    last_line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "SIGTERM" in last_line and "--resume" in last_line
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["partial"]["step"] >= 1

    resumed = subprocess.run(_train_argv(runner, tiny_recipe, pair_folder, tmp_path / "cut",
                                         resume=True), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same(_weights(tmp_path / "ref" / "last.pt"), _weights(tmp_path / "cut" / "last.pt"))


@pytest.mark.slow
def test_cli_sigint_exits_130_with_a_resumable_checkpoint(runner, tiny_recipe, pair_folder,
                                                          tmp_path):
    trace = tmp_path / "trace"
    child = _start_slowed(runner, tiny_recipe, pair_folder, tmp_path / "cut", trace)
    _wait_for(lambda: _events(trace).count("step") >= 1, what="a training step")
    child.send_signal(signal.SIGINT)
    err = _finish(child, trace)
    assert child.returncode == 130, err
    assert "Traceback" not in err and "SIGINT" in err.strip().splitlines()[-1]
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["partial"]["step"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["during a step", "while writing a checkpoint"])
def test_kill_9_leaves_the_last_complete_checkpoint(runner, tiny_recipe, pair_folder, tmp_path,
                                                    moment):
    trace, run = tmp_path / "trace", tmp_path / "run"
    child = _start_slowed(runner, tiny_recipe, pair_folder, run, trace, fsync_delay=0.5)
    try:
        _wait_for(lambda: (run / "last.pt").exists(), what="the first checkpoint")
        if moment == "during a step":
            _wait_for(lambda: _events(trace)[-1:] == ["step"] and _events(trace).count("step") >= 3,
                      what="a step of epoch 2")
        else:
            _wait_for(lambda: any(run.glob(".last.pt.*.tmp")), what="the second checkpoint write")
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(run / "last.pt")  # complete and loadable
    assert ckpt["epoch"] == 1 and "partial" not in ckpt
    assert math.isfinite(ckpt["best_dice"])
    if moment == "during a step":
        return  # resuming after a kill is the same as below

    resumed = subprocess.run(_train_argv(runner, tiny_recipe, pair_folder, run, resume=True),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.glob(".*.pt.*.tmp"))  # the killed write's temp file was cleaned up
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
