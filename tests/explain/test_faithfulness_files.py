"""Faithfulness files and the evaluate-explanations command on a random Table-1 generator."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from endoxai.cli import main
from endoxai.explain.faithfulness import FaithfulnessSettings, evaluate_faithfulness
from endoxai.explain.faithfulness_files import read_faithfulness, write_faithfulness
from endoxai.explain.methods import RANDOM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find planted
from planted import PATCH, planted_model_and_image, region_mask


@pytest.fixture(scope="module")
def planted():
    return planted_model_and_image()


def test_files_round_trip(planted, tmp_path):
    model, x = planted
    settings = FaithfulnessSettings(methods=("gradient", RANDOM), patch=PATCH, steps=4,
                                    precision="fp32")
    result = evaluate_faithfulness(model, torch.cat([x, x.flip(-1)]),
                                   torch.stack([region_mask()] * 2), ["a", "b"], settings,
                                   progress=False)
    paths = write_faithfulness(result, tmp_path / "out")
    data = read_faithfulness(tmp_path / "out")
    assert data == json.loads(paths["json"].read_text())
    assert data["summary"]["gradient"]["n_images"] == 2
    assert data["summary"][RANDOM]["mass_accuracy"] is None  # NaN is written as null
    assert len(data["fractions"]) == 5 and data["settings"]["patch"] == PATCH
    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["method"]) for r in rows] == [
        ("a", "gradient"), ("a", RANDOM), ("b", "gradient"), ("b", RANDOM)]
    assert float(rows[0]["aopc_morf"]) == pytest.approx(
        result.images[0]["methods"]["gradient"]["aopc_morf"], rel=1e-5)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tiny_run(tmp_path, pair_folder):
    """A run folder holding an untrained width-8 generator: fast enough for the command's flow."""
    from endoxai.config import Config, ModelConfig
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION

    torch.manual_seed(0)
    run = tmp_path / "tiny"
    run.mkdir()
    config = Config(model=ModelConfig(width=8))
    generator = Generator(width=8)
    with torch.no_grad():
        generator.up8[0].bias.fill_(1.0)  # every pixel predicted: nothing is skipped
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                "generator": generator.state_dict()}, run / "best.pt")
    (run / "split.json").write_text(json.dumps({
        "dataset": str(pair_folder), "train": ["case0", "case1", "case2", "case3"],
        "val": ["case4", "case5"]}))
    return run


def test_cli_on_a_run(tiny_run, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "faith"
    rc = main(["evaluate-explanations", "--run", str(tiny_run), "--output", str(out),
               "--n-images", "1", "--steps", "2", "--methods",
               "lrp:epsilon-gamma-box,gradient,random", "--precision", "fp32", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "lrp:epsilon-gamma-box" in captured.out and "AOPC MoRF" in captured.out
    data = read_faithfulness(out)
    assert data["settings"]["patch"] == 8 and data["settings"]["steps"] == 2
    assert list(data["summary"]) == ["lrp:epsilon-gamma-box", "gradient", "random"]
    names = [image["name"] for image in data["images"]]
    assert names == ["case4"] and data["skipped"] == []
    assert (out / "faithfulness_curves.png").is_file()


@pytest.mark.parametrize("quiet", [[], ["-q"], ["--no-progress"]])
def test_cli_progress_bars_with_eta_unless_quiet(tiny_run, tmp_path, capsys, quiet):
    torch.set_num_threads(1)
    flags = ["-q"] if quiet == ["-q"] else []
    rc = main(flags + ["evaluate-explanations", "--run", str(tiny_run), "--output",
                       str(tmp_path / "faith"), "--n-images", "2", "--steps", "2", "--methods",
                       "lrp:epsilon-gamma-box,random", "--precision", "fp32", "--device", "cpu"]
              + [q for q in quiet if q != "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    if quiet:
        assert "%|" not in err and "choosing images" not in err
    else:
        assert "choosing images" in err and "2/2" in err
        assert "faithfulness, image 2/2: 100%|" in err
        assert "<00:00" in err  # elapsed<remaining: the ETA


def test_cli_user_errors(tmp_path, capsys):
    rc = main(["evaluate-explanations", "--run", str(tmp_path / "nope"), "--output",
               str(tmp_path / "o")])
    assert rc == 2 and "run folder not found" in capsys.readouterr().err
    rc = main(["evaluate-explanations", "--run", str(tmp_path), "--methods", "lrp:bogus"])
    assert rc == 2 and "lrp:bogus" in capsys.readouterr().err
    rc = main(["evaluate-explanations", "--run", str(tmp_path), "--steps", "0"])
    assert rc == 2 and "steps must be >= 1" in capsys.readouterr().err
    rc = main(["evaluate-explanations", "--checkpoint", str(tmp_path / "g.pt"), "--output",
               str(tmp_path / "o")])
    assert rc == 2 and "--data" in capsys.readouterr().err
    rc = main(["evaluate-explanations", "--run", str(tmp_path)])
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err
    if not torch.cuda.is_available():
        rc = main(["evaluate-explanations", "--run", str(tmp_path), "--device", "cuda"])
        assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "faithfulness").exists()
