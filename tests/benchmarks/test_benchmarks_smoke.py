"""The benchmark scripts still run (tiny settings) and write one report with every section.

Speed is never asserted here (speed lives in benchmarks/, its numbers in docs/results.md); these
tests check that the scripts work and count FLOPs right.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_forward  # noqa: E402
import bench_train  # noqa: E402
import run_all  # noqa: E402

from endoxai import runtime  # noqa: E402
from endoxai.config import Config, TrainConfig  # noqa: E402
from endoxai.models import Generator  # noqa: E402
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save  # noqa: E402


def test_flop_count_matches_a_hand_count():
    # conv 3->4, k 4, stride 2 on 8x8 -> 4x4 out: 2*16*3*4*16 FLOP; transposed 4->2, k 4,
    # stride 2 on that 4x4 input: 2*16*4*2*16 FLOP
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(3, 4, 4, 2, 1)
            self.up = nn.ConvTranspose2d(4, 2, 4, 2, 1)

        def logits(self, x):
            return self.up(self.down(x))

    def count(module, size):
        return bench_forward.generator_flops(module, size)

    assert count(Tiny(), 8) == 2 * 16 * 3 * 4 * 16 + 2 * 16 * 4 * 2 * 16
    # the Table-1 generator: 47.8 GFLOP per 512² image (the figure the performance issue states)
    assert count(Generator(), 512) == pytest.approx(47.8e9, rel=2e-3)


@pytest.mark.slow
@pytest.mark.skipif(not runtime.cpu_has_native_bf16(),
                    reason="without native bf16 the suite's bf16 sections run emulated: on a 2-core "
                           "AMD Zen 3 (shared with other work) the quick suite outran its 900 s")
def test_quick_suite_runs(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "g.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": Generator().state_dict()}, ckpt)
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--threads", "1",
         "--checkpoint", str(ckpt), "--output", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    for title in run_all.TITLES.values():
        assert title in report
    assert "bf16 channels-last" in report and "images / s" in report
    assert "bf16 channels-last + EMA" in report
    assert "× floor" in report


def test_train_bench_ema_variant_averages_after_every_step():
    """The "+ EMA" row times what training does: a step, then one update of the average."""
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    masks = (torch.rand(2, 1, 256, 256) > 0.5).float()
    name = "bf16 channels-last + EMA"
    _, channels_last, decay = bench_train.VARIANTS[name]  # timed in bf16, tested in fp32
    assert decay > 0
    trainer = bench_train.Trainer(0, "fp32", channels_last, TrainConfig(), decay)
    plain = bench_train.Trainer(0, "fp32", channels_last, TrainConfig())
    assert plain.ema is None
    before = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    trainer.step(images, masks)
    trainer.step(images, masks)
    assert trainer.ema.updates == 2
    moved = [k for k, v in trainer.ema.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]
    assert moved  # the average followed the trained weights
    trained = trainer.g.state_dict()
    key = moved[0]
    assert not torch.equal(trainer.ema.state_dict()[key], trained[key])  # and is not a copy
