"""Randomisation sanity checks: which weights each stage redraws, and the similarities."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from endoxai.explain.sanity import (
    SanitySettings,
    Stage,
    evaluate_sanity,
    randomise,
    stages,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: find unets
from unets import small_generator  # noqa: E402

ORDER = [f"up{j}" for j in range(8, 0, -1)] + [f"down{i}" for i in range(8, 0, -1)]


def images(n: int = 2, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.rand(n, 3, 256, 256, generator=gen, dtype=dtype) * 2 - 1


def changed(a: nn.Module, b: nn.Module) -> set[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return {k for k in sa if not torch.equal(sa[k], sb[k])}


def test_stages_cascade_from_the_output_inward_then_the_parts():
    plan = stages(8, SanitySettings())
    cascade = [s for s in plan if s.kind == "cascade"]
    assert [s.name for s in cascade] == ORDER
    for i, s in enumerate(cascade):
        assert s.blocks == tuple(ORDER[:i + 1])
    parts = {s.name: s for s in plan if s.kind == "independent"}
    assert set(parts["encoder"].blocks) == {f"down{i}" for i in range(1, 9)}
    assert set(parts["decoder"].blocks) == {f"up{j}" for j in range(1, 9)}
    assert parts["skips"].skips_only and parts["skips"].blocks == ()
    assert [s.name for s in stages(8, SanitySettings(cascade=False, independent=("skips",)))] \
        == ["skips"]


def test_randomise_redraws_exactly_the_named_blocks():
    g = small_generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    twin = randomise(g, Stage("up7", "cascade", ("up8", "up7")), seed=1)
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())  # original intact
    # BatchNorm running statistics are kept; up8's bias is one number, which N(mean, std) of
    # itself redraws as itself
    assert changed(g, twin) == {"up8.0.weight", "up7.0.weight", "up7.1.weight", "up7.1.bias"}
    w, w2 = g.up7[0].weight, twin.up7[0].weight
    spread = 3 * w.std().item() / w.numel() ** 0.5  # of the mean of w.numel() draws
    assert w2.mean().item() == pytest.approx(w.mean().item(), abs=spread)
    assert w2.std().item() == pytest.approx(w.std().item(), rel=0.1)
    # a block gets the same draw at every stage it is randomised in, and per seed
    deeper = randomise(g, Stage("up6", "cascade", ("up8", "up7", "up6")), seed=1)
    assert torch.equal(deeper.up7[0].weight, twin.up7[0].weight)
    assert not torch.equal(randomise(g, Stage("up7", "cascade", ("up7",)), seed=2).up7[0].weight,
                           twin.up7[0].weight)


def test_randomise_skips_only_redraws_the_skip_inputs_of_the_decoder():
    g = small_generator()
    twin = randomise(g, Stage("skips", "independent", (), skips_only=True), seed=0)
    assert changed(g, twin) == {f"up{j}.0.weight" for j in range(2, 9)}
    for j in range(2, 9):
        c = g.get_submodule(f"up{j - 1}")[0].out_channels
        old, new = g.get_submodule(f"up{j}")[0].weight, twin.get_submodule(f"up{j}")[0].weight
        assert torch.equal(old[:c], new[:c])  # the upsampled path is read as trained
        assert (old[c:] != new[c:]).all()


@pytest.fixture(scope="module")
def bias_free_result():
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits on a shared machine
    settings = SanitySettings(methods=("lrp:lrp0", "gradient-x-input", "gradient"),
                              batch_size=2)
    return evaluate_sanity(small_generator(seed=1, bias_free=True, dtype=torch.float32),
                           images(dtype=torch.float32), ["a", "b"], settings, progress=False)


@pytest.mark.slow  # 19 models × 3 methods × 2 images
def test_lrp0_and_gradient_times_input_agree_at_every_stage(bias_free_result):
    # Redrawn zero biases stay zero, so every randomised model is bias-free too, where LRP-0 is
    # gradient × input: the two methods, computed by different code, must score alike.
    r = bias_free_result
    assert r.names == ["a", "b"] and len(r.similarity) == 16 + 3
    for stage, per_method in r.similarity.items():
        for measure in ("spearman", "ssim"):
            assert per_method["lrp:lrp0"][measure] == pytest.approx(
                per_method["gradient-x-input"][measure], abs=1e-4), (stage, measure)


@pytest.mark.slow
def test_similarity_falls_as_the_cascade_goes_deeper(bias_free_result):
    s = bias_free_result.summary()
    first, last = s["up8"]["gradient"]["spearman"], s["down1"]["gradient"]["spearman"]
    assert 0 < last["mean"] < first["mean"] < 1
    assert last["low"] <= last["mean"] <= last["high"]
    # the decoder alone is the cascade's up1 stage: one computation, the same numbers
    assert bias_free_result.similarity["decoder"] == bias_free_result.similarity["up1"]
    assert all(v < 0.999 for v in bias_free_result.similarity["skips"]["gradient"]["spearman"])


@pytest.mark.slow
def test_every_stage_has_the_partial_rank_correlation(bias_free_result):
    for stage, per_method in bias_free_result.similarity.items():
        for method, values in per_method.items():
            partial, plain = values["spearman_partial"], values["spearman"]
            assert len(partial) == 2 and all(-1 <= v <= 1 for v in partial), (stage, method)
            assert partial != plain, (stage, method)


def test_empty_predictions_are_skipped_and_bad_input_refused():
    g = small_generator(seed=2)
    with torch.no_grad():
        g.up8[0].bias.fill_(-1e6)  # nothing predicted anywhere
    r = evaluate_sanity(g, images(1), ["x"], SanitySettings(methods=("gradient",)),
                        progress=False)
    assert r.names == [] and r.skipped == [{"name": "x", "reason": "empty prediction"}]
    with pytest.raises(ValueError, match="eval mode"):
        evaluate_sanity(g.train(), images(1))
    with pytest.raises(ValueError, match="U-Net"):
        evaluate_sanity(nn.Sequential(nn.Conv2d(3, 1, 3)).eval(), images(1))
    with pytest.raises(ValueError, match="random order"):
        SanitySettings(methods=("random",))
    with pytest.raises(ValueError, match="unknown independent"):
        SanitySettings(independent=("bottleneck",))


def test_the_data_randomised_model_is_compared_as_it_is():
    g = small_generator(seed=4, dtype=torch.float32)
    settings = SanitySettings(methods=("gradient",), cascade=False, independent=("decoder",))
    x = images(1, dtype=torch.float32)
    same = evaluate_sanity(g, x, ["a"], settings, progress=False, data_random=copy.deepcopy(g))
    assert [s["name"] for s in same.stages] == ["decoder", "data"]
    assert same.stages[1]["kind"] == "data"
    assert same.similarity["data"]["gradient"]["spearman"] == pytest.approx([1.0])  # not redrawn
    other = evaluate_sanity(g, x, ["a"], settings, progress=False,
                            data_random=small_generator(seed=5, dtype=torch.float32))
    assert other.similarity["data"]["gradient"]["spearman"][0] < 0.99
    assert other.similarity["decoder"] == same.similarity["decoder"]
    shallow = nn.Module()  # a U-Net of depth 2, the model's is 8
    for name in ("down1", "down2", "up1", "up2"):
        shallow.add_module(name, nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="depth"):
        evaluate_sanity(g, x, ["a"], settings, progress=False, data_random=shallow.eval())
