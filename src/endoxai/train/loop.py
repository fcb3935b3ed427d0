"""``fit``: the training loop — data, steps, validation Dice, logging, checkpoints, resume.

Robustness rules (each tested):

- the dataset is checked first (``endoxai.data.check``): a fatal problem is a UserError before
  anything is created or decoded;
- one ``fit`` per run folder at a time (``train.run_folder``); temp files of a killed write are
  removed;
- SIGINT / SIGTERM: the current step finishes, ``last.pt`` gets the mid-epoch state and
  ``Interrupted`` is raised (the CLI exits 130 / 143); ``--resume`` then gives the same weights as
  an uninterrupted run (CPU, same seed; ``train.resume``); a second signal stops at once;
- ``kill -9``: every checkpoint is written atomically, so the last complete one stays loadable
  (with ``train.save_every = N`` that one can be up to N - 1 epochs old: on a GPU whose epoch
  takes seconds, writing the ~690 MB state every epoch can cost as much as the epoch itself);
- a NaN or infinite loss raises TrainingDiverged naming the step; nothing is saved after it.

Under ``torchrun`` the same loop runs data-parallel on every process (``train.distributed``):
rank 0 does the writing, validating and logging; the others compute their share of each batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from endoxai.config import Config
from endoxai.data import (
    Arrays,
    augment,
    find_dataset,
    load_arrays,
    resolve_split,
    shuffle_masks,
)
from endoxai.data.check import check_dataset
from endoxai.data.preprocess import to_model_input
from endoxai.errors import Interrupted, TrainingDiverged, UserError
from endoxai.fileio import atomic_write_text
from endoxai.models import build_models
from endoxai.runtime import autocast, resolve_device, resolve_precision
from endoxai.train.distributed import Distributed, process_group
from endoxai.train.ema import WeightAverage
from endoxai.train.interrupt import StopRequest
from endoxai.train.logbook import Logbook
from endoxai.train.resume import restore, resume_state, save
from endoxai.train.run_folder import hold
from endoxai.train.schedule import lr_factor
from endoxai.train.state import EpochState, TrainRun
from endoxai.train.steps import train_step
from endoxai.train.validation import epoch_scores

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    run_dir: Path
    epochs_done: int
    best_dice: float
    best_epoch: int
    history: list[dict[str, Any]]


def fit(
    cfg: Config,
    data: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train G and D on ``data``'s train split, validating Dice each epoch; writes into ``run_dir``:
    ``last.pt``, ``best.pt`` (highest validation Dice; the model only, not resumable),
    ``history.csv``, ``config.toml``,
    ``split.json`` (when the split was drawn) and TensorBoard events under ``tb/``.

    With ``resume``, the state of ``run_dir/last.pt`` (weights, optimisers, RNG, epoch and, after an
    interruption, the position inside the epoch) is restored and training continues to
    ``cfg.train.epochs`` exactly as if never interrupted. ``stop_after`` ends this call after that
    many epochs (time-sliced training: resume later). Raises UserError for a dataset that fails
    the data check, Interrupted after SIGINT/SIGTERM (a resumable last.pt is written first) and
    TrainingDiverged when a loss is not finite.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process calls ``fit`` with the same
    arguments and trains its share of each global batch (see ``train.distributed``); all of them
    return the same FitResult, and all raise together on a signal or a non-finite loss.
    """
    run_dir = Path(run_dir)
    if stop_after is not None and stop_after < 1:
        raise UserError(f"stop_after must be >= 1; got {stop_after}")
    if resume and not (run_dir / "last.pt").is_file():
        raise UserError(f"--resume: no checkpoint at {run_dir / 'last.pt'}")
    if not resume and (run_dir / "last.pt").exists():
        raise UserError(f"{run_dir} already holds a run (last.pt): use --resume or another --out")
    ckpt = resume_state(run_dir) if resume else None
    with process_group(resolve_device(device)) as ddp:
        return _fit(cfg, data, run_dir, ckpt, ddp, progress and ddp.is_main, stop_after)


