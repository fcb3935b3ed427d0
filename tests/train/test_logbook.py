"""The epoch log's time left, and history.csv with the columns of every row."""

import csv

import pytest

from endoxai.train.logbook import time_left, write_history


@pytest.mark.parametrize("seconds, epochs_left, expected", [
    ([10.0, 20.0, 30.0, 100.0], 2, ", about 100 s left"),  # the last three epochs' mean: 50 s
    ([60.0], 10, ", about 10 min left"),
    ([250.0, 250.0, 250.0], 80, ", about 5.6 h left"),
    ([250.0], 0, ""),
    ([], 5, ""),
])
def test_time_left_from_the_recent_epochs(seconds, epochs_left, expected):
    assert time_left(seconds, epochs_left) == expected


def test_history_keeps_every_column_any_row_has(tmp_path):
    rows = [{"epoch": 1, "val_dice": 0.5}, {"epoch": 2, "val_dice": 0.6, "fit_dice": 0.7}]
    write_history(tmp_path / "history.csv", rows)
    with open(tmp_path / "history.csv", newline="") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == ["epoch", "val_dice", "fit_dice"]
    assert read[0]["fit_dice"] == "" and read[1]["fit_dice"] == "0.7"
