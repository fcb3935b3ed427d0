"""`endoxai data check`: each kind of problem, injected alone into a clean synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest

from endoxai.cli import main
from endoxai.data.check import FATAL_KINDS, WARNING_KINDS, check_dataset
from endoxai.errors import UserError

N = 6  # pairs id000..id005; id005 is the validation id of the official lists


@pytest.fixture
def dataset(tmp_path, synth):
    """A clean Kvasir-SEG-like folder (JPEG images, PNG masks, train/val lists)."""
    files = synth.pair_files(N, "kvasir-seg")
    for i in range(N):  # PNG masks: exact 0/255, so that only injected problems show
        del files[f"masks/id{i:03d}.jpg"]
        files[f"masks/id{i:03d}.png"] = synth.mask_bytes("PNG")
    return synth.write_files(tmp_path / "data", files)


def _grey_png(synth, values: np.ndarray) -> bytes:
    return synth.encode(values.astype(np.uint8), "PNG")


def _mask(synth, fill: float | None = None, fraction: float = 1.0) -> np.ndarray:
    m = synth.mask_array().astype(np.uint8) * 255
    if fill is not None:
        flat = m.reshape(-1)
        flat[: int(round(fraction * flat.size))] = fill
    return m


# Each case: (what to do to the clean dataset, the one kind expected, a word of its message).
def _truncated_image(d, synth):
    path = d / "images" / "id001.jpg"
    path.write_bytes(path.read_bytes()[:100])


def _zero_byte_mask(d, synth):
    (d / "masks" / "id002.png").write_bytes(b"")


def _size_mismatch(d, synth):
    (d / "masks" / "id001.png").write_bytes(_grey_png(synth, np.zeros((40, 32))))


def _duplicate_name(d, synth):
    (d / "images" / "id001.png").write_bytes(synth.encode(synth.image_array(1), "PNG"))


def _mid_grey_mask(d, synth):
    (d / "masks" / "id001.png").write_bytes(_grey_png(synth, np.full((32, 32), 128)))


def _unpaired(d, synth):
    (d / "images" / "orphan.jpg").write_bytes(synth.encode(synth.image_array(7), "JPEG"))


def _ignored(d, synth):
    (d / "masks" / "notes.txt").write_text("annotator notes")


def _soft_edges(d, synth):
    (d / "masks" / "id001.png").write_bytes(_grey_png(synth, _mask(synth, 128, 0.1)))


def _black_mask(d, synth):
    (d / "masks" / "id001.png").write_bytes(_grey_png(synth, np.zeros((32, 32))))


def _full_mask(d, synth):
    (d / "masks" / "id001.png").write_bytes(_grey_png(synth, np.full((32, 32), 255)))


def _tiny_image(d, synth):
    (d / "images" / "id001.jpg").write_bytes(synth.encode(synth.image_array(1, 8), "JPEG"))
    (d / "masks" / "id001.png").write_bytes(synth.mask_bytes("PNG", 8))


def _duplicate_image(d, synth):
    (d / "images" / "id005.jpg").write_bytes((d / "images" / "id000.jpg").read_bytes())


def _split_unknown(d, synth):
    with open(d / "train.txt", "a") as f:
        f.write("ghost\n")


def _split_unlisted(d, synth):
    (d / "images" / "extra.jpg").write_bytes(synth.encode(synth.image_array(8), "JPEG"))
    (d / "masks" / "extra.png").write_bytes(synth.mask_bytes("PNG"))


CASES = {
    "truncated image": (_truncated_image, "unreadable", "id001.jpg"),
    "zero-byte mask": (_zero_byte_mask, "unreadable", "id002.png"),
    "size mismatch": (_size_mismatch, "size-mismatch", "32x40"),
    "a.jpg + a.png": (_duplicate_name, "duplicate-name", "id001.jpg + id001.png"),
    "all mid-grey mask": (_mid_grey_mask, "not-a-mask", "100%"),
    "image without mask": (_unpaired, "unpaired", "orphan.jpg"),
    "text file in masks/": (_ignored, "ignored-file", "notes.txt"),
    "10% grey mask": (_soft_edges, "non-binary", "10.0%"),
    "black mask": (_black_mask, "empty-mask", "no foreground"),
    "white mask": (_full_mask, "full-mask", "every pixel"),
    "8x8 image": (_tiny_image, "tiny-image", "8x8"),
    "same bytes in train and val": (_duplicate_image, "duplicate-image", "inflated"),
    "split list names a ghost": (_split_unknown, "split-unknown-id", "ghost"),
    "pair in no list": (_split_unlisted, "split-unlisted", "extra.jpg"),
}


def test_a_clean_dataset_has_no_problem(dataset):
    report = check_dataset(dataset, progress=False)
    assert report.pairs == N and report.problems == []
    assert report.lines() == [f"{dataset}: {N} pair(s) checked, 0 error(s), 0 warning(s): "
                              "usable for training"]


@pytest.mark.parametrize("case", CASES)
def test_each_problem_is_found_alone_with_its_severity(dataset, synth, case):
    inject, kind, word = CASES[case]
    inject(dataset, synth)
    report = check_dataset(dataset, progress=False)
    assert [p.kind for p in report.problems] == [kind]
    problem = report.problems[0]
    assert word in problem.message and "\n" not in problem.message
    assert problem.fatal == (kind in FATAL_KINDS)
    assert bool(report.errors) == problem.fatal


def test_every_documented_kind_is_exercised():
    assert {kind for _, kind, _ in CASES.values()} == set(FATAL_KINDS + WARNING_KINDS)


def test_a_colour_mask_that_would_read_as_empty_is_not_a_mask(dataset, synth):
    red = np.zeros((32, 32, 3), np.uint8)
    red[:, :16] = (255, 0, 0)  # luma 76: dark grey, below the 127.5 threshold
    (dataset / "masks" / "id001.png").write_bytes(synth.encode(red, "PNG"))
    (problem,) = check_dataset(dataset, progress=False).problems
    assert problem.kind == "not-a-mask" and "0 and 76, are both below 127.5" in problem.message


def test_empty_mask_that_is_not_black_gets_a_hint(dataset, synth):
    ones = np.zeros((32, 32), np.uint8)
    ones[:, :16] = 3  # a 0/1 mask saved as JPEG and brightened by its noise
    (dataset / "masks" / "id001.png").write_bytes(_grey_png(synth, ones))
    (problem,) = check_dataset(dataset, progress=False).problems
    assert problem.kind == "empty-mask" and "not black (values up to 3)" in problem.message


def test_a_photograph_with_under_half_mid_grey_is_not_a_mask(dataset, synth):
    # Dark and bright pixels of all shades, 40 % mid-grey: many grey levels, not two.
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(0, 32, 307), rng.integers(224, 256, 307),
                             rng.integers(33, 223, 410)])
    (dataset / "masks" / "id001.png").write_bytes(
        _grey_png(synth, rng.permutation(values).reshape(32, 32)))
    (problem,) = check_dataset(dataset, progress=False).problems
    assert problem.kind == "not-a-mask" and "not two-valued" in problem.message


# The Kvasir-SEG photographs whose grey values are less than half mid-grey (32..223).
DARK_OR_BRIGHT_PHOTOS = ("cju2saez63gxl08559ucjq3kt", "cju35740hzm0g0993zl5ic246",
                         "ck2bxlujamu330725szlc2jdu")


def test_every_kvasir_photograph_given_as_a_mask_is_not_a_mask(kvasir_seg, tmp_path):
    folder = tmp_path / "photos"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for stem in DARK_OR_BRIGHT_PHOTOS:
        photo = (kvasir_seg / "images" / f"{stem}.jpg").read_bytes()
        (folder / "images" / f"{stem}.jpg").write_bytes(photo)
        (folder / "masks" / f"{stem}.jpg").write_bytes(photo)
    report = check_dataset(folder, progress=False)
    kinds = {p.kind for p in report.problems}
    assert report.pairs == 3 and len(report.errors) == 3 and kinds <= {"not-a-mask",
                                                                       "split-unlisted"}


def test_zero_one_masks_are_fine(dataset, synth):
    (dataset / "masks" / "id001.png").write_bytes(_grey_png(synth, synth.mask_array()))
    assert check_dataset(dataset, progress=False).problems == []


def test_all_problems_are_listed_together(dataset, synth):
    together = ("truncated image", "zero-byte mask", "a.jpg + a.png", "image without mask",
                "text file in masks/", "same bytes in train and val", "split list names a ghost",
                "pair in no list")
    for case in together:
        CASES[case][0](dataset, synth)
    report = check_dataset(dataset, progress=False)
    kinds = [p.kind for p in report.problems]
    assert sorted(kinds) == sorted(CASES[case][1] for case in together)
    with pytest.raises(UserError, match=r"found 3 error\(s\).*endoxai data check"):
        report.raise_if_fatal()


def test_problems_inside_an_archive_name_the_member(tmp_path, synth):
    files = synth.pair_files(3, "kvasir-seg", prefix="Kvasir-SEG/")
    files["Kvasir-SEG/images/id001.jpg"] = b"<html>not found</html>"
    archive = tmp_path / "kvasir-seg.zip"
    archive.write_bytes(synth.zip_bytes(files))
    (problem,) = check_dataset(archive, progress=False).errors
    assert problem.kind == "unreadable"
    assert f"{archive}:Kvasir-SEG/images/id001.jpg" in problem.message


def test_structural_problems_are_user_errors(tmp_path, synth):
    with pytest.raises(UserError, match="not found"):
        check_dataset(tmp_path / "missing", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no dataset found"):
        check_dataset(tmp_path / "empty", progress=False)
    files = synth.pair_files(3, "kvasir-seg")
    files["val.txt"] = b"id000\n"  # also in train.txt
    with pytest.raises(UserError, match="in both"):
        check_dataset(synth.write_files(tmp_path / "both", files), progress=False)


def test_cli_exit_codes_and_one_line_per_problem(dataset, synth, tmp_path, capsys):
    assert main(["data", "check", str(dataset)]) == 0
    assert "usable for training" in capsys.readouterr().out

    _unpaired(dataset, synth)
    assert main(["data", "check", str(dataset)]) == 0  # warnings only
    capsys.readouterr()
    _truncated_image(dataset, synth)
    assert main(["data", "check", str(dataset)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("error") and "unreadable" in lines[0]  # errors first
    assert lines[1].startswith("warning") and "unpaired" in lines[1]
    assert "1 error(s), 1 warning(s): training refuses this dataset" in lines[-1]

    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
