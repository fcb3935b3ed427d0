"""Region perturbation: patches, orders, steps, baselines and AOPC on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from endoxai.explain.perturbation import (
    aopc,
    baseline_images,
    patch_relevance,
    patch_size_for,
    perturbation_order,
    pixel_ranks,
    step_counts,
)


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


def test_dice_to_target_hand_cases():
    from endoxai.explain.perturbation import dice_to_target

    target = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    target[..., 0, :] = True  # 2 pixels
    logits = torch.full((4, 1, 2, 2), -1.0)
    logits[0, 0, 0, :] = 1.0  # the same 2 pixels: 1
    logits[1, 0, 1, :] = 1.0  # the other 2: 0
    logits[2, 0, :, 0] = 1.0  # 2 pixels, 1 shared: 2·1 / (2 + 2)
    assert dice_to_target(logits, target).tolist() == [1.0, 0.0, 0.5, 0.0]  # 4th: nothing
    empty = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    assert dice_to_target(torch.full((1, 1, 2, 2), -1.0), empty).tolist() == [1.0]


def test_perturbation_scores_dice_follows_the_removed_pixels():
    from endoxai.explain.perturbation import perturbation_scores

    # logit = the red channel: the prediction is where red > 0; black patches (-1) erase it there
    model = torch.nn.Conv2d(3, 1, 1, bias=False).double().eval()
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = 1.0
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 16, 16, generator=gen, dtype=torch.float64) * 2 - 1
    target = x[:, :1] > 0
    order = torch.randperm(16, generator=gen)
    ranks = pixel_ranks(order, 16, 16, 4)
    counts = [0, 3, 7]
    out = perturbation_scores(model, x, target, {"a": ranks}, counts,
                              torch.full_like(x, -1.0), batch_size=2)
    t = int(target.sum())
    for k, n in enumerate(counts):
        kept = target[0, 0] & (ranks >= n)
        assert out["dice"]["a"][k] == pytest.approx(2 * int(kept.sum()) / (int(kept.sum()) + t))
        assert out["logit"]["a"][k] == pytest.approx(
            float(torch.where(kept, x[0, 0], torch.zeros(())).sum() - (target[0, 0] & ~kept).sum()))
    assert out["dice"]["a"][0] == 1.0 and out["dice"]["a"][-1] < 1.0
