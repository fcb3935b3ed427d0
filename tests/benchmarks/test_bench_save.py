"""benchmarks/bench_save.py: the state it times is a real training checkpoint (resumable, with
both generators), the best.pt part is only the model, and its report has both files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_save  # noqa: E402

from endoxai.config import Config  # noqa: E402
from endoxai.errors import UserError  # noqa: E402
from endoxai.train.checkpoint import (  # noqa: E402
    atomic_save,
    check_resumable,
    load_checkpoint,
    load_generator,
)


@pytest.fixture(scope="module")
def state():
    return bench_save.training_state(Config())


def test_the_timed_state_is_a_resumable_checkpoint_with_both_generators(state, tmp_path):
    path = tmp_path / "last.pt"
    atomic_save(state, path)
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    # Adam's two moment buffers for every parameter, as after a real step
    assert all({"exp_avg", "exp_avg_sq"} <= set(s) for s in ckpt["opt_g"]["state"].values())
    assert len(ckpt["opt_g"]["state"]) == len(list(load_generator(path)[0].parameters()))
    load_generator(path, trained=True)


def test_the_best_part_loads_as_a_model_but_does_not_resume(state, tmp_path):
    path = tmp_path / "best.pt"
    atomic_save(bench_save.model_part(state), path)
    load_generator(path, trained=True)
    with pytest.raises(UserError, match="cannot resume"):
        check_resumable(load_checkpoint(path), path)


def test_the_report_times_both_files(monkeypatch, tmp_path):
    small = {"format": "x", "config": {}, "generator": {"w": torch.zeros(1000)},
             "discriminator": {"w": torch.zeros(1_000_000)}}
    monkeypatch.setattr(bench_save, "training_state", lambda cfg: small)
    report = bench_save.run(bench_save.argparse.Namespace(folder=tmp_path, repeats=1, warmup=0))
    rows = [line.strip("| ").split(" | ") for line in report.splitlines()
            if line.startswith(("| last.pt", "| best.pt"))]
    assert [r[0] for r in rows] == ["last.pt (training state)", "best.pt (MODEL_KEYS)"]
    assert rows[0][-1] == "1.00"  # the speed-up column is relative to last.pt
    assert float(rows[1][1]) < float(rows[0][1])  # MB: without the discriminator
    assert list(tmp_path.iterdir()) == []  # the files are removed
