"""The whole product through its command line: train -> predict -> evaluate -> explain."""

import json

import numpy as np
import pytest
from PIL import Image

from endoxai.cli import build_parser, main

pytestmark = pytest.mark.slow


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"train", "predict", "evaluate", "explain", "data"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: endoxai" in capsys.readouterr().out


def test_train_predict_evaluate_explain(pair_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(pair_folder), "--out", str(run), "--epochs", "1",
                 "--batch-size", "3", "--precision", "fp32", "--no-progress"]) == 0
    assert (run / "best.pt").is_file()

    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input",
                 str(pair_folder / "images"), "--output", str(pred), "--no-progress"]) == 0
    for image in (pair_folder / "images").iterdir():
        mask = np.asarray(Image.open(pred / f"{image.stem}.png"))
        assert mask.shape == np.asarray(Image.open(image)).shape[:2]  # original size
        assert set(np.unique(mask)) <= {0, 255}

    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(pair_folder / "masks"),
                 "--output", str(metrics)]) == 0
    summary = json.loads(metrics.read_text())
    assert summary["medai"]["n_images"] == 6
    assert 0 <= summary["medai"]["dice"] <= 1

    out = tmp_path / "explain"
    image = sorted((pair_folder / "images").iterdir())[0]
    assert main(["explain", "--checkpoint", str(run / "best.pt"), "--input", str(image),
                 "--output", str(out)]) == 0
    assert (out / f"{image.stem}.npz").is_file()


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    code = main(["predict", "--checkpoint", str(tmp_path / "missing.pt"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_reports_unreadable_files_and_exits_1(pair_folder, tmp_path, capsys):
    assert main(["train", "--data", str(pair_folder), "--out", str(tmp_path / "run"), "--epochs",
                 "1", "--batch-size", "6", "--precision", "fp32", "--no-progress"]) == 0
    images = tmp_path / "in"
    images.mkdir()
    (images / "bad.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (40, 30)).save(images / "good.png")
    code = main(["predict", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--input", str(images),
                 "--output", str(tmp_path / "out"), "--no-progress"])
    assert code == 1
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bad.png").exists()
    assert "bad.jpg" in capsys.readouterr().err
