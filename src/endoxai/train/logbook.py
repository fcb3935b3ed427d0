"""What each finished epoch leaves behind: ``history.csv``, TensorBoard scalars, a log line with
the time left."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from endoxai.fileio import atomic_write_text

log = logging.getLogger(__name__)

HISTORY_FILE = "history.csv"


class Logbook:
    """Writes into ``run_dir`` when ``writes`` (rank 0 under torchrun); logs on every process.
    A context manager: the TensorBoard writer is closed on leaving."""

    def __init__(self, run_dir: Path, writes: bool = True) -> None:
        self.run_dir = run_dir
        self.writes = writes
        self.tensorboard = _tensorboard(run_dir / "tb") if writes else None

    def __enter__(self) -> Logbook:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def epoch_done(self, history: list[dict[str, Any]], epochs: int, best: bool) -> None:
        """Record the last row of ``history`` (one of ``epochs``); ``best``: a new best Dice."""
        row = history[-1]
        if self.writes:
            write_history(self.run_dir / HISTORY_FILE, history)
        if self.tensorboard is not None:
            for k, v in row.items():
                if k != "epoch":
                    self.tensorboard.add_scalar(k, v, row["epoch"])
            self.tensorboard.flush()
        extra = (f"  (trained weights {row['val_dice_trained']:.4f})"
                 if "val_dice_trained" in row else "")
        extra += f"  fit_dice {row['fit_dice']:.4f}" if "fit_dice" in row else ""
        left = time_left([r["seconds"] for r in history], epochs - row["epoch"])
        log.info("epoch %d/%d  loss_g %.4f  loss_d %.4f  val_dice %.4f%s%s  (%.0f s%s)",
                 row["epoch"], epochs, row["loss_g"], row["loss_d"], row["val_dice"], extra,
                 "  *best" if best else "", row["seconds"], left)


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


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """One row per epoch, every column any row has (atomically)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # a dependency, but a broken install should not stop training
        log.warning("tensorboard is not importable: no TensorBoard logs (history.csv is written)")
        return None
    return SummaryWriter(str(log_dir))