def _fit(cfg: Config, data: str | Path, run_dir: Path, ckpt: dict[str, Any] | None,
         ddp: Distributed, progress: bool, stop_after: int | None) -> FitResult:
    """The body of ``fit`` on one process of ``ddp`` (the only one without torchrun)."""
    tc, dev = cfg.train, ddp.device
    local_batch = ddp.local_batch_size(tc.batch_size)  # UserError unless the processes divide it
    precision = resolve_precision(tc.precision, dev)
    index = find_dataset(data)
    report = check_dataset(index, progress=progress)
    report.raise_if_fatal()
    report.log_warnings()

    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        ddp.from_main(lambda: hold(run_dir, held))  # rank 0 locks for all; "in use" stops all
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        torch.manual_seed(tc.seed)
        splits = ddp.from_main(
            lambda: resolve_split(index, cfg.data.val_fraction, tc.seed, run_dir,
                                  holdout=cfg.data.holdout))
        if ddp.is_main:
            atomic_write_text(run_dir / "config.toml", cfg.to_toml())
        train_set = load_arrays(index, splits["train"], cfg.data.image_size, progress=progress)
        val_set = load_arrays(index, splits["val"], cfg.data.image_size, progress=progress)
        if len(train_set.stems) == 0 or len(val_set.stems) == 0:
            raise UserError(f"{data}: no usable training or validation pairs")
        if cfg.data.shuffle_masks:  # validation keeps the true masks: its Dice shows the loss
            train_set = shuffle_masks(train_set, tc.seed)
            log.info("data.shuffle_masks: every training image is paired with another's mask")
        log.info("data: %s layout, %d train / %d val pairs at %d px; precision %s on %s",
                 index.layout, len(train_set.stems), len(val_set.stems), cfg.data.image_size,
                 precision, dev)
        if ddp.active:
            log.info("%d processes: global batch %d, %d per process", ddp.world, tc.batch_size,
                     local_batch)
        run = _build_run(cfg, run_dir, ddp)
        if ckpt is not None:
            restore(run, ckpt, len(train_set.stems))
        end_epoch = tc.epochs if stop_after is None else min(tc.epochs, run.epoch + stop_after)
        with Logbook(run_dir, writes=ddp.is_main) as logbook, StopRequest() as stop:
            for _ in range(run.epoch, end_epoch):
                _epoch(run, train_set, val_set, autocast(precision, dev), logbook, stop,
                       progress, last=run.epoch + 1 == end_epoch)
    return FitResult(run_dir, len(run.history), run.best_dice, run.best_epoch, run.history)


def _build_run(cfg: Config, run_dir: Path, ddp: Distributed) -> TrainRun:
    tc = cfg.train
    g, d = build_models(cfg.model)
    g, d = (m.to(ddp.device, memory_format=torch.channels_last) for m in (g, d))
    ddp.split_rng()  # after the (identical) initialisation: per-rank dropout masks
    ema = WeightAverage(g, tc.ema_decay) if tc.ema_decay > 0 else None  # copied before DDP wraps g
    return TrainRun(
        cfg, run_dir, g, d,
        torch.optim.Adam(g.parameters(), tc.lr_g, betas=(tc.beta1, tc.beta2)),
        torch.optim.Adam(d.parameters(), tc.lr_d, betas=(tc.beta1, tc.beta2)),
        torch.Generator().manual_seed(tc.seed),
        ddp, *ddp.wrap(g, d), ema=ema,
    )


