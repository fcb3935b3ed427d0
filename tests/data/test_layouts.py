"""Layout detection, pairing and official split lists on synthetic folders."""

from pathlib import Path

import numpy as np
import pytest

from endoxai.data import find_dataset, list_inputs
from endoxai.errors import UserError


def test_kvasir_seg_folder_with_official_split(tmp_path, synth):
    synth.write_files(tmp_path, synth.pair_files(5, "kvasir-seg"))
    index = find_dataset(tmp_path)
    assert index.layout == "kvasir-seg"
    assert index.stems == ["id000", "id001", "id002", "id003", "id004"]
    assert index.official_split == {"train": ["id000", "id001", "id002", "id003"],
                                    "val": ["id004"]}
    assert index.unpaired == []


def test_kvasir_seg_without_lists_has_no_official_split(tmp_path, synth):
    files = {k: v for k, v in synth.pair_files(3, "kvasir-seg").items() if not k.endswith(".txt")}
    index = find_dataset(synth.write_files(tmp_path, files))
    assert index.layout == "kvasir-seg"
    assert index.official_split is None


def test_kvasir_instrument_folder_uses_test_list_as_val(tmp_path, synth):
    synth.write_files(tmp_path, synth.pair_files(4, "kvasir-instrument"))
    index = find_dataset(tmp_path)
    assert index.layout == "kvasir-instrument"
    assert index.official_split == {"train": ["id000", "id001", "id002"], "val": ["id003"]}


def test_folder_pair_with_other_names_pairs_by_stem_and_reports_unpaired(tmp_path, synth):
    synth.write_files(tmp_path, {
        "img/a.jpg": synth.encode(synth.image_array(0), "JPEG"),
        "img/b.png": synth.encode(synth.image_array(1), "PNG"),
        "img/only_image.jpg": synth.encode(synth.image_array(2), "JPEG"),
        "img/notes.csv": b"not an image",
        "label/a.png": synth.mask_bytes("PNG"),
        "label/b.bmp": synth.encode(np.zeros((32, 32), np.uint8), "BMP"),
        "label/only_mask.png": synth.mask_bytes("PNG"),
    })
    index = find_dataset(tmp_path)
    assert index.layout == "folder-pair"
    assert index.stems == ["a", "b"]
    assert index.masks["b"] == "label/b.bmp"
    assert sorted(Path(u).name for u in index.unpaired) == ["only_image.jpg", "only_mask.png"]
    assert index.official_split is None


def test_dataset_found_below_the_given_folder(tmp_path, synth):
    synth.write_files(tmp_path / "downloads" / "Kvasir-SEG", synth.pair_files(3, "kvasir-seg"))
    index = find_dataset(tmp_path)
    assert index.root == "downloads/Kvasir-SEG"
    assert index.layout == "kvasir-seg"
    assert len(index.stems) == 3


def test_two_datasets_side_by_side_is_an_error_naming_both(tmp_path, synth):
    synth.write_files(tmp_path / "one", synth.pair_files(2, "kvasir-seg"))
    synth.write_files(tmp_path / "two", synth.pair_files(2, "kvasir-seg"))
    with pytest.raises(UserError, match="several datasets") as err:
        find_dataset(tmp_path)
    assert "one" in str(err.value) and "two" in str(err.value)


def test_masks_without_images_is_a_clear_error(tmp_path, synth):
    files = {k: v for k, v in synth.pair_files(3, "kvasir-instrument").items()
             if not k.startswith("images/")}
    synth.write_files(tmp_path, files)
    with pytest.raises(UserError, match="3 mask.*no image folder"):
        find_dataset(tmp_path)


def test_images_without_masks_is_a_clear_error(tmp_path, synth):
    files = {k: v for k, v in synth.pair_files(2, "kvasir-seg").items() if k.startswith("images/")}
    synth.write_files(tmp_path, files)
    with pytest.raises(UserError, match="no mask folder"):
        find_dataset(tmp_path)


def test_missing_path_and_empty_folder(tmp_path, synth):
    with pytest.raises(UserError, match="not found"):
        find_dataset(tmp_path / "nope")
    with pytest.raises(UserError, match="no dataset found"):
        find_dataset(tmp_path)


def test_no_common_stem_is_an_error(tmp_path, synth):
    synth.write_files(tmp_path, {"images/a.jpg": synth.encode(synth.image_array(0), "JPEG"),
                           "masks/a_mask.png": synth.mask_bytes("PNG")})
    with pytest.raises(UserError, match="no image has a mask with the same name"):
        find_dataset(tmp_path)


def test_split_lists_tolerate_extensions_and_reject_overlap(tmp_path, synth):
    files = synth.pair_files(3, "kvasir-seg")
    files["train.txt"] = b"id000.jpg\nid001\n\n"
    files["val.txt"] = b"id002.jpg\n"
    synth.write_files(tmp_path, files)
    assert find_dataset(tmp_path).official_split == {"train": ["id000", "id001"],
                                                     "val": ["id002"]}
    (tmp_path / "val.txt").write_text("id002\nid001\n")
    with pytest.raises(UserError, match="in both"):
        find_dataset(tmp_path)


def test_split_lists_naming_no_pair_are_an_error(tmp_path, synth):
    files = synth.pair_files(3, "kvasir-seg")
    files["val.txt"] = b"somebody_else\n"
    synth.write_files(tmp_path, files)
    with pytest.raises(UserError, match="name none of"):
        find_dataset(tmp_path)


def test_list_inputs(tmp_path, synth):
    synth.write_files(tmp_path, synth.pair_files(2, "kvasir-seg"))
    image = tmp_path / "images" / "id000.jpg"
    assert list_inputs(image) == [image]
    assert list_inputs(tmp_path / "images") == [image, tmp_path / "images" / "id001.jpg"]
    with pytest.raises(UserError, match="did you mean"):
        list_inputs(tmp_path)
    with pytest.raises(UserError, match="not an image"):
        list_inputs(tmp_path / "train.txt")
    with pytest.raises(UserError, match="not found"):
        list_inputs(tmp_path / "missing.jpg")
