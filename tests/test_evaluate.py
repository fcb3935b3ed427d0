"""`endoxai evaluate`: folder pairing, errors, outputs (JSON/CSV/table) and the CLI."""

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endoxai.cli import main
from endoxai.errors import UserError
from endoxai.evaluate import (
    default_csv_path,
    evaluate_folders,
    format_table,
    write_metrics_json,
    write_per_image_csv,
)

SIX = ["accuracy", "jaccard", "dice", "f1", "recall", "precision"]


def _save(path: Path, mask: np.ndarray, scale: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * scale).save(path)


def _block(r0, r1, c0, c1, shape=(4, 5)):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


@pytest.fixture
def folders(tmp_path):
    """a: tp 2, fp 4, fn 4, tn 10; b: both empty; c: perfect, prediction a 0/1 PNG."""
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    _save(truth / "a.png", _block(0, 2, 0, 3))
    _save(pred / "a.PNG", _block(1, 3, 1, 4))
    _save(truth / "b.png", np.zeros((4, 5), bool))
    _save(pred / "b.png", np.zeros((4, 5), bool))
    _save(truth / "c.png", _block(1, 4, 0, 2))
    _save(pred / "c.png", _block(1, 4, 0, 2), scale=1)
    (pred / "notes.txt").write_text("not a mask")
    return pred, truth


def test_scores_match_hand_computation(folders):
    pred, truth = folders
    result = evaluate_folders(pred, truth, progress=False)
    rows = {r.name: r for r in result.per_image}
    assert list(rows) == ["a", "b", "c"]
    a = rows["a"]
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 4, 4, 10)
    assert (a.height, a.width, a.pred_file, a.truth_file) == (4, 5, "a.PNG", "a.png")
    assert a.dice == pytest.approx(4 / 12) and a.precision == pytest.approx(2 / 6)
    assert rows["b"].empty_truth and rows["b"].dice == 1.0
    assert math.isnan(rows["b"].nnunet_dice)
    assert rows["c"].dice == 1.0 and rows["c"].tp == 6
    s = result.summary
    assert s["medai"]["dice"] == pytest.approx((4 / 12 + 1 + 1) / 3)
    assert s["medai"]["accuracy"] == pytest.approx((12 / 20 + 1 + 1) / 3)
    assert s["pooled"]["dice"] == pytest.approx(2 * 8 / (2 * 8 + 4 + 4))
    assert s["nnunet"]["dice"] == pytest.approx((4 / 12 + 1) / 2)
    assert s["nnunet"]["n_images"] == 2 and s["medai"]["n_images"] == 3


def test_missing_and_extra_files_are_named(folders):
    pred, truth = folders
    (pred / "c.png").unlink()
    _save(pred / "zzz.png", np.zeros((4, 5), bool))
    with pytest.raises(UserError) as err:
        evaluate_folders(pred, truth, progress=False)
    msg = str(err.value)
    assert "no prediction: c" in msg and "no truth mask: zzz" in msg
    assert "\n" not in msg and "--ids" not in msg


def test_predicting_a_subset_points_at_ids(folders):
    # predictions for some images, the truth folder of all: --ids scores just those
    pred, truth = folders
    (pred / "c.png").unlink()
    with pytest.raises(UserError, match=r"no prediction: c \(to score only the predicted images, "
                                        r"list them with --ids"):
        evaluate_folders(pred, truth, progress=False)


def test_long_lists_are_truncated(tmp_path):
    for i in range(15):
        _save(tmp_path / "truth" / f"m{i:02d}.png", np.zeros((2, 2), bool))
    _save(tmp_path / "pred" / "m00.png", np.zeros((2, 2), bool))
    with pytest.raises(UserError, match=r"14 truth mask.*m01, .*m10, \.\.\. and 4 more"):
        evaluate_folders(tmp_path / "pred", tmp_path / "truth", progress=False)


def test_duplicate_stem_is_an_error(folders):
    pred, truth = folders
    _save(pred / "a.jpg", _block(1, 3, 1, 4))
    with pytest.raises(UserError, match=r"prediction folder .* same name: a \(a\.PNG \+ a\.jpg\)"):
        evaluate_folders(pred, truth, progress=False)


