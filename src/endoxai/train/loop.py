"""``fit``: the training loop — data, steps, validation Dice, logging, checkpoints, resume.

Robustness rules (each tested):

- the dataset is checked first (``endoxai.data.check``): a fatal problem is a UserError before
  anything is created or decoded;
- one ``fit`` per run folder at a time (a lock file); temp files of a killed write are removed;
- SIGINT / SIGTERM: the current step finishes, ``last.pt`` gets the mid-epoch state and
  ``Interrupted`` is raised (the CLI exits 130 / 143); ``--resume`` then gives the same weights as
  an uninterrupted run (CPU, same seed); a second signal stops at once;
- ``kill -9``: every checkpoint is written atomically, so the last complete one stays loadable
  (with ``train.save_every = N`` that one can be up to N - 1 epochs old: on a GPU whose epoch
  takes seconds, writing the ~690 MB state every epoch can cost as much as the epoch itself);
- a NaN or infinite loss raises TrainingDiverged naming the step; nothing is saved after it.

Under ``torchrun`` the same loop runs data-parallel on every process (``train.distributed``):
rank 0 does the writing, validating and logging; the others compute their share of each batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from endoxai.config import Config
from endoxai.data import augment, find_dataset, load_arrays, resolve_split
from endoxai.data.check import check_dataset
from endoxai.data.preprocess import to_model_input
from endoxai.errors import Interrupted, TrainingDiverged, UserError
from endoxai.fileio import atomic_write_text, remove_stale_temps
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.models import build_models
from endoxai.runtime import autocast, resolve_device, resolve_precision
from endoxai.train.checkpoint import (
    FORMAT,
    VERSION,
    atomic_save,
    check_resumable,
    config_of,
    load_checkpoint,
    model_part,
)
from endoxai.train.distributed import Distributed, process_group
from endoxai.train.ema import WeightAverage
from endoxai.train.interrupt import StopRequest
from endoxai.train.schedule import lr_factor
from endoxai.train.steps import train_step

log = logging.getLogger(__name__)

VAL_METRICS = ("dice", "jaccard", "accuracy", "recall", "precision")
LOCK_FILE = ".lock"  # inside the run folder: one fit per run at a time


@dataclass
class FitResult:
    run_dir: Path
    epochs_done: int
    best_dice: float
    best_epoch: int
    history: list[dict[str, Any]]


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
class _Run:
    """The mutable state of one fit call: models, optimisers, RNG, progress, what is saved."""

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
    ckpt = _resume_state(run_dir) if resume else None
    with process_group(resolve_device(device)) as ddp:
        return _fit(cfg, data, run_dir, ckpt, ddp, progress and ddp.is_main, stop_after)


def _fit(cfg: Config, data: str | Path, run_dir: Path, ckpt: dict[str, Any] | None,
         ddp: Distributed, progress: bool, stop_after: int | None) -> FitResult:
    """The body of ``fit`` on one process of ``ddp`` (the only one without torchrun)."""
    tc = cfg.train
    dev = ddp.device
    local_batch = ddp.local_batch_size(tc.batch_size)
    precision = resolve_precision(tc.precision, dev)
    index = find_dataset(data)
    report = check_dataset(index, progress=progress)
    report.raise_if_fatal()
    report.log_warnings()

    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        ddp.from_main(lambda: _hold(run_dir, held))  # rank 0 locks for all; "in use" stops all
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
        log.info("data: %s layout, %d train / %d val pairs at %d px; precision %s on %s",
                 index.layout, len(train_set.stems), len(val_set.stems), cfg.data.image_size,
                 precision, dev)
        if ddp.active:
            log.info("%d processes: global batch %d, %d per process", ddp.world, tc.batch_size,
                     local_batch)
        run = _build_run(cfg, run_dir, ddp)
        if ckpt is not None:
            _restore(run, ckpt, len(train_set.stems))
        end_epoch = tc.epochs if stop_after is None else min(tc.epochs, run.epoch + stop_after)
        writer = _tensorboard(run_dir / "tb") if ddp.is_main else None
        try:
            with StopRequest() as stop:
                for _ in range(run.epoch, end_epoch):
                    _epoch(run, train_set, val_set, dev, autocast(precision, dev), writer, stop,
                           progress, last=run.epoch + 1 == end_epoch)
        finally:
            if writer is not None:
                writer.close()
    return FitResult(run_dir, len(run.history), run.best_dice, run.best_epoch, run.history)


def _epoch(run: _Run, train_set, val_set, dev: torch.device, amp, writer, stop: StopRequest,
           progress: bool, last: bool) -> None:
    """Train one epoch (or its rest), validate, save; raise Interrupted when a signal came."""
    tc = run.cfg.train
    factor = lr_factor(run.epoch, tc)
    for opt, lr in ((run.opt_g, tc.lr_g), (run.opt_d, tc.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * factor
    if run.partial is None:
        run.partial = EpochState(torch.randperm(len(train_set.stems), generator=run.data_rng))
    state = run.partial
    t0 = time.perf_counter() - state.seconds
    _train_batches(run, train_set, dev, amp, stop, progress)
    state.seconds = time.perf_counter() - t0
    scores = None
    if not run.ddp.agreed_signal(stop):
        # rank 0 validates while the others wait for its scores (None: abandoned on a signal)
        scores = run.ddp.from_main(lambda: _epoch_scores(run, train_set, val_set, dev, amp, stop))
    if scores is None:
        _save(run)
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
    _save(run, best=improved, last=bool(last or signum or run.epoch % tc.save_every == 0))
    if run.ddp.is_main:
        _write_history(run.run_dir / "history.csv", run.history)
    if writer is not None:
        for k, v in row.items():
            if k != "epoch":
                writer.add_scalar(k, v, run.epoch)
        writer.flush()
    extra = f"  (trained weights {row['val_dice_trained']:.4f})" if run.ema is not None else ""
    extra += f"  fit_dice {row['fit_dice']:.4f}" if "fit_dice" in row else ""
    left = time_left([r["seconds"] for r in run.history], tc.epochs - run.epoch)
    log.info("epoch %d/%d  loss_g %.4f  loss_d %.4f  val_dice %.4f%s%s  (%.0f s%s)", run.epoch,
             tc.epochs, row["loss_g"], row["loss_d"], row["val_dice"], extra,
             "  *best" if improved else "", row["seconds"], left)
    if signum and not last:
        raise _interrupted(signum, run)


def time_left(seconds: list[float], epochs_left: int, recent: int = 3) -> str:
    """For the epoch line: ``", about T left"``, T being the mean time of the last ``recent``
    epochs times ``epochs_left`` (in s, min or h); empty when no epoch is left or none was timed."""
    if epochs_left <= 0 or not seconds:
        return ""
    last = seconds[-recent:]
    total = sum(last) / len(last) * epochs_left
    if total < 120:
        text = f"{total:.0f} s"
    elif total < 7200:
        text = f"{total / 60:.0f} min"
    else:
        text = f"{total / 3600:.1f} h"
    return f", about {text} left"


def _train_batches(run: _Run, train_set, dev: torch.device, amp, stop: StopRequest,
                   progress: bool) -> None:
    """Run the epoch's remaining batches, stopping early (state kept) when a signal came."""
    tc, state = run.cfg.train, run.partial
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


