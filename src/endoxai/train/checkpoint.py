"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (never unpickled).

A checkpoint is a dict of tensors and plain values::

    {"format": "endoxai-checkpoint", "version": 1,
     "config": Config.to_dict(),          # the full config: the model is rebuilt from it
     "epoch": int,                        # completed epochs
     "generator": state_dict, "discriminator": state_dict,
     "opt_g": state_dict, "opt_d": state_dict,
     "rng": {"torch": ByteTensor, "data": ByteTensor},   # global and data/augmentation generators
     "best_dice": float, "history": [ {column: value} per epoch ]}
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes
from endoxai.models import Generator

FORMAT = "endoxai-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "config", "generator")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through ``atomic_write_bytes``: a crash never leaves a partial checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint; every failure is a UserError that says why."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise UserError(
                f"{path}: refused to load: it holds Python objects other than tensors and plain "
                f"values, which could run code when unpickled (loading uses weights_only=True)"
            ) from err
        raise UserError(f"{path}: not a readable checkpoint (truncated or foreign file?): {err}") from err
    except Exception as err:  # torch raises many types for foreign bytes (KeyError, RuntimeError...)
        raise UserError(
            f"{path}: not a readable checkpoint (truncated or foreign file?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not an endoxai checkpoint (no 'format': '{FORMAT}' entry)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if ckpt["version"] > VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt['version']} is newer than supported ({VERSION})")
    return ckpt


def config_of(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    try:
        return Config.from_dict(ckpt["config"])
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: invalid config stored in checkpoint: {err}") from err


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Generator, Config]:
    """Rebuild the generator from a checkpoint alone; returned in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    cfg = config_of(ckpt, path)
    g = Generator(cfg.model.in_channels, cfg.model.out_channels, cfg.model.dropout)
    try:
        g.load_state_dict(ckpt["generator"])
    except RuntimeError as err:
        raise UserError(f"{path}: generator weights do not match its config: {err}") from err
    return g.to(map_location).eval(), cfg
