"""The shipped format: safetensors + sidecar from a checkpoint, read back, SHA-256 checked."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from endoxai.cli import main
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.models import Generator
from endoxai.train.checkpoint import load_generator
from endoxai.weights.bundle import export_safetensors, read_bundle, sidecar_of, write_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: weights_models
from weights_models import WIDTH, calibrated_generator, save_checkpoint  # noqa: E402

# Unit roundoff of the kernels' storage type (2^-11 for fp16, 2^-8 for bf16). The rounding errors
# of the 16 layers' kernels add up to about one unit in the logits' scale (measured: 0.9 u for
# fp16, 1.1 u for bf16 at width 8); 8 u leaves room for other seeds while a wrong tensor, a lost
# BatchNorm statistic or a swapped key moves the logits by O(1) of their scale.
UNIT_ROUNDOFF = {"fp16": 2.0**-11, "bf16": 2.0**-8}
MIN_MASK_AGREEMENT = 0.99


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_round_trip_predicts_what_the_checkpoint_predicts(generator, checkpoint, tmp_path, dtype):
    weights = export_safetensors(checkpoint, tmp_path / "ship", dtype=dtype)
    assert weights == tmp_path / "ship" / "polyp.safetensors"
    shipped, config = load_generator(weights)
    assert config.model.width == WIDTH and shipped.width == WIDTH and not shipped.training
    x = _images()
    with torch.no_grad():
        expected, got = generator.logits(x), shipped.logits(x)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 8 * UNIT_ROUNDOFF[dtype] * scale
    assert ((got > 0) == (expected > 0)).float().mean() >= MIN_MASK_AGREEMENT


def test_kernels_are_half_precision_and_small_tensors_float32(checkpoint, tmp_path):
    weights = export_safetensors(checkpoint, tmp_path, dtype="bf16")
    with safe_open(str(weights), framework="pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes["down1.0.weight"] == "BF16" and dtypes["up8.0.weight"] == "BF16"
    assert dtypes["down2.1.running_var"] == "F32" and dtypes["up8.0.bias"] == "F32"
    assert dtypes["down2.1.num_batches_tracked"] == "I64"


def test_sidecar_holds_config_hash_and_provenance(checkpoint, tmp_path):
    weights = export_safetensors(checkpoint, tmp_path, name="tiny", recipe="my-recipe")
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert meta["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["bytes"] == weights.stat().st_size
    assert meta["weights"] == "tiny.safetensors" and meta["dtype"] == "float16"
    assert meta["config"]["model"]["width"] == WIDTH
    assert Config.from_dict(meta["config"]) == Config().override(model={"width": WIDTH})
    assert meta["provenance"]["recipe"] == "my-recipe"
    assert meta["provenance"]["epoch"] == 7 and meta["provenance"]["source"] == "best.pt"
    # parameters, not BatchNorm statistics: width 8 has 1/64 of Table 1's weights, +biases
    table1 = sum(p.numel() for p in Generator(width=64).parameters())
    assert meta["parameters"] == sum(p.numel() for p in Generator(width=WIDTH).parameters())
    assert 0.9 / 64 < meta["parameters"] / table1 < 1.1 / 64


def test_the_recipe_is_recognised_when_the_config_is_a_shipped_one(generator, tmp_path,
                                                                   monkeypatch):
    import endoxai.config

    tiny = Config().override(model={"width": WIDTH}, train={"epochs": 3})
    real_load = endoxai.config.load_config
    monkeypatch.setattr(endoxai.config, "recipe_names", lambda: ["paper", "tiny"])
    monkeypatch.setattr(endoxai.config, "load_config",
                        lambda name: tiny if name == "tiny" else real_load(name))
    export_safetensors(save_checkpoint(generator, tmp_path / "a.pt", tiny), tmp_path / "a")
    assert json.loads((tmp_path / "a" / "polyp.json").read_text())["provenance"]["recipe"] == "tiny"
    other = tiny.override(train={"epochs": 4})
    export_safetensors(save_checkpoint(generator, tmp_path / "b.pt", other), tmp_path / "b")
    assert json.loads((tmp_path / "b" / "polyp.json").read_text())["provenance"]["recipe"] is None


def test_a_changed_byte_is_refused_with_one_line(checkpoint, tmp_path, capsys):
    weights = export_safetensors(checkpoint, tmp_path)
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # one bit of a kernel: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        read_bundle(weights)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.new("RGB", (64, 48), (200, 100, 90)).save(image)
    capsys.readouterr()  # only what the command prints
    rc = main(["predict", "--checkpoint", str(weights), "--input", str(image),
               "--output", str(tmp_path / "masks")])
    err = capsys.readouterr().err
    assert rc == 2 and "SHA-256 mismatch" in err and len(err.strip().splitlines()) == 1


def test_missing_or_foreign_sidecar(checkpoint, tmp_path):
    weights = export_safetensors(checkpoint, tmp_path)
    sidecar = sidecar_of(weights)
    sidecar.write_text("{\"format\": \"something-else\"}")
    with pytest.raises(UserError, match="not an endoxai weights sidecar"):
        load_generator(weights)
    sidecar.unlink()
    with pytest.raises(UserError, match="sidecar polyp.json .* is missing"):
        load_generator(weights)
    with pytest.raises(UserError, match="model weights not found"):
        load_generator(tmp_path / "absent.safetensors")


def test_weights_that_do_not_match_the_sidecar_config(generator, tmp_path):
    write_bundle(generator.state_dict(), Config().override(model={"width": 16}), tmp_path, "x")
    with pytest.raises(UserError, match="do not match its config"):
        load_generator(tmp_path / "x.safetensors")


def test_unshippable_models_are_refused(generator, tmp_path):
    state = generator.state_dict()
    broken = dict(state, **{"down1.0.weight": state["down1.0.weight"] * float("nan")})
    with pytest.raises(UserError, match="NaN or infinite"):
        write_bundle(broken, Config(), tmp_path, "x")
    huge = dict(state, **{"down1.0.weight": state["down1.0.weight"] * 1e8})
    with pytest.raises(UserError, match="fp16's range"):
        write_bundle(huge, Config(), tmp_path, "x", dtype="fp16")
    write_bundle(huge, Config().override(model={"width": WIDTH}), tmp_path, "x", dtype="bf16")
    with pytest.raises(UserError, match="bad model name"):
        write_bundle(state, Config(), tmp_path, "../x")
    assert not (tmp_path.parent / "x.safetensors").exists()


def test_trained_weights_are_not_in_a_shipped_model(checkpoint, tmp_path):
    weights = export_safetensors(checkpoint, tmp_path)
    with pytest.raises(UserError, match="one set of weights"):
        load_generator(weights, trained=True)


def test_cli_exports_a_run_folder(checkpoint, tmp_path, capsys):
    out = tmp_path / "ship"
    rc = main(["export", "--checkpoint", str(checkpoint.parent), "--format", "safetensors",
               "--output", str(out), "--dtype", "bf16"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["polyp.json", "polyp.safetensors"]
    assert f"using {checkpoint} " in captured.err  # which file of the folder was used
    assert json.loads((out / "polyp.json").read_text())["dtype"] == "bfloat16"
    assert str(out / "polyp.safetensors") in captured.out
    rc = main(["export", "--checkpoint", str(checkpoint), "--format", "safetensors",
               "--output", str(out), "--check"])
    assert rc == 2 and "--check compares ONNX Runtime" in capsys.readouterr().err
