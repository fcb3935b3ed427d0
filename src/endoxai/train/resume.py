"""A run's state into ``last.pt`` / ``best.pt`` and back: what makes ``--resume`` exact.

The file format is ``train.checkpoint``'s; here is which part of a ``TrainRun`` goes where, and
the checks that a checkpoint fits the run it is loaded into.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.train.checkpoint import (
    FORMAT,
    VERSION,
    atomic_save,
    check_resumable,
    config_of,
    load_checkpoint,
    model_part,
)
from endoxai.train.state import EpochState, TrainRun

log = logging.getLogger(__name__)


def resume_state(run_dir: Path) -> dict[str, Any]:
    """The resumable checkpoint ``run_dir/last.pt``; UserError if missing or not resumable."""
    path = run_dir / "last.pt"
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    return ckpt


def resume_config(run_dir: str | Path, epochs: int | None = None) -> Config:
    """The config stored in ``run_dir/last.pt``, optionally with more ``epochs``."""
    path = Path(run_dir) / "last.pt"
    cfg = config_of(resume_state(Path(run_dir)), path)
    try:
        return cfg.override(train={"epochs": epochs}) if epochs else cfg
    except ValueError as err:
        raise UserError(f"invalid option: {err}") from err


def restore(run: TrainRun, ckpt: dict[str, Any], n_train: int) -> None:
    """Load the state of a checkpoint into ``run``; UserError if it does not fit."""
    path = run.run_dir / "last.pt"
    try:
        if run.ema is None:
            run.g.load_state_dict(ckpt["generator"])
        else:  # "generator" holds the average, "generator_train" the trained weights
            run.g.load_state_dict(ckpt["generator_train"])
            run.ema.load_state_dict(ckpt["generator"], ckpt["ema_updates"])
        run.d.load_state_dict(ckpt["discriminator"])
        run.opt_g.load_state_dict(ckpt["opt_g"])
        run.opt_d.load_state_dict(ckpt["opt_d"])
        run.ddp.restore_rng(ckpt["rng"])
        run.data_rng.set_state(ckpt["rng"]["data"])
        run.epoch, run.best_dice = int(ckpt["epoch"]), float(ckpt["best_dice"])
        run.history = list(ckpt["history"])
        run.best_epoch = int(ckpt.get("best_epoch", -1))
        run.partial = EpochState.from_dict(ckpt["partial"]) if "partial" in ckpt else None
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: cannot resume from this checkpoint: {first}") from err
    if run.partial is not None and len(run.partial.order) != n_train:
        raise UserError(f"{path}: stopped mid-epoch with {len(run.partial.order)} training pairs "
                        f"but the dataset now gives {n_train}; restore the dataset to resume")
    run.saved = run.describe()
    where = (f"epoch {run.epoch + 1}, step {run.partial.step}" if run.partial
             else f"after epoch {run.epoch}")
    log.info("resuming %s at %s", run.run_dir, where)


def save(run: TrainRun, best: bool = False, last: bool = True) -> None:
    """Write last.pt (if ``last``) and best.pt (if ``best``) atomically; mid-epoch when
    ``run.partial`` is set. Under torchrun every rank calls it, rank 0 writes, and all return once
    the files are complete (a rank that exited earlier would make torchrun stop rank 0 in the
    middle of writing)."""
    if not (best or last):
        return
    rank_rngs = run.ddp.gather_rng_states()  # every rank's dropout RNG (None in one process)
    run.ddp.from_main(lambda: _write(run, rank_rngs, best, last))
    if last:
        run.saved = run.describe()


def _write(run: TrainRun, rank_rngs: list[torch.Tensor] | None, best: bool, last: bool) -> None:
    state = {
        "format": FORMAT, "version": VERSION, "config": run.cfg.to_dict(), "epoch": run.epoch,
        "generator": run.model.state_dict(),
        "discriminator": run.d.state_dict(),
        "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "data": run.data_rng.get_state()},
        "best_dice": run.best_dice, "best_epoch": run.best_epoch, "history": run.history,
    }
    if run.ema is not None:
        state.update(generator_train=run.g.state_dict(), ema_updates=run.ema.updates)
    if rank_rngs is not None:
        state["rng"]["torch_ranks"] = rank_rngs
    if run.partial is not None:
        state["partial"] = run.partial.to_dict()
    if last:
        atomic_save(state, run.run_dir / "last.pt")
    if best:  # the model alone (MODEL_KEYS): bests can come every epoch, last.pt rarely
        atomic_save(model_part(state), run.run_dir / "best.pt")
