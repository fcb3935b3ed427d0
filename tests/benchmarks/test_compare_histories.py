"""benchmarks/compare_histories.py: runs compared at the epochs they share, the first against each
other one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import compare_histories  # noqa: E402


def _history(path: Path, dice: dict[int, float], fit: dict[int, float] | None = None) -> Path:
    # the columns of a real history.csv that matter here, plus one that does not
    lines = ["epoch,loss_g,val_dice,fit_dice"]
    lines += [f"{e},1.0,{d},{(fit or {}).get(e, '')}" for e, d in dice.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_history_keeps_rows_with_a_value_and_rejects_other_csvs(tmp_path):
    path = _history(tmp_path / "h.csv", {1: 0.2, 2: 0.3}, fit={2: 0.5})
    assert compare_histories.read_history(path, "val_dice") == {1: 0.2, 2: 0.3}
    assert compare_histories.read_history(path, "fit_dice") == {2: 0.5}
    with pytest.raises(ValueError, match="val_jaccard"):
        compare_histories.read_history(path, "val_jaccard")
    (tmp_path / "other.csv").write_text("name,dice\na,0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="epoch"):
        compare_histories.read_history(tmp_path / "other.csv", "dice")


def test_shared_epochs_and_leads():
    a = {1: 0.3, 2: 0.4, 3: 0.2, 4: 0.5}
    b = {2: 0.35, 3: 0.25, 4: 0.1, 5: 0.9}
    assert compare_histories.shared_epochs({"a": a, "b": b}) == [2, 3, 4]
    assert compare_histories.shared_epochs({"a": a, "b": b}, 3, 9) == [3, 4]
    n, low, high = compare_histories.leads(a, b, [2, 3, 4])
    assert n == 2  # ahead at 2 and 4, behind at 3
    assert low == pytest.approx(-0.05) and high == pytest.approx(0.4)


def test_report_tables(tmp_path):
    new = _history(tmp_path / "new.csv", {1: 0.30, 2: 0.50, 3: 0.40, 4: 0.90})
    old = _history(tmp_path / "old.csv", {1: 0.10, 2: 0.60, 3: 0.20})
    pair = [compare_histories.Series("new", new), compare_histories.Series("old", old)]
    report = compare_histories.run(argparse.Namespace(history=pair, metric="val_dice", epochs=None))
    assert "| 2 | 0.500 | 0.600 |" in report
    assert "\n| 4 | " not in report  # epoch 4 only in one run
    assert "| new | 0.400 | 0.900 (epoch 4) | 4 |" in report  # mean of 1-3; best over all 4
    assert "| old | 0.300 | 0.600 (epoch 2) | 3 |" in report
    assert "| new vs old | 2 of 3 | -0.100 | +0.200 |" in report
    only_first = compare_histories.run(argparse.Namespace(history=pair, metric="val_dice",
                                                          epochs=(1, 1)))
    assert "| new vs old | 1 of 1 | +0.200 | +0.200 |" in only_first
    with pytest.raises(SystemExit, match="no epoch in 5-6"):
        compare_histories.run(argparse.Namespace(history=pair, metric="val_dice", epochs=(5, 6)))


def test_command_line(tmp_path, capsys):
    run_dir = tmp_path / "runA"
    run_dir.mkdir()
    a = _history(run_dir / "history.csv", {1: 0.3, 2: 0.4})
    b = _history(tmp_path / "b.csv", {1: 0.2, 2: 0.5})
    out = tmp_path / "report.md"
    assert compare_histories.main([str(a), f"B={b}", "--epochs", "1-2", "--output",
                                   str(out)]) == 0
    assert "| runA vs B | 1 of 2 | -0.100 | +0.100 |" in out.read_text(encoding="utf-8")
    for bad in ("2-1", "0-3", "x"):
        with pytest.raises(SystemExit):
            compare_histories.main([str(a), "--epochs", bad])
    assert "FIRST" in capsys.readouterr().err


def test_a_column_per_run_compares_two_columns_of_one_history(tmp_path):
    # train.ema_decay: the average (val_dice) against the trained weights (val_dice_trained),
    # which the history has only from epoch 2 on
    path = tmp_path / "history.csv"
    path.write_text("epoch,val_dice,val_dice_trained\n1,0.5,\n2,0.6,0.4\n3,0.7,0.8\n",
                    encoding="utf-8")
    out = tmp_path / "report.md"
    assert compare_histories.main([f"average={path}", f"trained={path}@val_dice_trained",
                                   "--output", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    assert "`val_dice` (trained: `val_dice_trained`) at the 2 epochs" in report
    assert "| 2 | 0.600 | 0.400 |" in report and "| 3 | 0.700 | 0.800 |" in report
    assert "| average vs trained | 1 of 2 | -0.100 | +0.200 |" in report
    assert f"trained={path}@val_dice_trained --metric val_dice" in report  # the command, rerunnable
    assert compare_histories._labelled(str(path)) == (tmp_path.name, path, None)
    at_in_folder = Path("/x@y/history.csv")
    assert compare_histories._labelled(f"a={at_in_folder}") == ("a", at_in_folder, None)
