"""Seeded and official splits, written to and reused from run_dir/split.json."""

import json

import pytest

from endoxai.data import find_dataset, read_split, resolve_split, seeded_split, write_split
from endoxai.errors import UserError

STEMS = [f"case{i:02d}" for i in range(50)]


def test_seeded_split_sizes_and_partition():
    split = seeded_split(STEMS, 0.2, seed=0)
    assert len(split["val"]) == 10 and len(split["train"]) == 40
    assert set(split["train"]) | set(split["val"]) == set(STEMS)
    assert not set(split["train"]) & set(split["val"])
    assert split["train"] == sorted(split["train"])


def test_seeded_split_is_reproducible_and_depends_on_seed_not_order():
    a = seeded_split(STEMS, 0.2, seed=3)
    assert a == seeded_split(list(reversed(STEMS)), 0.2, seed=3)
    assert a != seeded_split(STEMS, 0.2, seed=4)


def test_seeded_split_keeps_one_item_on_each_side():
    for fraction in (0.01, 0.9):
        split = seeded_split(["a", "b"], fraction, 0)
        assert len(split["train"]) == 1 and len(split["val"]) == 1
    with pytest.raises(UserError, match="at least 2"):
        seeded_split(["a"], 0.5, 0)


def _folder_pair(tmp_path, synth, n=10):
    files = {k: v for k, v in synth.pair_files(n, "kvasir-seg").items() if not k.endswith(".txt")}
    return find_dataset(synth.write_files(tmp_path / "data", files))


def test_resolve_split_writes_seeded_split_and_reuses_it(tmp_path, synth):
    index = _folder_pair(tmp_path, synth)
    run = tmp_path / "run"
    first = resolve_split(index, 0.3, seed=1, run_dir=run)
    assert first == seeded_split(index.stems, 0.3, seed=1)
    saved = json.loads((run / "split.json").read_text())
    assert saved["source"] == "seeded" and saved["seed"] == 1
    assert saved["train"] == first["train"] and saved["val"] == first["val"]
    # A resumed run with another seed keeps the saved split.
    assert resolve_split(index, 0.5, seed=99, run_dir=run) == first
    assert seeded_split(index.stems, 0.5, seed=99) != first


def test_resolve_split_prefers_official_split(tmp_path, synth):
    index = find_dataset(synth.write_files(tmp_path / "data", synth.pair_files(5, "kvasir-seg")))
    split = resolve_split(index, 0.5, seed=0, run_dir=tmp_path / "run")
    assert split == {"train": ["id000", "id001", "id002", "id003"], "val": ["id004"]}
    assert json.loads((tmp_path / "run" / "split.json").read_text())["source"] == "official"
    assert resolve_split(index, 0.5, seed=0, run_dir=None) == split


def test_reused_split_must_match_the_dataset(tmp_path, synth):
    index = _folder_pair(tmp_path, synth)
    write_split(tmp_path / "run" / "split.json", {"train": ["id000", "other"], "val": ["id001"]})
    with pytest.raises(UserError, match="not pairs of"):
        resolve_split(index, 0.3, seed=0, run_dir=tmp_path / "run")


def test_read_split_rejects_bad_files(tmp_path):
    path = tmp_path / "split.json"
    with pytest.raises(UserError, match="not found"):
        read_split(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        read_split(path)
    path.write_text(json.dumps({"train": ["a"]}))
    with pytest.raises(UserError, match="'train' and 'val'"):
        read_split(path)
    path.write_text(json.dumps({"train": ["a", "b"], "val": ["b"]}))
    with pytest.raises(UserError, match="both"):
        read_split(path)


def test_a_given_split_file_is_used_and_copied_into_the_run(tmp_path, synth):
    index = _folder_pair(tmp_path, synth)
    given = {"train": ["id000", "id001", "id002"], "val": ["id003"]}
    write_split(tmp_path / "mine.json", given)
    run = tmp_path / "run"
    assert resolve_split(index, 0.3, 0, run_dir=run, split_file=tmp_path / "mine.json") == given
    assert read_split(run / "split.json") == given
    assert resolve_split(index, 0.3, 0, run_dir=run) == given  # resume
    write_split(tmp_path / "other.json", {"train": ["id000"], "val": ["id001"]})
    with pytest.raises(UserError, match="different split"):
        resolve_split(index, 0.3, 0, run_dir=run, split_file=tmp_path / "other.json")


def test_read_id_file(tmp_path):
    from endoxai.data.splits import read_id_file, select_ids

    path = tmp_path / "val.txt"
    path.write_text("abc\n\n  def  \nghi.jpg\n")
    assert read_id_file(path) == ["abc", "def", "ghi"]
    path.write_text("\n\n")
    with pytest.raises(UserError, match="no ids"):
        read_id_file(path)
    with pytest.raises(UserError, match="cannot read"):
        read_id_file(tmp_path / "missing.txt")
    assert select_ids({"a": 1, "b": 2, "c": 3}, ["c", "a"], "x") == {"a": 1, "c": 3}
    with pytest.raises(UserError, match="2 listed id"):
        select_ids({"a": 1}, ["a", "q", "r"], "x")


def test_split_json_records_the_absolute_dataset_and_its_checksum(pair_folder, tmp_path,
                                                                   monkeypatch):
    import shutil
    import zipfile

    from endoxai.data.splits import dataset_checksum

    monkeypatch.chdir(pair_folder.parent)
    index = find_dataset(pair_folder.name)  # a relative path, as typed
    resolve_split(index, 0.34, seed=0, run_dir=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "split.json").read_text())
    assert meta["dataset"] == str(pair_folder.resolve())
    checksum = meta["checksum"]
    assert checksum == dataset_checksum(index) and checksum.startswith("sha256:")

    copy = shutil.copytree(pair_folder, tmp_path / "moved" / "data")  # moved: same checksum
    assert dataset_checksum(find_dataset(copy)) == checksum
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(copy.rglob("*.*")):
            zf.write(path, f"Kvasir/{path.relative_to(copy).as_posix()}")
    zipped = find_dataset(archive)
    assert dataset_checksum(zipped) == checksum  # the same files inside an archive
    resolve_split(zipped, 0.34, seed=0, run_dir=tmp_path / "zrun")
    recorded = json.loads((tmp_path / "zrun" / "split.json").read_text())["dataset"]
    assert recorded == f"{archive.resolve()}:Kvasir"

    (copy / "masks" / "case0.png").write_bytes((copy / "masks" / "case0.png").read_bytes() + b"\0")
    assert dataset_checksum(find_dataset(copy)) != checksum  # a file of another size
    (copy / "masks" / "case0.png").unlink()
    (copy / "images" / "case0.jpg").unlink()
    assert dataset_checksum(find_dataset(copy)) != checksum  # a pair fewer
