"""``fit``: the training loop — data, steps, validation Dice, logging, checkpoints, resume."""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from endoxai.config import Config
from endoxai.data import augment, find_dataset, load_arrays, resolve_split
from endoxai.data.preprocess import to_model_input
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_text
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.models import build_models
from endoxai.runtime import autocast, resolve_device, resolve_precision
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, config_of, load_checkpoint
from endoxai.train.schedule import lr_factor
from endoxai.train.steps import train_step

log = logging.getLogger(__name__)

VAL_METRICS = ("dice", "jaccard", "accuracy", "recall", "precision")


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
    ``last.pt``, ``best.pt`` (highest validation Dice), ``history.csv``, ``config.toml``,
    ``split.json`` (when the split was drawn) and TensorBoard events under ``tb/``.

    With ``resume``, the state of ``run_dir/last.pt`` (weights, optimisers, RNG, epoch) is restored
    and training continues to ``cfg.train.epochs`` exactly as if never interrupted.
    ``stop_after`` ends this call after that many epochs (time-sliced training: resume later).
    """
    run_dir = Path(run_dir)
    ckpt = _resume_state(run_dir) if resume else None
    if ckpt is None and (run_dir / "last.pt").exists():
        raise UserError(f"{run_dir} already holds a run (last.pt): use --resume or another --out")
    tc = cfg.train
    dev = resolve_device(device)
    precision = resolve_precision(tc.precision, dev)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    torch.manual_seed(tc.seed)
    data_rng = torch.Generator().manual_seed(tc.seed)

    index = find_dataset(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = resolve_split(index, cfg.data.val_fraction, tc.seed, run_dir)
    atomic_write_text(run_dir / "config.toml", cfg.to_toml())
    train_set = load_arrays(index, splits["train"], cfg.data.image_size, progress=progress)
    val_set = load_arrays(index, splits["val"], cfg.data.image_size, progress=progress)
    for failure in train_set.failures + val_set.failures:
        log.warning("skipped: %s", failure)
    if len(train_set.stems) == 0 or len(val_set.stems) == 0:
        raise UserError(f"{data}: no usable training or validation pairs")
    log.info("data: %s layout, %d train / %d val pairs at %d px; precision %s on %s",
             index.layout, len(train_set.stems), len(val_set.stems), cfg.data.image_size, precision, dev)

    g, d = build_models(cfg.model)
    g, d = (m.to(dev, memory_format=torch.channels_last) for m in (g, d))
    opt_g = torch.optim.Adam(g.parameters(), tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), tc.lr_d, betas=(tc.beta1, tc.beta2))
    start_epoch, best_dice, best_epoch, history = 0, -1.0, -1, []
    if ckpt is not None:
        g.load_state_dict(ckpt["generator"])
        d.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        data_rng.set_state(ckpt["rng"]["data"])
        start_epoch, best_dice, history = ckpt["epoch"], ckpt["best_dice"], list(ckpt["history"])
        best_epoch = ckpt.get("best_epoch", -1)
        log.info("resuming %s after epoch %d", run_dir, start_epoch)

    writer = _tensorboard(run_dir / "tb")
    amp = autocast(precision, dev)
    end_epoch = tc.epochs if stop_after is None else min(tc.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        t0 = time.perf_counter()
        factor = lr_factor(epoch, tc)
        for opt, lr in ((opt_g, tc.lr_g), (opt_d, tc.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor
        g.train(), d.train()
        sums: dict[str, float] = {}
        order = torch.randperm(len(train_set.stems), generator=data_rng)
        batches = order.split(tc.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not progress, leave=False)
        for step, idx in enumerate(bar, start=1):
            images = to_model_input(train_set.images[idx])
            masks = train_set.masks[idx].float()
            if cfg.data.augment.enabled:
                images, masks = augment(images, masks, cfg.data.augment, data_rng)
            images = images.to(dev, memory_format=torch.channels_last)
            masks = masks.to(dev, memory_format=torch.channels_last)
            logs = train_step(g, d, opt_g, opt_d, images, masks, tc, amp)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss_g=f"{sums['loss_g'] / step:.3f}", loss_d=f"{sums['loss_d'] / step:.3f}")
        row: dict[str, Any] = {"epoch": epoch + 1, "lr_g": tc.lr_g * factor, "lr_d": tc.lr_d * factor}
        row.update({k: v / len(batches) for k, v in sums.items()})
        row.update({f"val_{k}": v for k, v in validate(g, val_set, tc.batch_size, dev, amp).items()})
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        improved = row["val_dice"] > best_dice
        if improved:
            best_dice, best_epoch = row["val_dice"], epoch + 1
        state = {
            "format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "epoch": epoch + 1,
            "generator": g.state_dict(), "discriminator": d.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "data": data_rng.get_state()},
            "best_dice": best_dice, "best_epoch": best_epoch, "history": history,
        }
        atomic_save(state, run_dir / "last.pt")
        if improved:
            atomic_save(state, run_dir / "best.pt")
        _write_history(run_dir / "history.csv", history)
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch + 1)
            writer.flush()
        log.info("epoch %d/%d  loss_g %.4f  loss_d %.4f  val_dice %.4f%s  (%.0f s)", epoch + 1,
                 tc.epochs, row["loss_g"], row["loss_d"], row["val_dice"], "  *best" if improved else "",
                 row["seconds"])
    if writer is not None:
        writer.close()
    return FitResult(run_dir, len(history), best_dice, best_epoch, history)


@torch.no_grad()
def validate(g: torch.nn.Module, val_set, batch_size: int, device: torch.device, amp) -> dict[str, float]:
    """MedAI per-image metrics of ``logit > 0`` at model resolution, averaged over the split."""
    was_training = g.training
    g.eval()
    per_image: dict[str, list[torch.Tensor]] = {k: [] for k in VAL_METRICS}
    for idx in torch.arange(len(val_set.stems)).split(batch_size):
        images = to_model_input(val_set.images[idx]).to(device, memory_format=torch.channels_last)
        with amp:
            pred = g.logits(images).float() > 0
        scores = medai_scores(confusion_counts(pred.cpu(), val_set.masks[idx].bool()))
        for k in VAL_METRICS:
            per_image[k].append(torch.as_tensor(scores[k], dtype=torch.float64))
    g.train(was_training)
    return {k: torch.cat(v).mean().item() for k, v in per_image.items()}


def _resume_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "last.pt"
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")
    return load_checkpoint(path)


def resume_config(run_dir: str | Path, epochs: int | None = None) -> Config:
    """The config stored in ``run_dir/last.pt``, optionally with more ``epochs``."""
    path = Path(run_dir) / "last.pt"
    cfg = config_of(_resume_state(Path(run_dir)), path)
    return cfg.override(train={"epochs": epochs}) if epochs else cfg


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
