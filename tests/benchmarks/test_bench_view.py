"""benchmarks/bench_view.py times a click's answer in the viewer. Speed is not asserted
(benchmarks/ measures it, docs/results.md quotes it); this checks that the script runs every step
on the model it is given and writes its table."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_view  # noqa: E402

from endoxai.config import Config  # noqa: E402
from endoxai.models import Generator  # noqa: E402
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save  # noqa: E402


def test_one_round_times_every_step(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "g8.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "generator": Generator(width=8).state_dict(),
                 "config": Config().override(model={"width": 8}).to_dict()}, ckpt)
    image = bench_view.default_image(tmp_path / "no-data", tmp_path)
    out = tmp_path / "bench.md"
    assert bench_view.main(["--checkpoint", str(ckpt), "--image", str(image), "--repeats", "1",
                            "--warmup", "0", "--output", str(out)]) == 0
    report = out.read_text()
    for row in ("| backward pass |", "| answer (server) |", "| answer, uncached |",
                "| HTTP round trip |"):
        assert row in report
    assert "/g8.pt (width 8)" in report and "synthetic.png (360x300)" in report
