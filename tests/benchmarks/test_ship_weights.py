"""benchmarks/ship_weights.py: a generator packed into small int8 parts and unpacked is the same
model up to the rounding of its weights, and a damaged pack is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import ship_weights  # noqa: E402
from endoxai.config import load_config  # noqa: E402
from endoxai.errors import UserError  # noqa: E402
from endoxai.models import Generator  # noqa: E402
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, load_generator  # noqa: E402


def test_quantize_rounds_each_slice_to_its_own_scale():
    w = torch.tensor([[[0.5, -1.0]], [[0.02, 0.012]], [[0.0, 0.0]]])
    values, scale = ship_weights.quantize(w)
    assert values.dtype == torch.int8
    assert values[0].flatten().tolist() == [64, -127] and values[1].flatten().tolist() == [127, 76]
    assert values[2].abs().sum() == 0  # an all-zero slice stays zero
    error = (ship_weights.dequantize(values, scale) - w).abs().flatten(1).amax(dim=1)
    assert torch.all(error <= scale / 2 + 1e-9)  # at most half a step of its own slice
    assert torch.allclose(scale[:2], torch.tensor([1.0 / 127, 0.02 / 127]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A full-size generator with non-trivial BatchNorm statistics, saved as training would."""
    torch.manual_seed(0)
    g = Generator()
    with torch.no_grad():
        g.train()(torch.randn(2, 3, 256, 256))  # updates the running statistics
    cfg = load_config("default")
    path = tmp_path_factory.mktemp("run") / "best.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "epoch": 63,
                 "best_dice": 0.74, "best_epoch": 63, "generator": g.state_dict(),
                 "discriminator": {}, "opt_g": {}, "opt_d": {}}, path)
    return g.eval(), path


def test_pack_and_unpack_give_the_same_model_up_to_rounding(trained, tmp_path):
    g, path = trained
    parts = ship_weights.pack(path, tmp_path / "weights", max_mb=15)
    sizes = [p.stat().st_size for p in parts]
    assert max(sizes) <= 15e6 and len(parts) == 4  # 54.4 M int8 weights + scales, BN, config
    copy_path = tmp_path / "copy" / "best.pt"
    ckpt = ship_weights.unpack(tmp_path / "weights", copy_path)
    assert (ckpt["epoch"], ckpt["best_epoch"]) == (63, 63)
    copy, cfg = load_generator(copy_path)  # the loader predict and explain use
    assert cfg == load_config("default")
    original = g.state_dict()
    for name, tensor in copy.state_dict().items():
        if tensor.dim() < 2:  # biases and BatchNorm: exact
            assert torch.equal(tensor, original[name]), name
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        a, b = g.logits(x), copy.logits(x)
    assert not torch.equal(a, b)  # the weights were rounded...
    assert (a - b).norm() / a.norm() < 0.05  # ...by little
    assert ((a > 0) == (b > 0)).float().mean() > 0.98


def test_a_changed_or_missing_part_is_refused(trained, tmp_path):
    _, path = trained
    parts = ship_weights.pack(path, tmp_path / "w", max_mb=20)
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 1
    parts[1].write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        ship_weights.unpack(tmp_path / "w", tmp_path / "x.pt")
    parts[0].unlink()
    with pytest.raises(UserError, match="missing part"):
        ship_weights.unpack(tmp_path / "w", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
