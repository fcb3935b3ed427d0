"""Learning-rate schedules as pure functions of the epoch."""

from __future__ import annotations

from endoxai.config import TrainConfig


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate during 0-based ``epoch``.

    ``constant``: 1. ``linear`` (pix2pix): 1 until the last ``D = round(decay_fraction * epochs)``
    epochs (at least 1), then decreasing linearly so that decay epoch k (1-based) uses
    ``1 - k / (D + 1)``; the last epoch still learns.
    """
    if cfg.lr_schedule == "constant":
        return 1.0
    decay = max(1, round(cfg.decay_fraction * cfg.epochs))
    start = cfg.epochs - decay
    if epoch < start:
        return 1.0
    return max(0.0, 1.0 - (epoch - start + 1) / (decay + 1))
