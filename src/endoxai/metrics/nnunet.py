"""nnU-Net-style per-image Dice and Jaccard: NaN when both masks are empty, left out of the mean.

This follows ``compute_metrics`` and ``compute_metrics_on_folder`` in
``nnunetv2/evaluation/evaluate_predictions.py`` of https://github.com/MIC-DKFZ/nnUNet. Per image,
Dice = 2 tp / (2 tp + fp + fn) and IoU = tp / (tp + fp + fn). These are NaN when tp + fp + fn = 0,
that is, when truth and prediction are both empty. The dataset value is ``np.nanmean``, so such
images count neither for nor against the model. An empty truth with any predicted foreground
scores 0. There is no inversion.
"""

from __future__ import annotations

import math

from endoxai.metrics.counts import Array, Counts, dice, jaccard

NNUNET_KEYS = ("dice", "jaccard")


def nnunet_scores(c: Counts) -> dict[str, Array]:
    """Per-image Dice and Jaccard (scalar or (N,)), in [0, 1], NaN where both masks are empty."""
    return {
        "dice": dice(c, zero_division=math.nan),
        "jaccard": jaccard(c, zero_division=math.nan),
    }
