"""ONNX export: ONNX Runtime reproduces the PyTorch logits, metadata, CLI and error paths.

One export of a 256² Table-1 generator is shared by the module (5-10 s, so the tests using it are
marked slow). Its BatchNorm layers are calibrated on random images first: a freshly initialised
generator has running statistics (0, 1) that leave activations unnormalised, logits tiny and
BatchNorm folding untested.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx

from endoxai.cli import main
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.export import OnnxGenerator, check_parity, export_onnx
from endoxai.models import Generator
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

SIZE = 256  # Config().data.image_size
# fp32 kernels of PyTorch and ONNX Runtime differ in summation order only: ~1e-6 of the logits'
# scale is typical for this depth (endoxai.export.PARITY_REL_TOL explains the 1e-4 bound).
REL_TOL = 1e-4


def _calibrated_generator(seed: int, width: int = 64) -> Generator:
    torch.manual_seed(seed)
    g = Generator(width=width)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running stats = the plain mean over the calibration batch
    g.train()
    with torch.no_grad():
        g(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
    return g.eval()


def _save(g: Generator, path) -> None:
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": g.state_dict()}, path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, onnx path, CLI exit code, CLI stdout) of `endoxai export ... --check`."""
    folder = tmp_path_factory.mktemp("export")
    ckpt = folder / "g.pt"
    _save(_calibrated_generator(0), ckpt)
    out = folder / "onnx" / "model.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["export", "--checkpoint", str(ckpt), "--output", str(out), "--check"])
    return ckpt, out, rc, stdout.getvalue()


@pytest.fixture(scope="module")
def runner(exported) -> OnnxGenerator:
    return OnnxGenerator(exported[1], num_threads=2)


@pytest.fixture(scope="module")
def torch_generator(exported) -> Generator:
    g = Generator()
    g.load_state_dict(torch.load(exported[0], weights_only=True)["generator"])
    return g.eval()


def _image_like() -> np.ndarray:
    """uint8 (256, 256, 3): a colour gradient with a reddish disc and mild noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    image = np.stack([120 + 80 * xx, 60 + 50 * yy, 40 + 30 * xx * yy], axis=-1)
    image[(yy - 0.55) ** 2 + (xx - 0.4) ** 2 < 0.2**2] = (220, 110, 90)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_cli_export_writes_one_file_and_passes_its_check(exported):
    _, out, rc, stdout = exported
    assert rc == 0
    assert "max |Δ logit|" in stdout and "100.000 % identical" in stdout
    # self-contained: no external-data file and no temp file left next to it
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"]
    assert out.stat().st_size > 200e6  # the 54 M fp32 parameters are inside


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "image-like"])
def test_onnx_runtime_matches_pytorch(runner, torch_generator, kind):
    if kind == "random":
        x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5)) * 2 - 1
    else:
        x = torch.from_numpy(_image_like()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = torch_generator.logits(x)
    got = runner.logits(x)
    assert isinstance(got, torch.Tensor) and got.shape == (len(x), 1, SIZE, SIZE)
    scale = expected.abs().max().item()
    assert scale > 0.05  # a degenerate (near-zero) model would make the comparison meaningless
    assert (got - expected).abs().max().item() <= REL_TOL * scale
    agreement = ((got > 0) == (expected > 0)).float().mean().item()
    assert agreement >= 0.999
    assert 0.01 < (expected > 0).float().mean().item() < 0.99  # both classes are present


@pytest.mark.slow
def test_numpy_in_numpy_out_and_shape_check(runner):
    out = runner.logits(np.zeros((1, 3, SIZE, SIZE), np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (1, 1, SIZE, SIZE)
    with pytest.raises(ValueError, match="shape"):
        runner.logits(np.zeros((1, 3, 128, 128), np.float32))


@pytest.mark.slow
def test_metadata_and_signature(exported, runner):
    model = onnx.load(str(exported[1]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["endoxai.image_size"] == str(SIZE)
    assert Config.from_dict(json.loads(meta["endoxai.config"])) == Config()
    assert meta["endoxai.source"] == "g.pt"
    assert "logits > 0" in meta["endoxai.output"] and "127.5" in meta["endoxai.input"]
    (inp,), (outp,) = model.graph.input, model.graph.output

    def dims(value):
        return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]

    assert inp.name == "image" and dims(inp)[1:] == [3, SIZE, SIZE] and isinstance(dims(inp)[0], str)
    assert outp.name == "logits" and dims(outp)[1:] == [1, SIZE, SIZE]
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
    assert runner.image_size == SIZE


@pytest.mark.slow
def test_parity_check_detects_a_different_model(exported, runner, torch_generator):
    assert check_parity(exported[0], runner, n_random=0).ok  # from the checkpoint file
    flipped = copy.deepcopy(torch_generator)
    with torch.no_grad():  # negates every logit
        flipped.up8[0].weight.neg_()
        flipped.up8[0].bias.neg_()
    parity = check_parity(flipped, runner, n_random=0)  # the image-like input only
    assert not parity.ok
    assert parity.mask_agreement < 0.01
    assert parity.max_abs_diff == pytest.approx(2 * parity.max_abs_logit, rel=1e-3)


def test_a_small_width_exports_with_its_config_and_matches_pytorch(tmp_path):
    ckpt = tmp_path / "w8.pt"
    g = _calibrated_generator(1, width=8)
    atomic_save({"format": FORMAT, "version": VERSION, "generator": g.state_dict(),
                 "config": Config().override(model={"width": 8}).to_dict()}, ckpt)
    out = export_onnx(ckpt, tmp_path / "w8.onnx")
    parity = check_parity(ckpt, out)
    assert parity.ok and parity.mask_agreement == 1.0, parity
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["endoxai.config"])["model"]["width"] == 8
    # the first convolution (no BatchNorm to fold into it) keeps its 8 filters of 3x4x4, and the
    # widest kernel is a decoder's: 8 x 8 channels from below + 8 x 8 from the skip (Table 1: 1024)
    kernels = [list(t.dims) for t in model.graph.initializer if len(t.dims) == 4]
    assert [8, 3, 4, 4] in kernels and max(max(k[:2]) for k in kernels) == 16 * 8


def test_missing_checkpoint_exit_code(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--output", str(out)])
    assert rc == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_unwritable_output_and_overwriting_the_checkpoint(exported, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        export_onnx(exported[0], blocker / "model.onnx")
    before = exported[0].read_bytes()
    with pytest.raises(UserError, match="overwrite the checkpoint"):
        export_onnx(exported[0], exported[0])
    assert exported[0].read_bytes() == before


@pytest.mark.slow
def test_missing_packages_are_user_errors(exported, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(UserError, match=r"endoxai\[onnx\]"):
        OnnxGenerator(exported[1])
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(UserError, match=r"endoxai\[onnx\]"):
        export_onnx(exported[0], tmp_path / "m.onnx")


@pytest.mark.slow
def test_dynamo_exporter_with_a_fixed_batch(exported, tmp_path):
    pytest.importorskip("onnxscript")
    out = export_onnx(exported[0], tmp_path / "m.onnx", batch=2, exporter="dynamo")
    runner = OnnxGenerator(out)
    assert runner.input_shape == (2, 3, SIZE, SIZE)
    parity = check_parity(exported[0], out, n_random=2)  # 3 inputs: run as two batches of 2
    assert parity.ok and parity.pixels == 4 * SIZE * SIZE
