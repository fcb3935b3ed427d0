"""A run's data found again: the dataset its ``split.json`` records, and the ids it validated on."""

from __future__ import annotations

import json
from pathlib import Path

from endoxai.data.archive import archive_suffix
from endoxai.data.layouts import DatasetIndex, find_dataset
from endoxai.data.splits import read_split, warn_if_changed
from endoxai.errors import UserError


def dataset_from_split(split_file: str | Path, data: str | Path | None = None) -> Path:
    """The dataset a run trained on: ``data`` if given, else the ``"dataset"`` recorded in the
    run's ``split.json``. A relative recorded path is relative to where training ran, so it is
    tried from the current folder, then from each folder above the split file. An archive member
    (``kvasir-seg.zip:Kvasir-SEG/``) means the archive. UserError if none exists."""
    if data is not None:
        return Path(data)
    split_file = Path(split_file)
    try:
        recorded = json.loads(split_file.read_text(encoding="utf-8")).get("dataset")
    except (OSError, ValueError, AttributeError) as err:
        raise UserError(f"cannot read {split_file}: {err}") from err
    if not isinstance(recorded, str) or not recorded:
        raise UserError(f"{split_file} records no dataset path: give --data")
    head, sep, _ = recorded.rpartition(":")
    if sep and archive_suffix(head):
        recorded = head
    path = Path(recorded).expanduser()
    candidates = [path] if path.is_absolute() else (
        [path] + [parent / path for parent in split_file.resolve().parents])
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UserError(f"{split_file} names the dataset {recorded}, which was not found (moved or "
                    "deleted?): pass --data with where the dataset is now")


def validation_set(
    data: str | Path | None, split_file: str | Path | None = None
) -> tuple[DatasetIndex, list[str]]:
    """(dataset, validation ids): the ``val`` ids of ``split_file`` (a run's ``split.json``) in
    ``data`` (default: the dataset recorded there), or without a split file the dataset's official
    validation list, or all its pairs. UserError for a missing dataset or a foreign split."""
    if split_file is not None:
        index = find_dataset(dataset_from_split(split_file, data))
        warn_if_changed(index, split_file)
        ids = read_split(Path(split_file))["val"]
        unknown = sorted(set(ids) - set(index.stems))
        if unknown:
            raise UserError(f"{split_file} names {len(unknown)} id(s) that are not pairs of "
                            f"{index.where} (e.g. {unknown[0]}); was it made for another dataset?")
        return index, ids
    if data is None:
        raise UserError("give a dataset (--data) or a run folder (--run)")
    index = find_dataset(data)
    return index, list(index.official_split["val"] if index.official_split else index.stems)
