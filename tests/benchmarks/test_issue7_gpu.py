"""benchmarks/issue7_gpu.sh: how it schedules the training runs (which recipes, how many epochs,
one after another), with a stand-in for Python that only records how it was called."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "issue7_gpu.sh"

# every call of "$PY ..." is logged with its start and end time; `train` calls take a moment, so
# that runs started side by side would overlap in the log
FAKE_PYTHON = """#!/usr/bin/env bash
echo "start $(date +%s.%N) $*" >> "$FAKE_LOG"
case " $* " in *" -m endoxai train "*) sleep 0.4 ;; esac
echo "end $(date +%s.%N) $*" >> "$FAKE_LOG"
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tmp_path: Path, recipes: str, epochs: str | None, budget: int = 300,
         **env: str) -> tuple[subprocess.CompletedProcess, list[tuple[str, float, list[str]]]]:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    variables = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log), "DEVICE": "cpu",
                 "PAPER_EPOCHS": "0", "RECIPES": recipes, "RUNS": str(tmp_path / "runs"), **env}
    variables.pop("EPOCHS", None)
    if epochs is not None:
        variables["EPOCHS"] = epochs
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "data"), str(tmp_path / "out"),
                           str(budget)], env=variables, capture_output=True, text=True,
                          timeout=60)
    calls = []
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, stamp, *argv = line.split()
        calls.append((kind, float(stamp), argv))
    return done, calls


def _trains(calls) -> list[tuple[str, float, list[str]]]:
    return [c for c in calls if c[2][:3] == ["-m", "endoxai", "train"]]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_recipes_train_one_after_another_with_their_own_epochs(tmp_path):
    done, calls = _run(tmp_path, "default docs/results/recipes/gpu-512.toml", "7 3")
    assert done.returncode == 0, done.stdout + done.stderr
    trains = _trains(calls)
    starts = [(_option(a, "--config"), _option(a, "--epochs"), _option(a, "--out"))
              for kind, _, a in trains if kind == "start"]
    runs = tmp_path / "runs"
    assert starts == [("default", "7", str(runs / "default")),
                      ("docs/results/recipes/gpu-512.toml", "3", str(runs / "gpu-512"))]
    # the second run starts only once the first has ended
    assert [kind for kind, _, _ in trains] == ["start", "end", "start", "end"]
    assert trains[2][1] >= trains[1][1]


def test_one_epochs_number_is_used_for_every_recipe_and_capped(tmp_path):
    done, calls = _run(tmp_path, "default paper", "500", MAX_EPOCHS="40")
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = [_option(a, "--epochs") for kind, _, a in _trains(calls) if kind == "start"]
    assert epochs == ["40", "40"]


def test_epochs_from_the_time_budget_when_not_given(tmp_path):
    # budget 300 s: a third is kept for the evaluations, the rest shared by the two runs, 20 s of
    # start-up each, 2.5 s per epoch: (200 / 2 - 20) / 2.5 = 32, give or take a second of start
    done, calls = _run(tmp_path, "default paper", None, budget=300)
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = {_option(a, "--epochs") for kind, _, a in _trains(calls) if kind == "start"}
    assert epochs <= {"31", "32"} and len(epochs) == 1


def test_a_wrong_number_of_epochs_stops_before_any_training(tmp_path):
    done, calls = _run(tmp_path, "default paper gpu", "5 6")
    assert done.returncode == 2
    assert "one per recipe (3)" in done.stdout
    assert _trains(calls) == []


def test_reserve_sets_the_seconds_kept_for_the_evaluations(tmp_path):
    # budget 300 s, 60 kept: (240 / 2 - 20) / 2.5 = 40, give or take a second of start
    done, calls = _run(tmp_path, "default paper", None, budget=300, RESERVE="60")
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = {_option(a, "--epochs") for kind, _, a in _trains(calls) if kind == "start"}
    assert epochs <= {"39", "40"} and len(epochs) == 1


def test_the_trained_weights_are_scored_for_runs_with_a_moving_average(tmp_path):
    runs = tmp_path / "runs"
    for name, decay in (("gpu-ema", "0.999"), ("default", "0.0")):
        (runs / name).mkdir(parents=True)
        (runs / name / "best.pt").touch()
        (runs / name / "config.toml").write_text(f"[train]\nepochs = 3\nema_decay = {decay}\n")
    done, calls = _run(tmp_path, "docs/results/recipes/gpu-ema.toml default", "3", SHIP_WEIGHTS="0")
    assert done.returncode == 0, done.stdout + done.stderr
    predicts = [a for kind, _, a in calls
                if kind == "start" and a[:3] == ["-m", "endoxai", "predict"]]
    trained = [_option(a, "--output") for a in predicts if "--trained-weights" in a]
    assert trained == [str(runs / "gpu-ema" / "val-masks-trained")]
    assert len(predicts) == 5  # with and without TTA for both runs, the trained weights once
