"""The MedAI 2021 challenge protocol: per-image scores, both masks inverted when the truth is empty.

What the official evaluator does
--------------------------------
Source: ``evaluation/segmentation_evaluation.py`` in the organisers' repository
https://github.com/Nordic-Machine-Intelligence/MedAI-Transparency-in-Medical-Image-Segmentation
(commit a1285eda2b31b2011538871af21d1e17cc0d245a). The challenge was "MedAI: Transparency in
Medical Image Segmentation" (Nordic AI Meet 2021; results in Nordic Machine Intelligence). For each
image it does this:

1. Read each mask with OpenCV as 8-bit grey. If the mask's maximum is above 127, divide it by 255.
   Pixels above 0.5 are foreground. So a 0/255 mask is foreground where grey > 127.5, and a 0/1
   mask is foreground where the value is 1. Both masks are then flattened.
2. If the ground truth has no foreground pixel, invert both masks, so that background becomes
   foreground. A correct "nothing here" prediction then scores 1 everywhere, not 0/0.
3. Compute six scores from scikit-learn on the two flat 0/1 vectors: ``accuracy_score``,
   ``jaccard_score``, ``f1_score`` and ``recall_score`` (``average="binary"``, other arguments
   left at their defaults), ``precision_score`` (``average="binary", zero_division=0``), plus its
   own Dice, ``2 |P ∩ T| / (|P| + |T|)``.
4. Report the plain mean of each score over all images (``np.mean``), and a per-image CSV with
   4 decimals.

0/0 cases. After step 2 the truth always has at least one foreground pixel, so the denominators
of Jaccard (tp + fp + fn), Dice and F1 (2 tp + fp + fn), recall (tp + fn) and accuracy (n) are
never 0. Only precision can be 0/0: when nothing is predicted as foreground (after the inversion),
precision is **0** (``zero_division=0``). Here is what that means for the hand-checkable cases:

- truth empty, prediction empty: both become all-foreground, so every score is 1.
- truth empty, k of n pixels predicted: after the inversion tp = n - k and fn = k. Accuracy =
  Jaccard = recall = (n - k) / n, Dice = F1 = 2 (n - k) / (2n - k), and precision is 1 (or 0
  when k = n).
- truth non-empty, prediction empty: tp = 0, so precision = recall = Jaccard = Dice = F1 = 0, and
  accuracy = tn / n.

A mask with no pixels makes scikit-learn raise an error, so ``medai_scores`` raises ValueError.
F1 and Dice are the same quantity for binary masks. Both are reported, as the official evaluator
does.

How endoxai differs
-------------------
- endoxai reads masks with ``endoxai.data.io.read_mask`` (Pillow): grey > 127.5 is foreground,
  or > 0.5 if every value is 0 or 1. This matches the official rule for any mask whose maximum is
  above 127 or at most 1. It differs only for a mask whose maximum is between 2 and 127: OpenCV's
  rule then counts every non-zero pixel as foreground, and endoxai counts none. Pillow and OpenCV
  can also decode a JPEG one grey level apart. That matters only for pixels within one level of
  127.5, and Kvasir masks have none (SOURCES.md).
- The official script pairs files by their position in two sorted lists, and its only check is an
  assert. ``endoxai.evaluate`` pairs them by stem and names every missing, extra or mismatched file.
"""

from __future__ import annotations

import numpy as np
import torch

from endoxai.metrics.counts import Array, Counts, accuracy, dice, jaccard, precision, recall

MEDAI_KEYS = ("accuracy", "jaccard", "dice", "f1", "recall", "precision")  # official CSV order


def invert_empty_targets(c: Counts) -> Counts:
    """Counts after inverting both masks of each image whose target has no foreground (step 2).

    Inverting both masks swaps tp with tn and fp with fn. Images with foreground are unchanged.
    """
    xp = torch if isinstance(c.tp, torch.Tensor) else np
    empty = (c.tp + c.fn) == 0
    return Counts(
        tp=xp.where(empty, c.tn, c.tp),
        fp=xp.where(empty, c.fn, c.fp),
        fn=xp.where(empty, c.fp, c.fn),
        tn=xp.where(empty, c.tp, c.tn),
    )


def medai_scores(c: Counts) -> dict[str, Array]:
    """Per-image MedAI scores from counts (scalar or (N,)), in [0, 1], keyed by ``MEDAI_KEYS``.

    Take the mean over images to get the challenge's numbers (``endoxai.metrics.summarize`` does
    this). Raises ValueError for an image with no pixels.
    """
    if bool((c.n == 0).any()):
        raise ValueError("cannot score a mask with no pixels (the official evaluator fails on it)")
    c = invert_empty_targets(c)
    # After the inversion only precision can be 0/0 (see the module docstring). The other
    # zero_division values are never used; 0.0 is scikit-learn's default for them.
    return {
        "accuracy": accuracy(c, zero_division=0.0),
        "jaccard": jaccard(c, zero_division=0.0),
        "dice": dice(c, zero_division=0.0),
        "f1": dice(c, zero_division=0.0),
        "recall": recall(c, zero_division=0.0),
        "precision": precision(c, zero_division=0.0),
    }