def test_size_mismatch_names_the_file_and_never_resizes(folders):
    pred, truth = folders
    _save(pred / "b.png", np.zeros((8, 10), bool))
    with pytest.raises(UserError,
                       match=r"b\.png: prediction is 10x8 \(WxH\) but truth b\.png is 5x4"):
        evaluate_folders(pred, truth, progress=False)


def test_unreadable_mask_is_named(folders):
    pred, truth = folders
    (pred / "c.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"1 of 3 mask pairs .*c\.png"):
        evaluate_folders(pred, truth, progress=False)


def test_missing_or_empty_folder(tmp_path, folders):
    pred, truth = folders
    with pytest.raises(UserError, match="prediction folder not found"):
        evaluate_folders(tmp_path / "nope", truth, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no masks"):
        evaluate_folders(pred, tmp_path / "empty", progress=False)


def test_json_has_exactly_the_public_keys_and_nan_as_null(tmp_path):
    for name in ("x", "y"):
        _save(tmp_path / "t" / f"{name}.png", np.zeros((3, 3), bool))
    result = evaluate_folders(tmp_path / "t", tmp_path / "t", progress=False)
    out = tmp_path / "out" / "metrics.json"
    write_metrics_json(result, out)
    data = json.loads(out.read_text())
    assert set(data) == {"medai", "pooled", "nnunet"}
    assert set(data["medai"]) == set(SIX) | {"n_images"}
    assert set(data["pooled"]) == set(SIX) | {"n_images"}
    assert set(data["nnunet"]) == {"dice", "jaccard", "n_images"}
    assert data["medai"]["dice"] == 1.0 and data["medai"]["n_images"] == 2
    assert data["nnunet"] == {"dice": None, "jaccard": None, "n_images": 0}
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temp file left


def test_csv_rows_and_table(folders, tmp_path):
    result = evaluate_folders(*folders, progress=False)
    path = tmp_path / "per_image.csv"
    write_per_image_csv(result, path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert float(rows[0]["dice"]) == pytest.approx(4 / 12)
    assert rows[1]["empty_truth"] == "1" and math.isnan(float(rows[1]["nnunet_dice"]))
    assert int(rows[0]["fp"]) == 4
    table = format_table(result)
    dice_line = next(line for line in table.splitlines() if line.startswith("dice"))
    assert dice_line.split()[1:] == [f"{result.summary[p]['dice']:.4f}"
                                     for p in ("medai", "pooled", "nnunet")]
    assert "3 images (1 with empty truth)" in table


def test_default_csv_path():
    assert default_csv_path(Path("runs/metrics.json")) == Path("runs/metrics_per_image.csv")


def test_cli_writes_json_and_default_csv(folders, tmp_path, capsys):
    pred, truth = folders
    out = tmp_path / "res" / "m.json"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["medai"]["n_images"] == 3
    assert (tmp_path / "res" / "m_per_image.csv").exists()
    stdout = capsys.readouterr().out
    assert "medai" in stdout and "pooled" in stdout and "nnunet" in stdout



def test_cli_output_read_by_a_reader_that_stops_early(folders, tmp_path):
    # `endoxai evaluate ... | head -1`: the files are written, no traceback, exit 141
    pred, truth = folders
    out = tmp_path / "m.json"
    proc = subprocess.Popen([sys.executable, "-m", "endoxai", "evaluate", "--pred", str(pred),
                             "--truth", str(truth), "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the table is printed
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert json.loads(out.read_text())["medai"]["n_images"] == 3
    assert (tmp_path / "m_per_image.csv").exists()


def test_cli_csv_only(folders, tmp_path):
    pred, truth = folders
    path = tmp_path / "only.csv"
    argv = ["-q", "evaluate", "--pred", str(pred), "--truth", str(truth), "--csv", str(path)]
    assert main(argv) == 0
    assert path.exists() and len(path.read_text().splitlines()) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.csv", "pred", "truth"]


def test_cli_missing_folder_exits_2_with_one_line(tmp_path, capsys):
    code = main(["evaluate", "--pred", str(tmp_path / "nope"), "--truth", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "prediction folder not found" in err and "nope" in err


def test_real_kvasir_masks_against_themselves(kvasir_seg, tmp_path):
    masks = sorted((kvasir_seg / "masks").glob("*.jpg"))[:5]
    for m in masks:
        shutil.copy(m, tmp_path / m.name)
    result = evaluate_folders(tmp_path, tmp_path, progress=False)
    assert result.summary["medai"]["n_images"] == 5
    for protocol in ("medai", "pooled", "nnunet"):
        assert result.summary[protocol]["dice"] == 1.0
    assert all(r.tp > 0 and r.fp == 0 and r.fn == 0 for r in result.per_image)


def test_ids_restrict_the_scored_stems(folders, tmp_path, capsys):
    pred, truth = folders
    (pred / "c.png").unlink()  # c is not listed, so its missing prediction is no error
    ids = tmp_path / "val.txt"
    ids.write_text("a\n\nb\n")
    result = evaluate_folders(pred, truth, progress=False, ids=["a", "b"])
    assert [r.name for r in result.per_image] == ["a", "b"]
    assert result.summary["medai"]["dice"] == pytest.approx((4 / 12 + 1) / 2)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--ids", str(ids)]) == 0
    ids.write_text("a\nc\n")  # c is listed but has no prediction: named in one line, exit 2
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--ids", str(ids)]) == 2
    err = capsys.readouterr().err
    assert "not found in the predictions" in err and ": c" in err


def _photo_folder(folder: Path, n: int, size=(60, 80)) -> None:
    """Colour photograph-like JPEGs: smooth shading plus texture (what --truth IMAGES gives)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size[0], :size[1]] / max(size)
    for i in range(n):
        base = np.stack([150 + 80 * np.sin(3 * xx + i), 90 + 60 * np.cos(4 * yy),
                         70 + 40 * np.sin(5 * (xx + yy))], axis=-1)
        image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"case{i}.jpg", quality=90)


def test_photographs_as_truth_are_refused_and_force_scores_them(tmp_path, capsys):
    pred, truth = tmp_path / "pred", tmp_path / "images"
    _photo_folder(truth, 3)
    for i in range(3):
        _save(pred / f"case{i}.png", _block(10, 40, 10, 50, shape=(60, 80)))
    with pytest.raises(UserError, match=r"3 of 3 truth files are not binary masks, e\.g\. .*"
                                        r"case0\.jpg: a colour image; its grey values are spread"):
        evaluate_folders(pred, truth, progress=False)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is --truth a folder of masks?" in err[0] and "--force" in err[0]
    forced = evaluate_folders(pred, truth, progress=False, force=True)
    assert forced.summary["medai"]["n_images"] == 3
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--force"]) == 0


def test_a_soft_prediction_is_refused(folders):
    pred, truth = folders
    ramp = np.tile(np.linspace(0, 255, 5), (4, 1)).astype(np.uint8)  # a probability map
    Image.fromarray(ramp).save(pred / "b.png")
    with pytest.raises(UserError, match=r"1 of 3 prediction files are not binary masks, e\.g\. "
                                        r".*b\.png: .*; is --pred a folder of masks\?"):
        evaluate_folders(pred, truth, progress=False)


def test_real_kvasir_images_given_as_truth_are_refused(kvasir_seg, tmp_path):
    # The mistake that scored Dice 0.449 instead of 0.183: --truth pointed at images/.
    masks, images = kvasir_seg / "masks", kvasir_seg / "images"
    stems = [p.stem for p in sorted(masks.glob("*.jpg"))[:6]]
    for stem in stems:
        shutil.copy(masks / f"{stem}.jpg", tmp_path / f"{stem}.jpg")
    ids = stems
    with pytest.raises(UserError, match="6 of 6 truth files are not binary masks"):
        evaluate_folders(tmp_path, images, progress=False, ids=ids)
    # the real JPEG masks (noise near 0 and 255) are masks, as truth and as prediction
    assert evaluate_folders(tmp_path, masks, ids=ids, progress=False).summary[
        "medai"]["dice"] == 1.0
