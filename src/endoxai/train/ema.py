"""An exponential moving average of the generator's weights (``train.ema_decay``).

After every optimiser step, each floating-point tensor of the average (parameters and BatchNorm
running statistics) moves towards the trained model's by ``1 - d``::

    avg = d * avg + (1 - d) * weight,     d = min(ema_decay, (1 + n) / (10 + n))

where ``n`` is the number of updates so far: early in training, when the average would mostly
hold the random initialisation, ``d`` is smaller (0.1 at the first update, 0.9 from n = 80).
Integer buffers (BatchNorm's batch counter) are copied. The average is what validation scores
and what ``best.pt`` / ``last.pt`` store as ``generator`` (so ``predict``, ``explain`` and the
rest use it without knowing); the trained weights are kept beside it as ``generator_train`` for
``--resume``, and each epoch's ``val_dice_trained`` in ``history.csv`` is their validation Dice.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The averaged copy of ``model``, always in eval mode and without gradients."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1); got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The ``d`` the next update uses."""
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        averaged, trained = [], []
        for avg, new in zip(self.module.state_dict().values(), model.state_dict().values(),
                            strict=True):
            if avg.is_floating_point():
                averaged.append(avg)
                trained.append(new.detach())
            else:
                avg.copy_(new)
        torch._foreach_lerp_(averaged, trained, weight)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, weights: dict[str, Any], updates: int) -> None:
        self.module.load_state_dict(weights)
        self.updates = int(updates)
