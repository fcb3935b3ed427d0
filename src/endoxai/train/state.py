"""The mutable state of one training run (models, optimisers, RNG, progress) and of its epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from endoxai.config import Config
from endoxai.train.distributed import Distributed
from endoxai.train.ema import WeightAverage


@dataclass
class EpochState:
    """Where training stands inside an epoch, enough to continue it exactly: the epoch's
    permutation of the training pairs, the batches done, the running sums of the step logs and
    the seconds spent. Stored as ``partial`` in a mid-epoch checkpoint."""

    order: torch.Tensor  # int64 (N,)
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "step": self.step, "sums": dict(self.sums),
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EpochState:
        return cls(raw["order"].long(), int(raw["step"]), dict(raw["sums"]), float(raw["seconds"]))


@dataclass
class TrainRun:
    """The mutable state of one ``fit`` call: models, optimisers, RNG, progress, what is saved."""

    cfg: Config
    run_dir: Path
    g: torch.nn.Module
    d: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    data_rng: torch.Generator
    ddp: Distributed  # rank 0 of 1 without torchrun
    g_step: Any  # g and d as train_step gets them: the modules, or their DDP views
    d_step: torch.nn.Module
    epoch: int = 0  # completed epochs
    best_dice: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: EpochState | None = None
    ema: WeightAverage | None = None  # with train.ema_decay > 0: what is validated and saved
    saved: str = "no checkpoint was written"  # what last.pt holds, for messages

    @property
    def model(self) -> torch.nn.Module:
        """The generator that validation scores and checkpoints store as ``generator``."""
        return self.g if self.ema is None else self.ema.module

    def describe(self) -> str:
        """What a last.pt written now holds, in words for messages."""
        if self.partial is not None:
            n = math.ceil(len(self.partial.order) / self.cfg.train.batch_size)
            return (f"resumable, epoch {self.epoch + 1} stopped after step {self.partial.step} "
                    f"of {n}")
        return f"the last good checkpoint, after epoch {self.epoch}"
