"""benchmarks/bench_explain_cli.py runs `endoxai explain` as a user would and reports each process.

Speed is not asserted (benchmarks/ measures it, docs/results.md quotes it); this checks that the
script runs the real command on the model it is given and writes its table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_explain_cli  # noqa: E402

from endoxai.config import Config  # noqa: E402
from endoxai.models import Generator  # noqa: E402
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save  # noqa: E402


@pytest.mark.slow
def test_one_round_times_the_three_processes(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "g8.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "generator": Generator(width=8).state_dict(),
                 "config": Config().override(model={"width": 8}).to_dict()}, ckpt)
    image = bench_explain_cli.default_image(tmp_path / "no-data", tmp_path)
    assert image.name == "synthetic.png"
    out = tmp_path / "bench.md"
    assert bench_explain_cli.main(["--checkpoint", str(ckpt), "--image", str(image),
                                   "--repeats", "1", "--warmup", "0", "--output", str(out)]) == 0
    report = out.read_text()
    for row in ("| python -c pass |", "| endoxai --version |", "| endoxai explain IMAGE |"):
        assert row in report
    assert f"model: {ckpt}" in report and "synthetic.png (256x256)" in report


@pytest.mark.slow
def test_a_failing_command_stops_the_benchmark(tmp_path):
    with pytest.raises(SystemExit, match="failed"):
        bench_explain_cli.main(["--checkpoint", str(tmp_path / "absent.pt"), "--image",
                                str(tmp_path / "absent.png"), "--repeats", "1", "--warmup", "0"])
