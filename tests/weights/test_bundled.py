"""resolve_model and load_model: which model a command uses, and the bundled model by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import endoxai
import endoxai.weights
from endoxai.cli import main
from endoxai.errors import UserError
from endoxai.train.checkpoint import load_generator
from endoxai.weights import WEIGHTS_DIR, load_model, resolve_model
from endoxai.weights.bundle import export_safetensors, sha256_of

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: weights_models
from weights_models import WIDTH  # noqa: E402

SHIPPED_MAX_BYTES = 32 * 2**20  # the package's size budget for one bundled model


@pytest.fixture
def bundled(checkpoint, tmp_path, monkeypatch) -> Path:
    """A width-8 model exported as the bundled polyp model of a stand-in weights folder."""
    folder = tmp_path / "package_weights"
    weights = export_safetensors(checkpoint, folder)
    monkeypatch.setattr(endoxai.weights, "WEIGHTS_DIR", folder)
    return weights


@pytest.fixture
def no_bundle(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(endoxai.weights, "WEIGHTS_DIR", tmp_path / "empty")


@pytest.fixture
def image(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "images" / "case.png"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_nothing_and_polyp_name_the_bundled_model(bundled):
    assert resolve_model() == bundled
    assert resolve_model(model="polyp") == bundled


def test_a_missing_bundle_is_one_clear_line(no_bundle, image, tmp_path, capsys):
    with pytest.raises(UserError, match="bundled polyp model is not in this installation"):
        resolve_model()
    capsys.readouterr()  # only what the command prints
    rc = main(["predict", "--input", str(image), "--output", str(tmp_path / "masks")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "not in this installation" in err and "--checkpoint" in err
    assert not (tmp_path / "masks").exists()


def test_unknown_names_and_both_options_are_refused(bundled, checkpoint):
    with pytest.raises(UserError, match="unknown model 'kidney'; bundled: polyp"):
        resolve_model(model="kidney")
    with pytest.raises(UserError, match="not both"):
        resolve_model(checkpoint, "polyp")
    with pytest.raises(SystemExit):  # argparse: --model takes the bundled names only
        main(["predict", "--model", "kidney", "--input", "x", "--output", "y"])


def test_a_file_is_itself_and_a_run_folder_is_its_best_pt(checkpoint, tmp_path, caplog):
    caplog.set_level("INFO", logger="endoxai.weights")
    assert resolve_model(checkpoint) == checkpoint
    assert resolve_model(str(checkpoint.parent)) == checkpoint
    assert f"using {checkpoint}" in caplog.text
    with pytest.raises(UserError, match=r"not a checkpoint file nor a training run folder \(no "
                                        r"best.pt in it\)"):
        resolve_model(tmp_path)
    with pytest.raises(UserError, match="checkpoint not found"):
        resolve_model(tmp_path / "absent.pt")


def test_a_damaged_bundle_is_refused(bundled):
    data = bytearray(bundled.read_bytes())
    data[len(data) // 2] ^= 0x10
    bundled.write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        load_model()


@pytest.mark.slow  # an LRP pass (seconds on 2 free cores)
def test_load_model_returns_the_bundled_generator_ready_for_explain(bundled):
    from endoxai.explain import explain

    assert "load_model" in endoxai.__all__
    g = endoxai.load_model()
    assert not g.training and g.width == WIDTH
    reference, _ = load_generator(bundled)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.logits(x), reference.logits(x))
    relevance = explain(g, x, target="mask", layers=False)
    assert relevance.input.shape == x.shape and torch.isfinite(relevance.input).all()


def test_load_model_takes_a_checkpoint_instead(checkpoint, no_bundle):
    assert load_model(checkpoint=checkpoint).width == WIDTH
    with pytest.raises(UserError, match="not in this installation"):
        load_model()


def test_predict_without_checkpoint_uses_the_bundled_model(bundled, image, tmp_path):
    assert main(["-q", "predict", "--input", str(image), "--output", str(tmp_path / "a"),
                 "--precision", "fp32", "--no-progress"]) == 0
    assert main(["-q", "predict", "--checkpoint", str(bundled), "--input", str(image),
                 "--output", str(tmp_path / "b"), "--precision", "fp32", "--no-progress"]) == 0
    a = np.array(Image.open(tmp_path / "a" / "case.png"))
    assert a.shape == (90, 120)
    assert np.array_equal(a, np.array(Image.open(tmp_path / "b" / "case.png")))


@pytest.mark.slow  # an LRP pass (seconds on 2 free cores)
def test_explain_without_checkpoint_uses_the_bundled_model(bundled, image, tmp_path):
    out = tmp_path / "explained"
    assert main(["-q", "explain", "--input", str(image), "--output", str(out),
                 "--precision", "fp32"]) == 0
    assert (out / "case_explanation.png").is_file() and (out / "case.npz").is_file()


@pytest.mark.slow  # an LRP pass (seconds on 2 free cores)
def test_evaluate_explanations_without_checkpoint_uses_the_bundled_model(bundled, pair_folder,
                                                                         tmp_path):
    out = tmp_path / "faith"
    rc = main(["-q", "evaluate-explanations", "--data", str(pair_folder), "--output", str(out),
               "--n-images", "1", "--methods", "random,gradient", "--steps", "2",
               "--precision", "fp32", "--device", "cpu"])
    assert rc == 0
    assert json.loads((out / "faithfulness.json").read_text())["settings"]["checkpoint"] == str(
        bundled)


@pytest.mark.slow  # an LRP pass (seconds on 2 free cores)
def test_report_without_run_shows_the_bundled_model_at_its_width(bundled, pair_folder, tmp_path,
                                                                  capsys):
    out = tmp_path / "report"
    rc = main(["-q", "report", "--data", str(pair_folder), "--output", str(out),
               "--max-images", "1", "--batch-size", "2", "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
    html = (out / "index.html").read_text()
    assert str(bundled.resolve()) in html and "from the dataset&#x27;s validation list" in html
    assert "No <code>history.csv</code>" in html
    # the layer panels name each block's channels: width 8 gives 8 at down1, 64 at the bottleneck
    assert "down1 8×128×128" in html and "down8 64×1×1" in html and "up6 16×64×64" in html
    rc = main(["-q", "report", "--output", str(tmp_path / "r2")])
    assert rc == 2 and "needs a model and --data" in capsys.readouterr().err


def test_the_installed_bundle_matches_its_sidecar():
    """The model committed into the package: its hash, size budget and config."""
    weights = WEIGHTS_DIR / "polyp.safetensors"
    if not weights.is_file():
        pytest.skip(f"no bundled model in {WEIGHTS_DIR}")
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_of(weights.read_bytes())
    assert weights.stat().st_size <= SHIPPED_MAX_BYTES
    g, config = load_generator(weights)
    assert g.width == config.model.width == meta["config"]["model"]["width"]
    assert meta["provenance"]["epoch"] is not None
