"""Finding a run's dataset again from its split.json."""

from __future__ import annotations

import json

import pytest

from endoxai.data.run_split import dataset_from_split


def test_dataset_from_split(tmp_path, monkeypatch):
    data = tmp_path / "data" / "kvasir"
    data.mkdir(parents=True)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    split = run / "split.json"
    split.write_text(json.dumps({"dataset": "data/kvasir", "train": [], "val": []}))
    monkeypatch.chdir(run)  # the relative path is found from a folder above the split file
    assert dataset_from_split(split).resolve() == data.resolve()
    assert dataset_from_split(split, "elsewhere") == type(data)("elsewhere")
    split.write_text(json.dumps({"dataset": "nowhere/x.zip:Kvasir-SEG/", "train": [], "val": []}))
    with pytest.raises(Exception, match="nowhere/x.zip, which was not found"):
        dataset_from_split(split)
