"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (never unpickled).

A checkpoint is a dict of tensors and plain values::

    {"format": "endoxai-checkpoint", "version": 2,
     "config": Config.to_dict(),          # the full config: the model is rebuilt from it
     "epoch": int,                        # completed epochs
     "generator": state_dict, "discriminator": state_dict,
     "opt_g": state_dict, "opt_d": state_dict,
     "rng": {"torch": ByteTensor, "data": ByteTensor,    # global and data/augmentation generators
             "torch_ranks": [ByteTensor, ...]},     # only from torchrun: each process's own stream
     "best_dice": float, "best_epoch": int, "history": [ {column: value} per epoch ],
     "partial": {"step": int, "order": LongTensor, "sums": {name: float}, "seconds": float},
     "generator_train": state_dict, "ema_updates": int}

``generator`` is always the model to use. With ``train.ema_decay`` > 0 it is the moving average
of the generator's weights (``train.ema``), and the trained weights that ``--resume`` continues
from are ``generator_train``; without it those two keys are absent.

``best.pt`` holds only ``MODEL_KEYS`` (the model, its config and the history so far; without the
discriminator, the optimisers and the RNG states: 218 MB where ``last.pt`` has 690 MB, 435 of 904
with an average), so it can be predicted with and explained but not resumed; ``last.pt`` holds
everything.

``partial`` is there only in a checkpoint written mid-epoch (SIGINT / SIGTERM): ``step`` batches
of epoch ``epoch + 1`` are done, in the permutation ``order``; the RNG states are those after
that step, so resuming gives the same weights as never stopping. Version 1 files (no
``partial``) are still read.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes
from endoxai.models import Generator, build_models
from endoxai.weights import SUFFIX

FORMAT = "endoxai-checkpoint"
VERSION = 2  # 2: optional mid-epoch state ("partial")
REQUIRED_KEYS = ("format", "version", "config", "generator")
RESUME_KEYS = ("epoch", "discriminator", "opt_g", "opt_d", "rng", "best_dice", "history")
MODEL_KEYS = ("format", "version", "config", "epoch", "generator", "generator_train", "ema_updates",
              "best_dice", "best_epoch", "history")  # what best.pt keeps


def model_part(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The ``MODEL_KEYS`` of a training checkpoint: what ``best.pt`` holds."""
    return {k: ckpt[k] for k in MODEL_KEYS if k in ckpt}


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through ``atomic_write_bytes``: a crash never leaves a partial checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint; every failure is a UserError that says why."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not a checkpoint file (a folder or a device?)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_global(err)
        if refused:
            raise UserError(
                f"{path}: refused to load: it holds Python objects other than tensors and plain "
                f"values, which could run code when unpickled (loading uses weights_only=True); "
                f"it asks for {refused}"
            ) from err
        raise UserError(f"{path}: not a readable checkpoint (truncated or foreign file?): "
                        "unpickling failed") from err
    except OSError as err:
        raise UserError(f"{path}: cannot read checkpoint: {err.strerror or _first_line(err)}") \
            from err
    except Exception as err:  # torch raises many types for foreign bytes (KeyError, RuntimeError...)
        raise UserError(
            f"{path}: not a readable checkpoint (truncated or foreign file?): "
            f"{type(err).__name__}: {_first_line(err)}"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not an endoxai checkpoint (no 'format': '{FORMAT}' entry)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if not isinstance(ckpt["version"], int) or isinstance(ckpt["version"], bool):
        raise UserError(f"{path}: checkpoint version {ckpt['version']!r} is not a number")
    if ckpt["version"] > VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt['version']} is newer than supported ({VERSION})")
    return ckpt


def check_resumable(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> None:
    """UserError unless ``ckpt`` holds everything training needs to continue."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"{path}: cannot resume: the checkpoint lacks {', '.join(missing)} "
                        "(predict and explain can still use it)")


def _refused_global(err: BaseException) -> str:
    """The Python global (``posix.system``, a class...) that weights_only loading refused, as
    torch's message names it, or "" when the failure was not a refusal (corrupt data)."""
    match = re.search(r"GLOBAL\s+([\w.]+)", str(err))
    return match.group(1) if match else ""


def _first_line(err: BaseException) -> str:
    """torch's state-dict errors span many lines; a one-line message keeps their first one."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def config_of(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    try:
        return Config.from_dict(ckpt["config"])
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: invalid config stored in checkpoint: {err}") from err


def load_generator(path: str | Path, map_location: str | torch.device = "cpu",
                   trained: bool = False) -> tuple[Generator, Config]:
    """Rebuild the generator from a checkpoint alone (its config gives the architecture, e.g.
    ``model.width``); returned in eval mode. A ``.safetensors`` path is a shipped model
    (``endoxai.weights.bundle``, SHA-256 checked). ``trained``: the trained weights
    (``generator_train``) of a run that kept a moving average, instead of the average;
    UserError for a checkpoint without them."""
    if Path(path).suffix == SUFFIX:
        from endoxai.weights.bundle import read_bundle

        if trained:
            raise UserError(f"{path}: a shipped model holds one set of weights; "
                            "--trained-weights needs a training checkpoint")
        state, cfg, _ = read_bundle(path)
        return generator_from_state(state, cfg, path).to(map_location).eval(), cfg
    ckpt = load_checkpoint(path, map_location)
    cfg = config_of(ckpt, path)
    key = "generator_train" if trained else "generator"
    if trained and key not in ckpt:
        raise UserError(f"{path}: no separate trained weights: its run kept no moving average "
                        "(train.ema_decay = 0), so its generator is the trained weights")
    return generator_from_state(ckpt[key], cfg, path).to(map_location).eval(), cfg


def generator_from_state(state: Any, cfg: Config, path: str | Path = "checkpoint") -> Generator:
    """The generator that ``cfg.model`` describes, holding ``state``; UserError on a mismatch."""
    g = build_models(cfg.model)[0]
    try:
        g.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as err:
        # torch's first line only says "Error(s) in loading state_dict"; the next names the key
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else \
            _first_line(err)
        raise UserError(f"{path}: generator weights do not match its config (model.width "
                        f"{cfg.model.width}): {detail}") from err
    return g
