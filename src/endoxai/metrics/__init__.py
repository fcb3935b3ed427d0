"""Segmentation metrics: per-image confusion counts, then formulas (MedAI, pooled, nnU-Net).

Typical use in a validation loop, where ``logits`` has shape (N, 1, H, W) and ``target`` is a bool
tensor of the same shape::

    counts = confusion_counts(logits > 0, target)     # Counts of (N,) int64 tensors
    dice_per_image = medai_scores(counts)["dice"]     # (N,) float tensor, MedAI protocol
    parts.append(counts)
    ...
    summary = summarize(concat_counts(parts))         # {"medai": ..., "pooled": ..., "nnunet": ...}
"""

from endoxai.metrics.counts import (
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
from endoxai.metrics.medai import MEDAI_KEYS, invert_empty_targets, medai_scores
from endoxai.metrics.nnunet import NNUNET_KEYS, nnunet_scores
from endoxai.metrics.pooled import POOLED_KEYS, pooled_scores
from endoxai.metrics.summary import summarize

__all__ = [
    "Counts", "confusion_counts", "concat_counts", "safe_divide",
    "accuracy", "jaccard", "dice", "recall", "precision",
    "MEDAI_KEYS", "medai_scores", "invert_empty_targets",
    "POOLED_KEYS", "pooled_scores",
    "NNUNET_KEYS", "nnunet_scores",
    "summarize",
]
