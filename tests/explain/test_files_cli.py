"""explain_files / `endoxai explain`: target parsing, written files, conservation table, exit codes.

The first tests replace the LRP engine and the checkpoint loader inside ``endoxai.explain.files``
with a fake whose arrays are known, so the file handling is checked exactly and fast; the last
ones run the real CLI on a random Table-1 generator checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from endoxai.cli import main
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.explain import files
from endoxai.explain.files import (
    conservation_table,
    explain_files,
    flow_table,
    format_target,
    parse_target,
)
from endoxai.explain.flow import FLOW_NPZ_KEYS, SkipFlow
from endoxai.models import Generator

SIZE = 256
ENCODER = (64, 128, 256, 512, 512, 512, 512, 512)  # Table 1
DECODER = (512, 512, 512, 512, 256, 128, 64, 1)
BLOCKS = [f"down{i}" for i in range(1, 9)] + [f"up{i}" for i in range(1, 9)]


# ---------------------------------------------------------------- target strings

@pytest.mark.parametrize("text, expected", [
    ("mask", "mask"),
    ("background", "background"),
    (" Mask ", "mask"),
    ("pixel:10,20", ("pixel", 10, 20)),
    ("pixel: 0 , 255", ("pixel", 0, 255)),
    ("box:1,2,30,40", ("box", 1, 2, 30, 40)),
    ("BOX:0,0,256,256", ("box", 0, 0, 256, 256)),
])
def test_parse_target_good(text, expected):
    assert parse_target(text) == expected
    assert parse_target(format_target(expected)) == expected


@pytest.mark.parametrize("text, message", [
    ("pixels:1,2", "expected one of mask"),
    ("", "expected one of"),
    ("mask:3", "expected one of"),
    ("pixel:1", "expected pixel:Y,X"),
    ("pixel:1,2,3", "expected pixel:Y,X"),
    ("pixel:-1,2", "expected pixel:Y,X"),
    ("pixel:1.5,2", "expected pixel:Y,X"),
    ("pixel:a,b", "expected pixel:Y,X"),
    ("box:1,2,3", "expected box:Y0,X0,Y1,X1"),
    ("box:5,0,5,10", "Y0 < Y1"),
    ("box:0,9,10,3", "X0 < X1"),
])
def test_parse_target_bad(text, message):
    with pytest.raises(UserError, match=message):
        parse_target(text)


# ---------------------------------------------------------------- driver with a fake engine

def _fake_explanation(images: torch.Tensor) -> SimpleNamespace:
    """Arrays with known sums: every value of block k (1-based in BLOCKS order) of image n equals
    (k + n_fill) / numel, so its channel-summed map sums to k + n_fill; input = 2 * images."""
    n, _, s, _ = images.shape
    logits = images.mean(dim=1, keepdim=True)
    layers = OrderedDict()
    shapes = [(c, s >> i, s >> i) for i, c in enumerate(ENCODER, 1)]
    shapes += [(c, s >> (8 - i), s >> (8 - i)) for i, c in enumerate(DECODER, 1)]
    fill = images[:, 0, 0, 0].double() + 1.0  # differs per image: 1 + the image's first value
    for k, (name, shape) in enumerate(zip(BLOCKS, shapes), start=1):
        numel = shape[0] * shape[1] * shape[2]
        layers[name] = ((k + fill) / numel).view(n, 1, 1, 1).expand(n, *shape).float()
    return SimpleNamespace(input=2 * images, layers=layers, output=logits.clamp(min=0),
                           logits=logits, target=logits > 0, flow=_fake_flow(fill),
                           precision="fp32")


def _fake_flow(fill: torch.Tensor) -> SkipFlow:
    """A ledger whose output is 10·fill per image: skips 4, 2, 1, 0.5, 0.25, 0.125, 0.0625 and
    the rest in the bottleneck, times fill."""
    f = fill.double()[:, None]
    skip = torch.tensor([4, 2, 1, 0.5, 0.25, 0.125, 0.0625], dtype=torch.float64) * f
    total = 10 * fill.double()
    deeper = total[:, None] - skip.cumsum(1)
    zeros = torch.zeros(len(fill), 8, dtype=torch.float64)
    return SkipFlow(total, skip, deeper, deeper[:, -1], zeros, zeros, total)


@pytest.fixture
def fake_engine(monkeypatch):
    calls = []

    class FakeExplainer:
        def __init__(self, generator, composite, precision="fp32"):
            self.composite, self.precision = composite, precision

        def __call__(self, images, target, layers, start, layer_inputs=False, sources=None):
            calls.append({"n": images.shape[0], "target": target, "composite": self.composite,
                          "precision": self.precision, "start": start, "layers": layers,
                          "layer_inputs": layer_inputs,
                          "lo": float(images.min()), "hi": float(images.max())})
            return _fake_explanation(images)

    monkeypatch.setattr(files, "Explainer", FakeExplainer)
    # a real (tiny) generator: the conservation table names each block's rule and absorbers
    monkeypatch.setattr(files, "load_generator", lambda path: (Generator(width=8), Config()))
    return calls


def _write_image(path, h, w, seed, fmt=None):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format=fmt)
    return rgb


def test_single_image_npz_and_figures(tmp_path, fake_engine):
    _write_image(tmp_path / "polyp.png", 30, 50, seed=0)
    out = tmp_path / "out"
    summary = explain_files("ckpt.pt", tmp_path / "polyp.png", out, target="pixel:3,4",
                            composite="paper", start="ones")
    assert summary.explained == [str(tmp_path / "polyp.png")] and summary.failed == []
    assert fake_engine == [{"n": 1, "target": ("pixel", 3, 4), "composite": "paper",
                            "precision": "fp32", "start": "ones", "layers": True,
                            "layer_inputs": True,
                            "lo": pytest.approx(-1, abs=0.05), "hi": pytest.approx(1, abs=0.05)}]
    assert sorted(p.name for p in out.iterdir()) == [
        "polyp.npz", "polyp_explanation.png", "polyp_flow.png",
        "polyp_layers.png"]  # no temp files left behind

    with np.load(out / "polyp.npz") as z:
        data = {k: z[k] for k in z.files}
    expected_keys = {"image", "input", "input_map", "output", "logits", "mask", "target_mask",
                     "layer_names", "layer_shapes", "source", "target", "composite", "start",
                     "precision"}
    assert set(data) == expected_keys | {f"layer_{b}" for b in BLOCKS} | set(FLOW_NPZ_KEYS)
    image = data["image"]
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    model_input = image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1  # what the engine saw
    np.testing.assert_allclose(data["input"], 2 * model_input, atol=1e-6)
    np.testing.assert_allclose(data["input_map"], 2 * model_input.sum(0), atol=1e-5)
    np.testing.assert_allclose(data["logits"], model_input.mean(0), atol=1e-6)
    np.testing.assert_array_equal(data["mask"], model_input.mean(0) > 0)
    assert data["target_mask"].dtype == bool and data["target_mask"].shape == (SIZE, SIZE)
    assert data["output"].shape == (SIZE, SIZE)
    assert list(data["layer_names"]) == BLOCKS
    assert data["layer_shapes"].tolist()[0] == [64, 128, 128]
    assert data["layer_shapes"].tolist()[-1] == [1, 256, 256]
    assert data["layer_down8"].shape == (1, 1) and data["layer_up7"].shape == (128, 128)
    fill = 1.0 + model_input[0, 0, 0]
    assert data["layer_down3"].sum() == pytest.approx(3 + fill, rel=1e-4)  # channel sum keeps it
    meta = (str(data["target"]), str(data["composite"]), str(data["start"]))
    assert meta == ("pixel:3,4", "paper", "ones")
    assert float(data["flow_total"]) == pytest.approx(10 * fill, rel=1e-6)
    np.testing.assert_allclose(data["flow_skip"][:2], [4 * fill, 2 * fill], rtol=1e-6)
    assert data["flow_levels"].tolist() == list(range(1, 8))

    for name in ("polyp_explanation.png", "polyp_layers.png", "polyp_flow.png"):
        with Image.open(out / name) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 1000 and img.size[1] > 400


def test_folder_batches_failures_and_table(tmp_path, fake_engine, caplog):
    src = tmp_path / "in"
    src.mkdir()
    _write_image(src / "a.jpg", 40, 30, seed=1)
    _write_image(src / "a.png", 20, 60, seed=2)  # same stem as a.jpg: outputs must not collide
    (src / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    _write_image(src / "c.bmp", 256, 256, seed=3)
    (src / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    summary = explain_files("ckpt.pt", src, out, batch_size=2, progress=False)

    assert [c["n"] for c in fake_engine] == [2, 1]  # [a.jpg a.png] [broken.jpg (unreadable) c.bmp]
    assert [f for f, _ in summary.failed] == [str(src / "broken.jpg")]
    assert "broken.jpg" in caplog.text
    assert len(summary.explained) == 3
    written = {p.name for p in out.iterdir()}
    for stem in ("a_jpg", "a_png", "c"):
        assert {f"{stem}.npz", f"{stem}_explanation.png", f"{stem}_layers.png",
                f"{stem}_flow.png"} <= written
    assert not any("broken" in name for name in written) and len(written) == 12

    # The table sums over images; per image, block k sums to k + fill_n (see _fake_explanation).
    fills, outputs = [], []
    for stem in ("a_jpg", "a_png", "c"):
        with np.load(out / f"{stem}.npz") as z:
            fills.append(1.0 + (z["image"][0, 0, 0] / 127.5 - 1))
            outputs.append(float(np.clip(z["logits"].astype(np.float64), 0, None).sum()))
    # The conservation table sums the ledgers (_fake_flow: output 10 x fill, nothing absorbed).
    table = conservation_table(summary).splitlines()
    assert "summed over 3 images" in table[0]
    rows = table[2:-1]
    assert rows[0].startswith("at the output") and rows[-1].startswith("kept at the input")
    assert [r.split("(")[0].split()[-1] for r in rows[1:-1]] == (
        [f"up{j}" for j in range(8, 0, -1)] + [f"down{i}" for i in range(8, 0, -1)])
    assert "(z^B box rule: ε)" in rows[-2] and "(generalised γ: bias, ε)" in rows[1]  # default
    total = 10 * sum(fills)
    for row, value, share in ((rows[0], total, "100.00%"), (rows[-1], total, "100.00%"),
                              (rows[5], 0.0, "0.00%")):
        numbers = row.split(")")[-1].split() if "(" in row else row.split()[-4:]
        assert float(numbers[-4]) == pytest.approx(value, rel=1e-4, abs=1e-9)
        assert numbers[-3] == share and numbers[-2:] == [share, share]  # min, max per image
    assert table[-1].startswith("output − absorbed − kept = 0 (rounding)")

    # The flow table sums the ledgers: level 1's skip is 4 of every 10 of the output (40 %).
    flow = flow_table(summary).splitlines()
    assert "summed over 3 images" in flow[0]
    level1 = flow[2].split()
    assert level1[:2] == ["down1", "up8"] and level1[-2] == "40.00%"
    assert float(level1[3]) == pytest.approx(4 * sum(fills), rel=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"inputs": "missing.jpg"}, "not found: .*missing.jpg"),
    ({"composite": "nope"}, "unknown composite 'nope'; choose from .*epsilon-gamma-box"),
    ({"start": "zeros"}, "unknown start"),
    ({"batch_size": 0}, "batch size"),
    ({"target": "pixel:256,0"}, "outside the 256x256"),
    ({"target": "box:0,0,257,10"}, "outside the 256x256"),
])
def test_user_errors(tmp_path, fake_engine, kwargs, message):
    _write_image(tmp_path / "x.png", 8, 8, seed=0)
    args = {"checkpoint": "ckpt.pt", "inputs": tmp_path / "x.png", "output_dir": tmp_path / "out"}
    args.update(kwargs)
    if args["inputs"] == "missing.jpg":
        args["inputs"] = tmp_path / "missing.jpg"
    with pytest.raises(UserError, match=message):
        explain_files(**args)
    assert fake_engine == []


def test_empty_target_warns(tmp_path, fake_engine, caplog):
    # All black: the fake's logits are -1 everywhere, so the "mask" target is empty.
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "black.png")
    summary = explain_files("ckpt.pt", tmp_path / "black.png", tmp_path / "out")
    assert summary.explained and "black.png: the target is empty" in caplog.text
    assert conservation_table(summary).splitlines()[2].split()[-1] == "n/a"  # output row: 0 / 0
    last = conservation_table(summary).splitlines()[-1]
    assert last.startswith("output − absorbed − kept = 0")


def test_empty_folder_is_user_error(tmp_path, fake_engine):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        explain_files("ckpt.pt", tmp_path / "empty", tmp_path / "out")


# ---------------------------------------------------------------- real CLI, real engine

@pytest.fixture
def checkpoint(tmp_path):
    ckpt_mod = pytest.importorskip("endoxai.train.checkpoint")
    from endoxai.models import Generator

    torch.manual_seed(0)
    config = Config().override(data={"image_size": SIZE})
    path = tmp_path / "g.pt"
    torch.save({"format": ckpt_mod.FORMAT, "version": ckpt_mod.VERSION, "config": config.to_dict(),
                "generator": Generator().state_dict()}, path)
    return path


def test_cli_end_to_end(tmp_path, checkpoint, capsys):
    src = tmp_path / "images"
    src.mkdir()
    _write_image(src / "small.png", 24, 40, seed=4)
    _write_image(src / "tall.jpg", 60, 18, seed=5, fmt="JPEG")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    torch.set_num_threads(1)
    rc = main(["explain", "--checkpoint", str(checkpoint), "--input", str(src),
               "--output", str(out), "--composite", "epsilon-gamma-box", "--batch-size", "2"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "corrupt.png" in captured.err
    for stem in ("small", "tall"):
        for suffix in (".npz", "_explanation.png", "_layers.png", "_flow.png"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000
    assert not list(out.glob("corrupt*")) and not list(out.glob(".*"))
    with np.load(out / "small.npz") as z:
        assert z["input"].shape == (3, SIZE, SIZE)
        assert z["layer_down1"].shape == (128, 128) and z["layer_up8"].shape == (SIZE, SIZE)
        np.testing.assert_array_equal(z["mask"], z["logits"] > 0)
        np.testing.assert_array_equal(z["target_mask"], z["mask"])  # target "mask"
        np.testing.assert_allclose(z["input_map"], z["input"].sum(0), rtol=1e-5, atol=1e-6)
        assert np.isfinite(z["input"]).all() and np.abs(z["input"]).max() > 0
        # the ledger's ends are the saved maps' sums
        assert float(z["flow_total"]) == pytest.approx(float(z["output"].sum()), rel=1e-4)
        assert float(z["flow_input"]) == pytest.approx(float(z["input"].sum()), rel=1e-4)
        assert abs(float(z["flow_total"] - z["flow_skip"].sum() - z["flow_bottleneck"]
                         - z["flow_absorbed_decoder"].sum())) <= 1e-5 * abs(float(z["flow_total"]))
    lines = captured.out.splitlines()
    kept = next(line for line in lines if line.startswith("kept at the input"))
    assert float(kept.split()[-4]) == pytest.approx(  # Σ, share, min and max share
        sum(float(np.load(out / f"{s}.npz")["input"].sum()) for s in ("small", "tall")), rel=1e-4)
    assert any(line.startswith("absorbed in down1 (z^B box rule: ε)") for line in lines)
    assert any(line.split()[:1] == ["down1"] for line in lines)
    assert any(line.startswith("Skip flow, composite epsilon-gamma-box") for line in lines)
    assert any(line.split()[:2] == ["bottleneck", "up1"] for line in lines)
    assert "explained 2 image(s)" in captured.out and "1 failed" in captured.out


def test_cli_missing_input_exits_2(tmp_path, capsys):
    (tmp_path / "g.pt").write_bytes(b"")  # found; the input is checked before it is loaded
    rc = main(["explain", "--checkpoint", str(tmp_path / "g.pt"), "--input", str(tmp_path / "nope"),
               "--output", str(tmp_path / "out")])
    assert rc == 2
    assert f"not found: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_cli_missing_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys):
    _write_image(tmp_path / "x.png", 8, 8, seed=0)
    rc = main(["explain", "--checkpoint", str(tmp_path / "g.pt"),
               "--input", str(tmp_path / "x.png"), "--output", str(tmp_path / "out")])
    assert rc == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_bad_target_exits_2(tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "g.pt").write_bytes(b"")  # found; the target is checked before it is loaded
    rc = main(["explain", "--checkpoint", str(tmp_path / "g.pt"),
               "--input", str(tmp_path / "x.png"), "--output", str(tmp_path / "out"),
               "--target", "pixel:1"])
    assert rc == 2
    assert "expected pixel:Y,X" in capsys.readouterr().err


def test_a_bf16_image_redone_in_fp32_is_named(tmp_path, nan_under_autocast, caplog):
    # A bf16 pass that gives NaN (as on CPUs without native bf16) is run again in fp32: the
    # warning names the image and says its result is fp32, and its arrays record fp32.
    ckpt_mod = pytest.importorskip("endoxai.train.checkpoint")
    torch.manual_seed(0)
    config = Config().override(data={"image_size": SIZE}, model={"width": 8})
    path = tmp_path / "g8.pt"
    torch.save({"format": ckpt_mod.FORMAT, "version": ckpt_mod.VERSION,
                "config": config.to_dict(), "generator": Generator(width=8).state_dict()}, path)
    _write_image(tmp_path / "polyp.png", 40, 40, seed=7)
    with caplog.at_level("WARNING", logger="endoxai.explain.explanation"):
        explain_files(path, tmp_path / "polyp.png", tmp_path / "out", precision="bf16")
    assert f"{tmp_path / 'polyp.png'}: bf16 relevance was not finite" in caplog.text
    assert "so this result is fp32" in caplog.text
    with np.load(tmp_path / "out" / "polyp.npz") as z:
        assert str(z["precision"]) == "fp32" and np.isfinite(z["input"]).all()
