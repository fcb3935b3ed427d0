"""Official archives read in memory: kvasir-seg.zip with a top folder, Kvasir-Instrument's nested
images.tar.gz / masks.tar.gz inside a .tar.gz or .zip, and unextracted nested archives in a
folder."""

import zipfile

import numpy as np
import pytest

from endoxai.data import find_dataset, load_arrays
from endoxai.errors import UserError


def assert_decoded_like_helpers(synth, arrays, stems):
    assert arrays.stems == stems and arrays.failures == []
    for k, stem in enumerate(stems):
        i = int(stem[2:])
        mean = arrays.images[k].float().mean(dim=(1, 2)).numpy()
        np.testing.assert_allclose(mean, synth.colour_of(i), atol=3)  # flat JPEG colour
        np.testing.assert_array_equal(arrays.masks[k, 0].numpy(), synth.mask_array())


def test_kvasir_seg_zip_with_top_folder_is_read_without_extracting(tmp_path, synth):
    archive = tmp_path / "kvasir-seg.zip"
    archive.write_bytes(synth.zip_bytes(synth.pair_files(4, "kvasir-seg", prefix="Kvasir-SEG/")))
    index = find_dataset(archive)
    assert index.layout == "kvasir-seg"
    assert index.root == "Kvasir-SEG"
    assert index.official_split == {"train": ["id000", "id001", "id002"], "val": ["id003"]}
    source, name = index.image_source("id001")
    assert isinstance(source, bytes) and name.endswith("kvasir-seg.zip:Kvasir-SEG/images/id001.jpg")
    arrays = load_arrays(index, ["id002", "id000"], synth.SIZE, progress=False)
    assert_decoded_like_helpers(synth, arrays, ["id002", "id000"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvasir-seg.zip"]  # nothing extracted


@pytest.mark.parametrize("outer", ["kvasir-instrument.tar.gz", "kvasir-instrument.zip"])
def test_kvasir_instrument_nested_archives(tmp_path, outer, synth):
    archive = tmp_path / outer
    members = synth.instrument_members(4)
    pack = synth.tar_bytes if outer.endswith(".tar.gz") else synth.zip_bytes
    archive.write_bytes(pack(members))
    index = find_dataset(archive)
    assert index.layout == "kvasir-instrument"
    assert index.root == "kvasir-instrument"
    assert index.stems == ["id000", "id001", "id002", "id003"]
    assert index.official_split == {"train": ["id000", "id001", "id002"], "val": ["id003"]}
    arrays = load_arrays(index, index.stems, synth.SIZE, progress=False)
    assert_decoded_like_helpers(synth, arrays, index.stems)
    assert sorted(p.name for p in tmp_path.iterdir()) == [outer]


def test_folder_with_unextracted_nested_archives(tmp_path, synth):
    # What a user has after unzipping kvasir-instrument.zip but not the tarballs inside.
    synth.write_files(tmp_path, synth.instrument_members(3, top=""))
    index = find_dataset(tmp_path)
    assert index.layout == "kvasir-instrument"
    assert index.stems == ["id000", "id001", "id002"]
    arrays = load_arrays(index, ["id001"], synth.SIZE, progress=False)
    assert_decoded_like_helpers(synth, arrays, ["id001"])


def test_flat_nested_archive_stands_for_its_folder(tmp_path, synth):
    files = synth.pair_files(2, "kvasir-instrument")
    flat_images = {k.split("/")[1]: v for k, v in files.items() if k.startswith("images/")}
    members = {k: v for k, v in files.items() if not k.startswith("images/")}
    members["images.tar.gz"] = synth.tar_bytes(flat_images)  # id000.jpg at the top, no folder
    archive = tmp_path / "data.tar"
    archive.write_bytes(synth.tar_bytes(members, mode="w"))
    assert find_dataset(archive).stems == ["id000", "id001"]


def test_corrupt_archive_is_a_user_error(tmp_path, synth):
    archive = tmp_path / "kvasir-seg.zip"
    archive.write_bytes(synth.zip_bytes(synth.pair_files(2, "kvasir-seg"))[:100])
    with pytest.raises(UserError, match="kvasir-seg.zip"):
        find_dataset(archive)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(UserError, match="neither a folder nor"):
        find_dataset(other)


def test_corrupt_member_of_a_zip_is_skipped_as_an_item_error(tmp_path, synth):
    archive = tmp_path / "kvasir-seg.zip"
    archive.write_bytes(synth.zip_bytes(synth.pair_files(3, "kvasir-seg")))
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images/id001.jpg")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(archive.read_bytes())
    data[start + 10] ^= 0xFF  # inside id001.jpg's compressed bytes
    archive.write_bytes(bytes(data))
    index = find_dataset(archive)
    arrays = load_arrays(index, index.stems, synth.SIZE, progress=False)
    assert arrays.stems == ["id000", "id002"]
    assert len(arrays.failures) == 1 and "kvasir-seg.zip:images/id001.jpg" in arrays.failures[0]