def _epoch(run: TrainRun, train_set: Arrays, val_set: Arrays, amp: AbstractContextManager,
           logbook: Logbook, stop: StopRequest, progress: bool, last: bool) -> None:
    """Train one epoch (or its rest), validate, save; raise Interrupted when a signal came."""
    tc, dev = run.cfg.train, run.ddp.device
    factor = lr_factor(run.epoch, tc)
    for opt, lr in ((run.opt_g, tc.lr_g), (run.opt_d, tc.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * factor
    if run.partial is None:
        run.partial = EpochState(torch.randperm(len(train_set.stems), generator=run.data_rng))
    state = run.partial
    t0 = time.perf_counter() - state.seconds
    _train_batches(run, train_set, amp, stop, progress)
    state.seconds = time.perf_counter() - t0
    scores = None
    if not run.ddp.agreed_signal(stop):
        # rank 0 validates while the others wait for its scores (None: abandoned on a signal)
        scores = run.ddp.from_main(lambda: epoch_scores(run, train_set, val_set, dev, amp, stop))
    if scores is None:
        save(run)
        raise _interrupted(run.ddp.agreed_signal(stop), run)
    n_batches = math.ceil(len(train_set.stems) / tc.batch_size)
    row: dict[str, Any] = {"epoch": run.epoch + 1, "lr_g": tc.lr_g * factor,
                           "lr_d": tc.lr_d * factor}
    row.update({k: v / n_batches for k, v in state.sums.items()})
    row.update(scores)
    row["seconds"] = time.perf_counter() - t0
    run.history.append(row)
    improved = row["val_dice"] > run.best_dice
    if improved:
        run.best_dice, run.best_epoch = row["val_dice"], run.epoch + 1
    run.epoch, run.partial = run.epoch + 1, None
    # One reading of the signal decides both whether last.pt is written now and whether to stop.
    signum = run.ddp.agreed_signal(stop)
    save(run, best=improved, last=bool(last or signum or run.epoch % tc.save_every == 0))
    logbook.epoch_done(run.history, tc.epochs, best=improved)
    if signum and not last:
        raise _interrupted(signum, run)


def _train_batches(run: TrainRun, train_set: Arrays, amp: AbstractContextManager,
                   stop: StopRequest, progress: bool) -> None:
    """Run the epoch's remaining batches, stopping early (state kept) when a signal came."""
    tc, state, dev = run.cfg.train, run.partial, run.ddp.device
    batches = run.ddp.split_batches(state.order, tc.batch_size)
    bar = tqdm(total=len(batches), initial=state.step, desc=f"epoch {run.epoch + 1}/{tc.epochs}",
               disable=not progress, leave=False)
    with bar:
        for idx in batches[state.step:]:
            if run.ddp.agreed_signal(stop):
                return
            # uint8 goes to the device first: conversion and augmentation then run there (on a
            # GPU they would otherwise keep the CPU busier than the model step)
            images = to_model_input(train_set.images[idx].to(dev))
            masks = train_set.masks[idx].to(dev).float()
            if run.cfg.data.augment.enabled:
                images, masks = augment(images, masks, run.cfg.data.augment, run.data_rng)
            # the global batch is augmented alike on every rank, then each keeps its share
            images = run.ddp.shard(images).contiguous(memory_format=torch.channels_last)
            masks = run.ddp.shard(masks).contiguous(memory_format=torch.channels_last)
            logs = train_step(run.g_step, run.d_step, run.opt_g, run.opt_d, images, masks, tc, amp)
            logs = run.ddp.mean(logs)  # the global batch's losses, the same on every rank
            run.ddp.average_buffers(run.g, run.d)
            _check_finite(logs, run, len(batches))
            if run.ema is not None:  # every rank holds the same weights: no communication
                run.ema.update(run.g)
            for k, v in logs.items():
                state.sums[k] = state.sums.get(k, 0.0) + v
            state.step += 1
            bar.update()
            bar.set_postfix(loss_g=f"{state.sums['loss_g'] / state.step:.3f}",
                            loss_d=f"{state.sums['loss_d'] / state.step:.3f}")


def _check_finite(logs: dict[str, float], run: TrainRun, n_batches: int) -> None:
    bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
    if bad:
        step = run.partial.step + 1
        values = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingDiverged(
            f"training diverged at epoch {run.epoch + 1}, step {step} of {n_batches} (global step "
            f"{run.epoch * n_batches + step}): {values}; nothing was saved after it "
            f"({run.run_dir / 'last.pt'}: {run.saved}). Try a lower learning rate (--lr) or "
            "--precision fp32"
        )


def _interrupted(signum: int, run: TrainRun) -> Interrupted:
    signum = signum or signal.SIGINT
    return Interrupted(
        signum, f"interrupted by {signal.Signals(signum).name}; {run.run_dir / 'last.pt'}: "
                f"{run.saved}; continue with --resume",
    )
