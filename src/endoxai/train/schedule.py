"""Learning-rate schedules as pure functions of the epoch."""

from __future__ import annotations

from endoxai.config import TrainConfig


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate during 0-based ``epoch``.

    ``constant``: 1. ``linear`` (pix2pix): 1 for the first ``epochs - decay_epochs`` epochs, then
    decreasing linearly so that decay epoch k (1-based) uses ``1 - k / (decay_epochs + 1)``; the
    last epoch still learns. ``decay_epochs = 0`` decays over all epochs.
    """
    if cfg.lr_schedule == "constant":
        return 1.0
    decay = cfg.decay_epochs or cfg.epochs
    start = cfg.epochs - decay
    if epoch < start:
        return 1.0
    return max(0.0, 1.0 - (epoch - start + 1) / (decay + 1))
