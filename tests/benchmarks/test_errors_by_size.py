"""benchmarks/errors_by_size.py: groups of equal count by truth area, their mean scores and the
share of images without a true positive, empty truths left out."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import errors_by_size  # noqa: E402

FIELDS = ["name", "height", "width", "empty_truth", "tp", "fp", "fn", "dice", "recall",
          "precision"]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _row(name: str, truth: int, tp: int, dice: float, empty: int = 0,
         fp: int = 0) -> dict[str, object]:
    # a 10 x 10 image whose truth has ``truth`` pixels, ``tp`` of them found, ``fp`` marked wrongly
    return {"name": name, "height": 10, "width": 10, "empty_truth": empty, "tp": tp, "fp": fp,
            "fn": truth - tp, "dice": dice, "recall": tp / truth if truth else 1.0,
            "precision": 0.5}


def test_size_edges_split_into_equal_counts():
    edges = errors_by_size.size_edges([0.4, 0.1, 0.3, 0.2], bins=2)
    assert edges == [0.1, 0.2, 0.4]
    groups = [errors_by_size.group_of(a, edges) for a in (0.1, 0.2, 0.3, 0.4)]
    assert groups == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        errors_by_size.size_edges([], 2)


def test_by_size_scores_each_group_and_leaves_empty_truths_out(tmp_path):
    rows = [_row("small-miss", 5, 0, 0.0, fp=20), _row("small-hit", 10, 8, 0.8, fp=4),
            _row("large-a", 40, 30, 0.6), _row("large-b", 60, 60, 1.0),
            _row("empty", 0, 0, 0.9, empty=1)]
    models = {"m": errors_by_size.read_per_image(_write(tmp_path / "m.csv", rows))}
    assert models["m"]["large-a"]["area"] == pytest.approx(0.4)
    assert models["m"]["small-hit"]["predicted"] == pytest.approx(0.12)  # (tp + fp) / 100
    table = errors_by_size.by_size(models, bins=2)
    small, large, overall = table
    assert small[2] == 2 and small[5] == "0.400" and small[-1] == "0.50"  # one of two missed
    assert small[6] == "0.400"  # recall: (0 + 0.8) / 2
    assert small[3] == "7.5 %" and small[4] == "16.0 %"  # truth (5 + 10) / 2, marked (20 + 12) / 2
    assert large[2] == 2 and large[5] == "0.800" and large[-1] == "0.00"
    assert large[3] == "50.0 %" and large[4] == "45.0 %"
    assert overall[1] == "all non-empty" and overall[2] == 4 and overall[5] == "0.600"


def test_the_first_csv_sets_the_groups_for_every_model(tmp_path):
    first = _write(tmp_path / "a.csv", [_row("x", 10, 10, 1.0), _row("y", 50, 50, 1.0)])
    second = _write(tmp_path / "b.csv", [_row("x", 10, 0, 0.0), _row("y", 50, 0, 0.0),
                                         _row("z", 90, 90, 1.0)])
    models = {"a": errors_by_size.read_per_image(first),
              "b": errors_by_size.read_per_image(second)}
    rows = [r for r in errors_by_size.by_size(models, bins=2) if r[0] == "b"]
    # the groups of "a" are [10 %, 10 %] and (10 %, 50 %]; "b"'s 90 % image goes to the last one
    assert [r[2] for r in rows] == [1, 2, 3]
    assert rows[0][-1] == "1.00" and rows[1][5] == "0.500"


def test_report_names_the_command_and_the_groups(tmp_path):
    path = _write(tmp_path / "per_image.csv", [_row("x", 10, 10, 1.0), _row("y", 50, 0, 0.0)])
    report = errors_by_size.run(errors_by_size.argparse.Namespace(csv=[path], bins=2))
    assert "errors_by_size.py" in report and f"{tmp_path.name}/per_image.csv" in report
    assert "| 10.0–10.0 % | 1 | 10.0 % | 10.0 % | 1.000 |" in report
    assert "| 10.0–50.0 % | 1 | 50.0 % | 0.0 % | 0.000 |" in report
    assert f"| {tmp_path.name}/per_image.csv | -1.00 |" in report  # marked 10 %, then 0 %


def test_area_correlation_tells_a_constant_blob_from_a_model_that_follows_the_truth(tmp_path):
    truths = [5, 10, 20, 40, 60]
    follows = [_row(f"i{t}", t, t, 1.0, fp=t // 5) for t in truths]  # marks 1.2 x the truth
    blob = [_row(f"i{t}", t, min(t, 15), 0.5, fp=max(0, 15 - t)) for t in truths]  # 15 px always
    follows_r = errors_by_size.area_correlation(
        errors_by_size.read_per_image(_write(tmp_path / "f.csv", follows)))
    blob_r = errors_by_size.area_correlation(
        errors_by_size.read_per_image(_write(tmp_path / "b.csv", blob)))
    assert follows_r == pytest.approx(1.0) and blob_r is None  # the blob's area is constant
    one = errors_by_size.read_per_image(_write(tmp_path / "one.csv", follows[:1]))
    assert errors_by_size.area_correlation(one) is None


def test_more_groups_than_images_and_bad_input_are_handled(tmp_path):
    path = _write(tmp_path / "one.csv", [_row("x", 10, 10, 1.0)])
    rows = errors_by_size.by_size({"m": errors_by_size.read_per_image(path)}, bins=3)
    assert [r[2] for r in rows] == [1, 0, 0, 1]  # the one image, two empty groups, the total
    assert rows[1][3:] == ["–"] * 6
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,dice\nx,0.5\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no column height"):
        errors_by_size.main([str(wrong)])
    with pytest.raises(SystemExit):
        errors_by_size.main([str(path), "--bins", "0"])
