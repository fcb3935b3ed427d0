"""The viewer's model side: scores as `endoxai predict` + `endoxai evaluate` give them, answers
with every block and the skip-flow ledger, the forward pass cached per image and composite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from endoxai.errors import UserError
from endoxai.evaluate import evaluate_folders
from endoxai.predict import predict_files
from endoxai.view.viewer import load_model, npz_arrays, parse_target

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: view_fixtures
from view_fixtures import make_viewer  # noqa: E402


@pytest.fixture(scope="module")
def viewer(view_files):
    return make_viewer(view_files)


def test_scores_are_those_of_predict_and_evaluate(viewer, view_files, tmp_path):
    predict_files(view_files.checkpoint, view_files.images, tmp_path / "pred", precision="fp32",
                  progress=False)
    rows = evaluate_folders(tmp_path / "pred", view_files.masks, progress=False).per_image
    expected = {row.name: (row.dice, row.jaccard) for row in rows}
    shown = {i.name.rsplit(".", 1)[0]: (i.dice, i.jaccard) for i in viewer.store.listing()}
    assert shown.keys() == expected.keys()
    for name, (dice, jaccard) in expected.items():
        assert shown[name] == pytest.approx((dice, jaccard), abs=1e-9)
    listed = [i.dice for i in viewer.store.listing()]
    assert listed == sorted(listed)


def test_an_answer_has_every_block_and_the_ledger(viewer):
    image = viewer.store.get("f1")
    answer = viewer.ask(image, "lrp0", ("pixel", 40, 50))
    assert answer.input.shape == (256, 256) and answer.target_pixels == 1
    blocks = [f"down{i}" for i in range(1, 9)] + [f"up{i}" for i in range(1, 9)]
    assert list(answer.layers) == blocks
    assert answer.shapes["down1"] == (8, 128, 128) and answer.layers["down1"].shape == (128, 128)
    assert answer.flow is not None and answer.flow.depth == 8
    arrays = npz_arrays(answer, viewer.prediction(image), image, "lrp0", ("pixel", 40, 50))
    assert str(arrays["target"]) == "pixel:40,50" and "flow_skip" in arrays
    assert arrays["layer_up8"].shape == (256, 256)


def test_the_forward_pass_is_cached_per_image_and_composite(viewer):
    image = viewer.store.get("f2")
    first = viewer.ask(image, "paper", "mask")
    again = viewer.ask(image, "paper", ("box", 0, 0, 8, 8))
    other = viewer.ask(image, "alpha2-beta1", "mask")
    assert not first.forward_cached and first.seconds["forward"] > 0
    assert again.forward_cached and again.seconds["forward"] == 0
    assert not other.forward_cached


@pytest.mark.parametrize("spec, expected", [
    ({"kind": "mask"}, "mask"),
    ({"kind": "background"}, "background"),
    ({"kind": "pixel", "y": 0, "x": 255}, ("pixel", 0, 255)),
    ({"kind": "box", "y0": 0, "x0": 1, "y1": 256, "x1": 2}, ("box", 0, 1, 256, 2)),
])
def test_targets_from_the_page(spec, expected):
    assert parse_target(spec, 256) == expected


@pytest.mark.parametrize("spec", [
    None, "mask", {"kind": "pixel", "y": -1, "x": 0}, {"kind": "pixel", "y": True, "x": 0},
    {"kind": "pixel", "y": 1.5, "x": 0}, {"kind": "box", "y0": 3, "x0": 0, "y1": 2, "x1": 4},
    {"kind": "box", "y0": 0, "x0": 0, "y1": 257, "x1": 4},
])
def test_bad_targets_from_the_page(spec):
    with pytest.raises(ValueError):
        parse_target(spec, 256)


def test_the_model_comes_from_the_resolver(view_files):
    _, config, label = load_model(view_files.checkpoint)
    assert config.model.width == 8 and label == f"{view_files.checkpoint.parent.name}/tiny.pt"
    with pytest.raises(UserError, match="not found"):
        load_model(view_files.root / "missing.pt")
