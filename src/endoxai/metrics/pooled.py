"""Pooled (micro-averaged) scores: counts summed over all pixels of all images, then the formulas.

This is not the MedAI protocol. There is no per-image mean and no empty-truth inversion. Large
masks weigh more, and an image with an empty truth adds only its false positives. The result is
what scikit-learn gives for the concatenation of all flattened masks, with ``zero_division=0``.
The 0/0 cases are: no predicted foreground anywhere gives precision **0**; no true foreground
anywhere gives recall **0**; no foreground in either gives Jaccard, Dice and F1 **0**. Accuracy
needs at least one pixel.
"""

from __future__ import annotations

from endoxai.metrics.counts import Counts, accuracy, dice, jaccard, precision, recall

POOLED_KEYS = ("accuracy", "jaccard", "dice", "f1", "recall", "precision")


def pooled_scores(c: Counts) -> dict[str, float]:
    """Scores of the summed counts (c scalar or (N,)): floats in [0, 1], keys ``POOLED_KEYS``."""
    t = c.total()
    if int(t.n) == 0:
        raise ValueError("cannot score masks with no pixels")
    scores = {
        "accuracy": accuracy(t, zero_division=0.0),
        "jaccard": jaccard(t, zero_division=0.0),
        "dice": dice(t, zero_division=0.0),
        "f1": dice(t, zero_division=0.0),
        "recall": recall(t, zero_division=0.0),
        "precision": precision(t, zero_division=0.0),
    }
    return {k: float(v) for k, v in scores.items()}
