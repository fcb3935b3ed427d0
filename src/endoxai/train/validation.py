"""Validation during training: MedAI per-image metrics of ``logit > 0`` at model resolution."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from endoxai.data import Arrays
from endoxai.data.preprocess import to_model_input
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.train.interrupt import StopRequest
from endoxai.train.state import TrainRun

VAL_METRICS = ("dice", "jaccard", "accuracy", "recall", "precision")


def epoch_scores(run: TrainRun, train_set: Arrays, val_set: Arrays, dev: torch.device,
                 amp: AbstractContextManager, stop: StopRequest) -> dict[str, float] | None:
    """The epoch's ``val_*`` metrics and, with ``train.fit_images`` N > 0, ``fit_dice``: the same
    eval-mode Dice on the first N training images (unaugmented), which tells underfitting (low)
    from overfitting (far above val_dice). With a weight average (``train.ema_decay``) the
    ``val_*`` metrics are the average's, and ``val_dice_trained`` is the trained weights' own
    validation Dice beside it, so each epoch shows what the average gains. None when a signal
    came meanwhile."""
    batch_size, should_stop = run.cfg.train.batch_size // run.ddp.world, lambda: stop.requested
    val = validate(run.model, val_set, batch_size, dev, amp, should_stop)
    if val is None:
        return None
    scores = {f"val_{k}": v for k, v in val.items()}
    if run.ema is not None:
        trained = validate(run.g, val_set, batch_size, dev, amp, should_stop)
        if trained is None:
            return None
        scores["val_dice_trained"] = trained["dice"]
    if run.cfg.train.fit_images:
        fit = validate(run.model, train_set, batch_size, dev, amp, should_stop,
                       limit=run.cfg.train.fit_images)
        if fit is None:
            return None
        scores["fit_dice"] = fit["dice"]
    return scores


@torch.no_grad()
def validate(
    g: torch.nn.Module,
    split: Arrays,
    batch_size: int,
    device: torch.device,
    amp: AbstractContextManager,
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
) -> dict[str, float] | None:
    """MedAI per-image metrics of ``logit > 0`` at model resolution, averaged over ``split``'s
    decoded pairs (the validation split, or the training one for ``fit_dice``) or its first
    ``limit``.

    Returns None when ``should_stop()`` became true between two batches (validation abandoned).
    """
    was_training = g.training
    g.eval()
    per_image: dict[str, list[torch.Tensor]] = {k: [] for k in VAL_METRICS}
    n = len(split.stems) if limit is None else min(limit, len(split.stems))
    try:
        for idx in torch.arange(n).split(batch_size):
            if should_stop is not None and should_stop():
                return None
            images = to_model_input(split.images[idx]).to(device, memory_format=torch.channels_last)
            with amp:
                pred = g.logits(images).float() > 0
            scores = medai_scores(confusion_counts(pred.cpu(), split.masks[idx].bool()))
            for k in VAL_METRICS:
                per_image[k].append(torch.as_tensor(scores[k], dtype=torch.float64))
    finally:
        g.train(was_training)
    return {k: torch.cat(v).mean().item() for k, v in per_image.items()}
