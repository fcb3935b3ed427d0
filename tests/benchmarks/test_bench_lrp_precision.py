"""benchmarks/bench_lrp_precision.py runs (tiny settings) and reports both precisions' safety.

Speed is not asserted (it lives in docs/results.md); the safety columns are: a forced NaN in bf16
must be counted as a non-finite image and decide for fp32."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_lrp_precision  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.slow  # LRP of a width-8 generator, four times per test


def _run(tmp_path, capsys) -> list[str]:
    out = tmp_path / "report.md"
    assert bench_lrp_precision.main(
        ["--width", "8", "--n-images", "1", "--repeats", "1", "--warmup", "0",
         "--composites", "epsilon-gamma-box", "--data", str(tmp_path / "no-data"),
         "--output", str(out)]) == 0
    capsys.readouterr()
    return [line for line in out.read_text().splitlines() if line.startswith("| Table-1")]


def test_report_has_a_row_per_model_and_composite(tmp_path, capsys):
    logger = logging.getLogger("endoxai.explain.explanation")
    before = logger.propagate
    rows = _run(tmp_path, capsys)
    assert logger.propagate == before  # the re-run warnings reach caplog and the CLI again
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:3] == ["Table-1 generator, width 8, random init", "256²", "epsilon-gamma-box"]
    assert cells[6] == "0 of 1" and float(cells[7]) > 0.9 and cells[9] in ("bf16", "fp32")


def test_a_non_finite_bf16_pass_is_counted_and_decides_for_fp32(tmp_path, capsys,
                                                              nan_under_autocast):
    cells = [c.strip() for c in _run(tmp_path, capsys)[0].strip("|").split("|")]
    assert cells[6] == "1 of 1" and cells[9] == "fp32"

