"""Confusion counts and formulas: numpy and torch give the same int64 counts, batched or not."""

import math

import numpy as np
import pytest
import torch

from endoxai.metrics import (
    Counts,
    accuracy,
    concat_counts,
    confusion_counts,
    dice,
    jaccard,
    precision,
    recall,
    safe_divide,
)


def _brute_counts(pred, target):
    """Per-pixel loop, independent of the vectorised code under test."""
    tp = fp = fn = tn = 0
    for p, t in zip(np.ravel(pred).tolist(), np.ravel(target).tolist()):
        tp += p and t
        fp += p and not t
        fn += t and not p
        tn += not p and not t
    return tp, fp, fn, tn


def test_single_mask_gives_scalar_counts_matching_a_pixel_loop():
    rng = np.random.default_rng(0)
    pred = rng.random((7, 9)) < 0.4
    target = rng.random((7, 9)) < 0.3
    c = confusion_counts(pred, target)
    assert all(np.ndim(x) == 0 for x in c)
    assert tuple(int(x) for x in c) == _brute_counts(pred, target)
    assert int(c.n) == 63


def test_batched_numpy_and_torch_agree_with_pixel_loop():
    rng = np.random.default_rng(1)
    pred = rng.random((5, 1, 6, 8)) < 0.5
    target = rng.random((5, 1, 6, 8)) < 0.5
    c_np = confusion_counts(pred, target)
    c_t = confusion_counts(torch.from_numpy(pred), torch.from_numpy(target))
    assert c_np.tp.shape == (5,) and c_np.tp.dtype == np.int64
    assert tuple(c_t.tp.shape) == (5,) and c_t.tp.dtype == torch.int64
    for i in range(5):
        expected = _brute_counts(pred[i], target[i])
        assert tuple(int(x[i]) for x in c_np) == expected
        assert tuple(int(x[i]) for x in c_t) == expected


def test_batched_flag_overrides_the_dimension_rule():
    pred = np.ones((2, 3, 4), bool)
    target = np.zeros((2, 3, 4), bool)
    whole = confusion_counts(pred, target, batched=False)
    assert np.ndim(whole.fp) == 0 and int(whole.fp) == 24
    rows = confusion_counts(pred[0], target[0], batched=True)  # (3, 4) read as 3 "images"
    assert rows.fp.tolist() == [4, 4, 4]


def test_bad_inputs_are_rejected():
    m = np.zeros((4, 4), bool)
    with pytest.raises(TypeError, match="boolean"):
        confusion_counts(m.astype(np.uint8), m)
    with pytest.raises(TypeError, match="boolean"):
        confusion_counts(torch.zeros(4, 4), torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_counts(m, np.zeros((4, 5), bool))
    with pytest.raises(TypeError, match="both"):
        confusion_counts(m, torch.from_numpy(m))


def test_formulas_on_hand_counts_and_explicit_zero_division():
    c = Counts(*(np.array(v) for v in ([2, 0], [4, 0], [4, 0], [10, 7])))
    assert accuracy(c, zero_division=-1).tolist() == [12 / 20, 1.0]
    assert jaccard(c, zero_division=-1).tolist() == [2 / 10, -1]
    assert dice(c, zero_division=-1).tolist() == [4 / 12, -1]
    assert recall(c, zero_division=-1).tolist() == [2 / 6, -1]
    assert precision(c, zero_division=-1).tolist() == [2 / 6, -1]
    assert math.isnan(float(dice(Counts(0, 0, 0, 5), zero_division=math.nan)))


def test_torch_formulas_keep_device_and_give_float():
    c = confusion_counts(torch.tensor([[True, False], [False, False]])[None],
                         torch.tensor([[True, True], [False, False]])[None])
    d = dice(c, zero_division=0.0)
    assert d.dtype.is_floating_point and d.shape == (1,)
    assert d.item() == pytest.approx(2 / 3)
    nan = safe_divide(torch.tensor([0]), torch.tensor([0]), math.nan)
    assert torch.isnan(nan).all()


def test_concat_counts_joins_batches_and_scalars():
    a = confusion_counts(np.ones((2, 2, 2), bool), np.ones((2, 2, 2), bool))
    b = confusion_counts(np.zeros((2, 2), bool), np.ones((2, 2), bool))
    c = concat_counts([a, b])
    assert c.tp.tolist() == [4, 4, 0] and c.fn.tolist() == [0, 0, 4]
    t = concat_counts([confusion_counts(torch.ones(3, 2, 2, dtype=torch.bool),
                                        torch.zeros(3, 2, 2, dtype=torch.bool))] * 2)
    assert t.fp.tolist() == [4] * 6
    assert c.total().tp == 8