def _check_finite(logs: dict[str, float], run: _Run, n_batches: int) -> None:
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


def _interrupted(signum: int, run: _Run) -> Interrupted:
    signum = signum or signal.SIGINT
    return Interrupted(
        signum, f"interrupted by {signal.Signals(signum).name}; {run.run_dir / 'last.pt'}: "
                f"{run.saved}; continue with --resume",
    )


def _epoch_scores(run: _Run, train_set, val_set, dev: torch.device, amp,
                  stop: StopRequest) -> dict[str, float] | None:
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
    split,
    batch_size: int,
    device: torch.device,
    amp,
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


def _build_run(cfg: Config, run_dir: Path, ddp: Distributed) -> _Run:
    tc = cfg.train
    g, d = build_models(cfg.model)
    g, d = (m.to(ddp.device, memory_format=torch.channels_last) for m in (g, d))
    ddp.split_rng()  # after the (identical) initialisation: per-rank dropout masks
    ema = WeightAverage(g, tc.ema_decay) if tc.ema_decay > 0 else None  # copied before DDP wraps g
    return _Run(
        cfg, run_dir, g, d,
        torch.optim.Adam(g.parameters(), tc.lr_g, betas=(tc.beta1, tc.beta2)),
        torch.optim.Adam(d.parameters(), tc.lr_d, betas=(tc.beta1, tc.beta2)),
        torch.Generator().manual_seed(tc.seed),
        ddp, *ddp.wrap(g, d), ema=ema,
    )


def _restore(run: _Run, ckpt: dict[str, Any], n_train: int) -> None:
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
    run.saved = _describe(run)
    where = (f"epoch {run.epoch + 1}, step {run.partial.step}" if run.partial
             else f"after epoch {run.epoch}")
    log.info("resuming %s at %s", run.run_dir, where)


def _save(run: _Run, best: bool = False, last: bool = True) -> None:
    """Write last.pt (if ``last``) and best.pt (if ``best``) atomically; mid-epoch when
    ``run.partial`` is set. Under torchrun every rank calls it, rank 0 writes, and all return once
    the files are complete (a rank that exited earlier would make torchrun stop rank 0 in the
    middle of writing)."""
    if not (best or last):
        return
    rank_rngs = run.ddp.gather_rng_states()  # every rank's dropout RNG (None in one process)
    run.ddp.from_main(lambda: _write_checkpoint(run, rank_rngs, best, last))
    if last:
        run.saved = _describe(run)


def _write_checkpoint(run: _Run, rank_rngs: list[torch.Tensor] | None, best: bool,
                      last: bool) -> None:
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


def _describe(run: _Run) -> str:
    if run.partial is not None:
        n = math.ceil(len(run.partial.order) / run.cfg.train.batch_size)
        return f"resumable, epoch {run.epoch + 1} stopped after step {run.partial.step} of {n}"
    return f"the last good checkpoint, after epoch {run.epoch}"


def _hold(run_dir: Path, held: contextlib.ExitStack) -> None:
    """Lock ``run_dir`` until ``held`` closes; remove the temp files of killed writes."""
    held.enter_context(_locked(run_dir))
    remove_stale_temps(run_dir)


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released by the OS even after kill -9)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a second fit in one folder is not caught
        yield
        return
    with open(run_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise UserError(f"{run_dir} is in use by another endoxai train") from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resume_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "last.pt"
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    return ckpt


def resume_config(run_dir: str | Path, epochs: int | None = None) -> Config:
    """The config stored in ``run_dir/last.pt``, optionally with more ``epochs``."""
    path = Path(run_dir) / "last.pt"
    cfg = config_of(_resume_state(Path(run_dir)), path)
    try:
        return cfg.override(train={"epochs": epochs}) if epochs else cfg
    except ValueError as err:
        raise UserError(f"invalid option: {err}") from err


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
        log.warning("tensorboard is not importable: no TensorBoard logs (history.csv is written)")
        return None
    return SummaryWriter(str(log_dir))


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())
