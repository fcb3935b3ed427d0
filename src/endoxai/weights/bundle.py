"""The shipped model format: a generator's weights as safetensors plus a JSON sidecar.

``NAME.safetensors`` holds the generator's state dict: convolution kernels in half precision
(fp16 by default, or bf16), the 1-D tensors (biases, BatchNorm scales and running statistics) in
float32; ``NAME.json`` beside it holds what is needed to rebuild and trust it::

    {"format": "endoxai-weights", "version": 1,
     "weights": "NAME.safetensors", "sha256": "<64 hex digits of the weights file>",
     "bytes": int, "dtype": "float16" | "bfloat16", "parameters": int,
     "config": Config.to_dict(),                 # the model is rebuilt from it (incl. model.width)
     "provenance": {"recipe": str | null, "epoch": int | null, "best_epoch": int | null,
                    "source": "best.pt", "endoxai_version": str}}

Loading reads the weights file once, checks its SHA-256 against the sidecar, and only then parses
it: a damaged or swapped file is refused with a one-line error, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from endoxai import __version__
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes, atomic_write_text
from endoxai.weights import SUFFIX

log = logging.getLogger(__name__)

FORMAT = "endoxai-weights"
VERSION = 1
SIDECAR_SUFFIX = ".json"
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# fp16 keeps 3 more mantissa bits than bf16 (closer to the trained fp32 model) but overflows
# above this magnitude; such a model needs bf16, whose range is float32's.
FP16_MAX = float(torch.finfo(torch.float16).max)


def sidecar_of(weights: str | Path) -> Path:
    """The sidecar JSON that describes ``weights`` (same folder and stem)."""
    return Path(weights).with_suffix(SIDECAR_SUFFIX)


def sha256_of(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(
    state: Mapping[str, torch.Tensor],
    config: Config,
    output_dir: str | Path,
    name: str,
    dtype: str = "fp16",
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``output_dir/name.safetensors`` and its sidecar ``name.json``; returns the former.

    ``state``: a generator's state dict (float32). Kernels (tensors of 2 or more dimensions, ~all
    of the bytes) are stored in ``dtype``; 1-D tensors stay float32 because BatchNorm's running
    variance and the biases are few bytes and most sensitive to rounding. UserError for a state
    with NaN / infinite values or, in fp16, values beyond its range.
    """
    if dtype not in DTYPES:
        raise UserError(f"unknown weights dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if not name or Path(name).name != name or name.startswith("."):
        raise UserError(f"bad model name {name!r}: use a plain file stem such as 'polyp'")
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if value.is_floating_point():
            if not torch.isfinite(value).all():
                raise UserError(f"cannot ship a model with NaN or infinite values (in {key})")
            if value.ndim >= 2:
                if dtype == "fp16" and value.abs().max() > FP16_MAX:
                    raise UserError(f"{key} holds values beyond fp16's range: use --dtype bf16")
                value = value.to(DTYPES[dtype])
            else:
                value = value.float()
        tensors[key] = value.contiguous()
    data = save(tensors)
    out = Path(output_dir)
    weights = out / f"{name}{SUFFIX}"
    sidecar = {
        "format": FORMAT,
        "version": VERSION,
        "weights": weights.name,
        "sha256": sha256_of(data),
        "bytes": len(data),
        "dtype": str(DTYPES[dtype]).removeprefix("torch."),
        "parameters": sum(v.numel() for k, v in tensors.items() if v.is_floating_point()
                          and not k.endswith(("running_mean", "running_var"))),
        "config": config.to_dict(),
        "provenance": {"endoxai_version": __version__, **(provenance or {})},
    }
    atomic_write_bytes(weights, data)
    atomic_write_text(sidecar_of(weights), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s (%.1f MB, %s) and %s", weights, len(data) / 2**20, sidecar["dtype"],
             sidecar_of(weights).name)
    return weights


def read_sidecar(weights: str | Path) -> dict[str, Any]:
    """The parsed sidecar of ``weights``; UserError when it is missing or not one of ours."""
    path = sidecar_of(weights)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"{weights}: its sidecar {path.name} (config and SHA-256) is missing") \
            from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable weights sidecar: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: not an endoxai weights sidecar (no 'format': '{FORMAT}')")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise UserError(f"{path}: weights format version {meta.get('version')!r} is not "
                        f"supported (this endoxai reads up to {VERSION})")
    for key in ("sha256", "config"):
        if key not in meta:
            raise UserError(f"{path}: sidecar lacks '{key}'")
    return meta


def read_bundle(weights: str | Path) -> tuple[dict[str, torch.Tensor], Config, dict[str, Any]]:
    """(float32 state dict, config, sidecar) of a shipped model, after checking its SHA-256.

    UserError, one line, for a missing file or sidecar, a SHA-256 mismatch, an unreadable
    safetensors file or an invalid config.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"model weights not found: {weights}")
    meta = read_sidecar(weights)
    try:
        data = weights.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {weights}: {err.strerror or err}") from err
    found = sha256_of(data)
    if found != meta["sha256"]:
        raise UserError(
            f"{weights}: SHA-256 mismatch: the file is damaged or is not the one "
            f"{sidecar_of(weights).name} describes (expected {str(meta['sha256'])[:16]}..., "
            f"found {found[:16]}...)")
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as err:  # safetensors raises its own SafetensorError for malformed bytes
        raise UserError(f"{weights}: not a readable safetensors file: {err}") from err
    try:
        config = Config.from_dict(meta["config"])
    except (ValueError, TypeError) as err:
        raise UserError(f"{sidecar_of(weights)}: invalid config: {err}") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return state, config, meta


def export_safetensors(
    checkpoint: str | Path,
    output_dir: str | Path,
    name: str = "polyp",
    dtype: str = "fp16",
    recipe: str | None = None,
) -> Path:
    """Write a trained checkpoint's generator (the moving average when the run kept one) as
    ``output_dir/name.safetensors`` + ``name.json``; returns the weights path.

    ``recipe``: recorded in the provenance; None = the shipped recipe whose config equals the
    checkpoint's, if one does (else null). The epoch and best epoch come from the checkpoint.
    """
    from endoxai.config import load_config, recipe_names
    from endoxai.train.checkpoint import config_of, generator_from_state, load_checkpoint

    if Path(checkpoint).suffix == SUFFIX:
        raise UserError(f"{checkpoint} is already a shipped model; export a training checkpoint")
    ckpt = load_checkpoint(checkpoint)
    config = config_of(ckpt, checkpoint)
    if recipe is None:
        recipe = next((r for r in recipe_names() if load_config(r) == config), None)
    provenance = {"recipe": recipe, "epoch": ckpt.get("epoch"),
                  "best_epoch": ckpt.get("best_epoch"), "source": Path(checkpoint).name}
    generator = generator_from_state(ckpt["generator"], config, checkpoint)  # checks the shapes
    return write_bundle(generator.state_dict(), config, output_dir, name, dtype, provenance)
