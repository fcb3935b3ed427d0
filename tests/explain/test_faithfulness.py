"""Faithfulness metrics: a planted dependency every method must find, known AOPC values, the
localisation scores on hand-made maps, the files, and the CLI on a random Table-1 generator."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from endoxai.cli import main
from endoxai.explain import COMPOSITES
from endoxai.explain.faithfulness import (
    RANDOM,
    FaithfulnessSettings,
    aopc,
    baseline_images,
    check_methods,
    dataset_from_split,
    evaluate_faithfulness,
    integrated_gradients,
    method_names,
    patch_relevance,
    patch_size_for,
    perturbation_order,
    pixel_ranks,
    pointing_game,
    read_faithfulness,
    relevance_maps,
    relevance_mass_accuracy,
    step_counts,
    write_faithfulness,
)

SIZE, PATCH = 64, 8  # an 8 x 8 grid of patches
REGION = (2, 5)  # the planted region: patch rows 2..3, patch columns 5..6 (four patches)
REGION_PATCHES = {r * 8 + c for r in (2, 3) for c in (5, 6)}
SENSIBLE = [m for m in method_names() if m != RANDOM]


class Planted(nn.Module):
    """Every output logit depends on the input inside one region only (the input is multiplied
    by a 0/1 region mask); positive weights and a positive input there make every contribution
    positive, and the output bias keeps every logit > 0, so the whole output is the target."""

    def __init__(self, region: torch.Tensor, bias: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("region", region[None, None].double())
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=gen, dtype=torch.float64)
                                  * 0.9 + 0.1)
            self.conv1.bias.zero_()
            self.conv2.bias.fill_(bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x * self.region)))


def _region_mask() -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    r, c = REGION
    mask[r * PATCH:(r + 2) * PATCH, c * PATCH:(c + 2) * PATCH] = True
    return mask


def _planted_image(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 2 - 1
    inside = torch.rand(1, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 0.8 + 0.2
    return torch.where(_region_mask(), inside, x)


@pytest.fixture(scope="module")
def planted():
    return Planted(_region_mask()).eval(), _planted_image()


# ---------------------------------------------------------------- the planted dependency

@pytest.mark.parametrize("method", SENSIBLE)
def test_every_sensible_method_ranks_the_planted_region_first(planted, method):
    model, x = planted
    target = torch.ones(1, 1, SIZE, SIZE, dtype=torch.bool)
    maps = relevance_maps(model, x, target, method, ig_steps=16)
    assert maps.shape == (1, SIZE, SIZE)
    outside = ~_region_mask()
    assert maps[0][outside].abs().max() == 0  # the model never reads these pixels
    order = perturbation_order(patch_relevance(maps, PATCH), "morf")[0]
    assert set(order[:4].tolist()) == REGION_PATCHES
    lerf = perturbation_order(patch_relevance(maps, PATCH), "lerf")[0]
    assert set(lerf[-4:].tolist()) == REGION_PATCHES


@pytest.mark.slow  # ~4 s: every method, including 16-step integrated gradients, in float64
def test_random_order_does_not_rank_the_region_first_and_curves_match_the_oracle(planted):
    model, x = planted
    settings = FaithfulnessSettings(methods=tuple(method_names()), patch=PATCH, steps=8,
                                    fraction=0.5, baseline="mean", ig_steps=16, precision="fp32",
                                    batch_size=5)
    result = evaluate_faithfulness(model, x, _region_mask()[None], ["planted"], settings,
                                   progress=False)
    image = result.images[0]
    # Oracle, computed directly: the model with the region replaced by the image's mean colour.
    with torch.no_grad():
        f0 = model.logits(x).sum().item()
        removed = torch.where(_region_mask(), x.mean((2, 3), keepdim=True), x)
        f1 = model.logits(removed).sum().item()
    assert image["initial_score"] == pytest.approx(f0, rel=1e-9)
    # 32 of 64 patches in 8 steps: 4 per step, so MoRF removes exactly the region at step 1.
    oracle_morf = [f0] + [f1] * 8
    pixels = SIZE * SIZE  # every logit is > 0: the whole output is explained
    assert image["target_pixels"] == pixels
    for method in SENSIBLE:
        r = image["methods"][method]
        np.testing.assert_allclose(r["morf"], oracle_morf, rtol=1e-9)
        np.testing.assert_allclose(r["lerf"], [f0] * 9, rtol=1e-9)  # 32 untouched patches first
        assert r["aopc_morf"] == pytest.approx(8 / 9 * (f0 - f1) / pixels, rel=1e-9)
        assert r["aopc_lerf"] == pytest.approx(0, abs=1e-12)
        assert r["mass_accuracy"] == pytest.approx(1.0)
        assert r["pointing_game"] == 1.0
    rnd = image["methods"][RANDOM]
    assert rnd["morf"] == rnd["lerf"]
    assert rnd["aopc_morf"] < 0.9 * image["methods"]["gradient"]["aopc_morf"]
    assert math.isnan(rnd["mass_accuracy"]) and math.isnan(rnd["pointing_game"])
    summary = result.summary()
    assert summary["gradient"]["curve_morf"] == pytest.approx([f0 / pixels] + [f1 / pixels] * 8)
    assert summary[RANDOM]["mass_accuracy"] is None


def test_random_order_is_seeded_and_misses_the_region(planted):
    model, x = planted
    settings = FaithfulnessSettings(methods=(RANDOM,), patch=PATCH, steps=1, fraction=4 / 64,
                                    baseline="mean", precision="fp32")
    runs = [evaluate_faithfulness(model, x, settings=settings, progress=False) for _ in range(2)]
    curves = [run.images[0]["methods"][RANDOM]["morf"] for run in runs]
    assert curves[0] == curves[1]
    with torch.no_grad():
        f0 = model.logits(x).sum().item()
        f1 = model.logits(torch.where(_region_mask(), x.mean((2, 3), keepdim=True), x)).sum().item()
    # Four random patches of 64 remove far less evidence than the four region patches.
    assert curves[0][0] == pytest.approx(f0) and curves[0][1] > f1 + 0.5 * (f0 - f1)


def test_empty_prediction_is_skipped(planted):
    _, x = planted
    model = Planted(_region_mask(), bias=-1e6).eval()
    result = evaluate_faithfulness(model, x, settings=FaithfulnessSettings(
        methods=("gradient",), patch=PATCH, steps=2), progress=False)
    assert result.images == [] and result.skipped == [{"name": "image0",
                                                       "reason": "empty prediction"}]


def test_training_mode_model_is_refused(planted):
    _model, x = planted
    with pytest.raises(ValueError, match="eval mode"):
        evaluate_faithfulness(Planted(_region_mask()).train(), x, progress=False)


def test_integrated_gradients_completeness(planted):
    # Σ IG = f(x) - f(black) up to the Riemann error; the network is piecewise linear.
    model, x = planted
    target = torch.ones(1, 1, SIZE, SIZE, dtype=torch.bool)
    ig = integrated_gradients(model, x, target, steps=256, batch_size=64)
    with torch.no_grad():
        expected = model.logits(x).sum() - model.logits(torch.full_like(x, -1.0)).sum()
    assert ig.sum().item() == pytest.approx(expected.item(), rel=2e-3)


# ---------------------------------------------------------------- small pieces

def test_aopc_of_known_curves():
    assert aopc([1.0, 0.5, 0.25, 0.0]) == pytest.approx((0 + 0.5 + 0.75 + 1) / 4)
    assert aopc(np.array([2.0, 1.0, 0.5, 0.0])) == pytest.approx(1.125)
    assert aopc([3.0, 3.0, 3.0]) == 0.0
    assert aopc([1.0, 1.5]) == pytest.approx(-0.25)  # the score may rise
    assert aopc([5.0]) == 0.0
    with pytest.raises(ValueError):
        aopc([])


def test_patch_size_scales_with_the_image():
    assert patch_size_for(256) == 8 and patch_size_for(512) == 16 and patch_size_for(16) == 1


def test_patch_relevance_and_pixel_ranks_match_loops():
    gen = torch.Generator().manual_seed(3)
    maps = torch.randn(2, 10, 13, generator=gen)
    scores = patch_relevance(maps, 4)  # a 3 x 4 grid, the last row and column are smaller
    assert scores.shape == (2, 12)
    for n in range(2):
        for p in range(12):
            r, c = divmod(p, 4)
            expected = maps[n, 4 * r:4 * r + 4, 4 * c:4 * c + 4].double().sum()
            assert scores[n, p].item() == pytest.approx(expected.item(), abs=1e-9)
    order = perturbation_order(scores, "morf")[0]
    assert scores[0, order].diff().le(0).all()
    ranks = pixel_ranks(order, 10, 13, 4)
    for count in (0, 1, 5, 12):
        expected = torch.zeros(10, 13, dtype=torch.bool)
        for p in order[:count].tolist():
            r, c = divmod(p, 4)
            expected[4 * r:4 * r + 4, 4 * c:4 * c + 4] = True
        assert torch.equal(ranks < count, expected)


def test_lerf_is_the_reverse_ranking_and_ties_are_stable():
    scores = torch.tensor([[0.0, 3.0, -1.0, 0.0, 2.0]])
    assert perturbation_order(scores, "morf").tolist() == [[1, 4, 0, 3, 2]]
    assert perturbation_order(scores, "lerf").tolist() == [[2, 0, 3, 4, 1]]
    with pytest.raises(ValueError, match="morf"):
        perturbation_order(scores, "best")


def test_step_counts():
    assert step_counts(1024, 16, 0.5) == list(range(0, 513, 32))
    assert step_counts(10, 3, 1.0) == [0, 3, 7, 10]
    with pytest.raises(ValueError, match="fewer steps"):
        step_counts(16, 9, 0.5)


def test_relevance_mass_accuracy_and_pointing_game_by_hand():
    maps = torch.tensor([
        [[3.0, -5.0], [1.0, 0.0]],   # positive mass 4, 3 of it inside; max inside
        [[-1.0, 2.0], [6.0, 0.0]],   # positive mass 8, 2 inside; max (6) outside
        [[-1.0, -2.0], [0.0, 0.0]],  # no positive relevance
        [[1.0, 0.0], [0.0, 0.0]],    # empty mask
    ])
    masks = torch.tensor([
        [[True, True], [False, False]],
        [[True, True], [False, False]],
        [[True, False], [False, False]],
        [[False, False], [False, False]],
    ])
    mass = relevance_mass_accuracy(maps, masks)
    assert mass[:2].tolist() == pytest.approx([0.75, 0.25])
    assert math.isnan(mass[2]) and mass[3].item() == 0.0
    hits = pointing_game(maps, masks)
    assert hits[:2].tolist() == [1.0, 0.0]
    assert math.isnan(hits[2]) and math.isnan(hits[3])


def test_baselines():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    mean = baseline_images(x, "mean", 4)
    assert torch.allclose(mean[:, :, 5, 7], x.mean((2, 3)))
    assert (baseline_images(x, "black", 4) == -1).all()
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(baseline_images(flat, "blur", 4), flat, atol=1e-6)
    blurred = baseline_images(x, "blur", 4)
    assert blurred.std() < 0.3 * x.std()  # σ = 8 px removes almost all of the pixel noise
    a = baseline_images(x, "noise", 4, torch.Generator().manual_seed(1))
    b = baseline_images(x, "noise", 4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    with pytest.raises(ValueError, match="noise, blur"):
        baseline_images(x, "grey", 4)


def test_methods_and_settings_validation():
    names = method_names()
    assert names[:len(COMPOSITES)] == ["lrp:" + c for c in COMPOSITES]
    assert names[len(COMPOSITES):] == ["gradient", "gradient-x-input", "integrated-gradients",
                                       "random"]
    with pytest.raises(KeyError, match="choose from"):
        check_methods(["lrp:nope"])
    with pytest.raises(ValueError, match="baseline"):
        FaithfulnessSettings(baseline="zeros")
    with pytest.raises(ValueError, match="steps"):
        FaithfulnessSettings(steps=0)


def test_files_round_trip(planted, tmp_path):
    model, x = planted
    settings = FaithfulnessSettings(methods=("gradient", RANDOM), patch=PATCH, steps=4,
                                    precision="fp32")
    result = evaluate_faithfulness(model, torch.cat([x, x.flip(-1)]),
                                   torch.stack([_region_mask()] * 2), ["a", "b"], settings,
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


def test_dataset_from_split(tmp_path, monkeypatch):
    data = tmp_path / "data" / "kvasir"
    data.mkdir(parents=True)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    split = run / "split.json"
    split.write_text(json.dumps({"dataset": "data/kvasir", "train": [], "val": []}))
    monkeypatch.chdir(run)  # the relative path is found from a folder above the split file
    assert dataset_from_split(split).resolve() == data.resolve()
    assert dataset_from_split(split, "elsewhere") == type(data)("elsewhere")
    split.write_text(json.dumps({"dataset": "nowhere/x.zip:Kvasir-SEG/", "train": [], "val": []}))
    with pytest.raises(Exception, match="nowhere/x.zip, which was not found"):
        dataset_from_split(split)


# ---------------------------------------------------------------- the command

@pytest.fixture
def run_dir(tmp_path, pair_folder):
    from endoxai.config import Config
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION

    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                "generator": Generator().state_dict()}, run / "best.pt")
    (run / "split.json").write_text(json.dumps({
        "dataset": str(pair_folder), "train": ["case0", "case1", "case2", "case3"],
        "val": ["case4", "case5"]}))
    return run


@pytest.mark.slow
def test_cli_on_a_run(run_dir, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "faith"
    rc = main(["evaluate-explanations", "--run", str(run_dir), "--output", str(out),
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
