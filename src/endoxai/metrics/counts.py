"""Confusion counts of binary masks and the one-line formulas built on them (numpy or torch).

Every metric in endoxai is computed in two steps: ``confusion_counts(pred, target)`` reduces a pair
of boolean masks to four int64 counts, then a formula turns counts into a score. The same code runs
on numpy arrays and on torch tensors (CPU or GPU); the result has the type of the input.

Shapes: a single mask is 2-D (H, W) and gives scalar (0-d) counts. A batch is (N, ...) with N images
(e.g. (N, 1, H, W) from a model) and gives counts of shape (N,), one per image. The default decides
by dimension (2-D: one image, 3-D or more: a batch); pass ``batched`` to say it explicitly.

Every formula has a 0/0 case, and each one takes a required ``zero_division`` value for it, so the
caller has to choose it. The protocols in ``medai``, ``pooled`` and ``nnunet`` make that choice and
document it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]  # bool masks in; int64 counts or float scores out


class Counts(NamedTuple):
    """Pixel counts per image: int64, scalar for one image or shape (N,) for a batch.

    tp: predicted and true foreground; fp: predicted foreground, true background;
    fn: predicted background, true foreground; tn: predicted and true background.
    """

    tp: Array
    fp: Array
    fn: Array
    tn: Array

    @property
    def n(self) -> Array:
        """Pixels per image (tp + fp + fn + tn)."""
        return self.tp + self.fp + self.fn + self.tn

    def total(self) -> Counts:
        """Counts summed over all images (scalar fields): the input of pooled metrics."""
        return Counts(*(c.sum() for c in self))


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def confusion_counts(pred: Array, target: Array, batched: bool | None = None) -> Counts:
    """Count tp, fp, fn, tn of boolean masks ``pred`` and ``target`` (same shape, same library).

    pred, target: bool arrays or tensors, (H, W) for one image or (N, ...) for N images. Threshold
    first (e.g. ``logits > 0``, ``mask > 127.5``): other dtypes are rejected, because a silently
    chosen threshold is the usual source of wrong Dice scores.
    batched: True counts per image over all dimensions but the first, giving (N,) counts; False
    counts the whole input as one image, giving scalar counts; None (default) means
    ``pred.ndim >= 3``.
    """
    if _is_torch(pred) != _is_torch(target):
        raise TypeError("pred and target must both be numpy arrays or both torch tensors; got "
                        f"{type(pred).__name__} and {type(target).__name__}")
    if not _is_torch(pred):
        pred, target = np.asarray(pred), np.asarray(target)
    for name, x in (("pred", pred), ("target", target)):
        if x.dtype not in (np.bool_, torch.bool):
            raise TypeError(f"{name} must be a boolean mask (threshold it first); "
                            f"got dtype {x.dtype}")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs "
                         f"{tuple(target.shape)}")
    if batched is None:
        batched = pred.ndim >= 3
    if batched:
        if pred.ndim < 1:
            raise ValueError("a batch needs at least one dimension (N, ...)")
        flat = (pred.shape[0], math.prod(pred.shape[1:]))
        pred, target = pred.reshape(flat), target.reshape(flat)
    else:
        pred, target = pred.reshape(-1), target.reshape(-1)
    # Three sums and one subtraction; bool sums are int64 in both numpy and torch.
    tp = (pred & target).sum(-1)
    n_pred = pred.sum(-1)
    n_true = target.sum(-1)
    n = pred.shape[-1]
    return Counts(tp=tp, fp=n_pred - tp, fn=n_true - tp, tn=n - n_pred - n_true + tp)


def concat_counts(parts: Sequence[Counts]) -> Counts:
    """Join per-batch counts (each scalar or (N_i,)) into one Counts of shape (sum N_i,)."""
    if not parts:
        raise ValueError("concat_counts needs at least one Counts")
    if _is_torch(parts[0].tp):
        return Counts(*(torch.cat([p[i].reshape(-1) for p in parts]) for i in range(4)))
    return Counts(*(np.concatenate([np.reshape(p[i], -1) for p in parts]) for i in range(4)))


def safe_divide(num: Array, den: Array, zero_division: float) -> Array:
    """num / den as float, and ``zero_division`` (may be nan) wherever den == 0."""
    ratio = num / (den + (den == 0))  # divide by 1 where den == 0: no warning, no inf
    if _is_torch(ratio):
        return torch.where(den == 0, torch.full_like(ratio, zero_division), ratio)
    return np.where(den == 0, zero_division, ratio)


def accuracy(c: Counts, *, zero_division: float) -> Array:
    """(tp + tn) / n: fraction of pixels labelled correctly."""
    return safe_divide(c.tp + c.tn, c.n, zero_division)


def jaccard(c: Counts, *, zero_division: float) -> Array:
    """tp / (tp + fp + fn): intersection over union (IoU)."""
    return safe_divide(c.tp, c.tp + c.fp + c.fn, zero_division)


def dice(c: Counts, *, zero_division: float) -> Array:
    """2 tp / (2 tp + fp + fn): Dice coefficient, equal to the F1 score of binary masks."""
    return safe_divide(2 * c.tp, 2 * c.tp + c.fp + c.fn, zero_division)


def recall(c: Counts, *, zero_division: float) -> Array:
    """tp / (tp + fn): sensitivity, the fraction of true foreground that was found."""
    return safe_divide(c.tp, c.tp + c.fn, zero_division)


def precision(c: Counts, *, zero_division: float) -> Array:
    """tp / (tp + fp): the fraction of predicted foreground that is true foreground."""
    return safe_divide(c.tp, c.tp + c.fp, zero_division)
