"""Dataset summary: MedAI, pooled and nnU-Net scores of per-image counts, as a nested dict.

The dict is the public shape of ``endoxai evaluate --output metrics.json``::

    {"medai":  {"accuracy", "jaccard", "dice", "f1", "recall", "precision", "n_images"},
     "pooled": {"accuracy", "jaccard", "dice", "f1", "recall", "precision", "n_images"},
     "nnunet": {"dice", "jaccard", "n_images"}}

Every score is a float in [0, 1]. ``n_images`` is an int: the number of images for "medai" and
"pooled", and the number of images whose score is defined (not both masks empty) for "nnunet".
The nnU-Net means are NaN when no image has a defined score.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from endoxai.metrics.counts import Counts
from endoxai.metrics.medai import MEDAI_KEYS, medai_scores
from endoxai.metrics.nnunet import NNUNET_KEYS, nnunet_scores
from endoxai.metrics.pooled import pooled_scores


def counts_to_numpy(c: Counts) -> Counts:
    """Counts as int64 numpy arrays of shape (N,); torch tensors are copied to the CPU."""
    def conv(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.int64).reshape(-1)
    return Counts(*(conv(x) for x in c))


def summarize(c: Counts) -> dict[str, dict[str, float | int]]:
    """Mean MedAI scores, pooled scores and nnU-Net means of per-image counts (scalar or (N,)).

    Accepts numpy or torch counts, for example ``concat_counts`` of a validation epoch. All the
    arithmetic is done in float64 numpy, so the result does not depend on the device.
    """
    c = counts_to_numpy(c)
    n_images = int(c.tp.shape[0])
    if n_images == 0:
        raise ValueError("cannot summarize zero images")
    medai = medai_scores(c)
    nnunet = nnunet_scores(c)
    defined = ~np.isnan(nnunet["dice"])
    n_defined = int(defined.sum())
    return {
        "medai": {**{k: float(np.mean(medai[k])) for k in MEDAI_KEYS}, "n_images": n_images},
        "pooled": {**pooled_scores(c), "n_images": n_images},
        "nnunet": {
            **{k: float(np.mean(nnunet[k][defined])) if n_defined else math.nan
               for k in NNUNET_KEYS},
            "n_images": n_defined,
        },
    }
