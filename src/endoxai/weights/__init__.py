"""The models that ship inside the package, and ``resolve_model``: which model a command uses.

Every command that needs a generator (predict, explain, evaluate-explanations, report, export)
asks ``resolve_model(checkpoint, model)``: nothing given means the bundled polyp model;
``model="polyp"`` names it; ``checkpoint`` is a ``.pt`` file, a ``.safetensors`` shipped model,
or a training run folder (its ``best.pt``). The bundled files are ``NAME.safetensors`` and
``NAME.json`` in this folder (format: ``endoxai.weights.bundle``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from endoxai.errors import UserError

if TYPE_CHECKING:  # importing this package (the CLI's parser does) must not import torch
    from torch import nn

log = logging.getLogger(__name__)

SUFFIX = ".safetensors"  # of a shipped model's weights file (endoxai.weights.bundle)

WEIGHTS_DIR = Path(__file__).resolve().parent
BUNDLED = {"polyp": "Kvasir-SEG polyps (pix2pix generator, docs/model-card.md)"}
DEFAULT_MODEL = "polyp"
RUN_MODEL_FILE = "best.pt"  # what a run folder stands for: its best epoch's model


def bundled_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the bundled model ``name`` lives (whether or not it is installed)."""
    if name not in BUNDLED:
        raise UserError(f"unknown model {name!r}; bundled: {', '.join(BUNDLED)}")
    return WEIGHTS_DIR / f"{name}{SUFFIX}"


def resolve_model(checkpoint: str | Path | None = None, model: str | None = None) -> Path:
    """The file to load: ``checkpoint`` (a .pt / .safetensors file, or a run folder: its best.pt,
    logged), else the bundled model ``model`` (None = ``polyp``). Pass ``load_generator`` the
    result. UserError, one line, for both given, a missing path, a run folder without best.pt,
    an unknown name, or a bundled model absent from this installation.
    """
    if checkpoint is not None and model is not None:
        raise UserError("give --checkpoint or --model, not both")
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            best = path / RUN_MODEL_FILE
            if not best.is_file():
                raise UserError(f"{path} is not a checkpoint file nor a training run folder "
                                f"(no {RUN_MODEL_FILE} in it)")
            log.info("using %s (the best epoch of the run in %s)", best, path)
            return best
        if not path.exists():
            raise UserError(f"checkpoint not found: {path}")
        return path
    path = bundled_path(model or DEFAULT_MODEL)
    if not path.is_file():
        raise UserError(f"the bundled {model or DEFAULT_MODEL} model is not in this installation "
                        f"({path} is missing): pass --checkpoint with a trained run or .pt file")
    return path


def load_model(model: str = DEFAULT_MODEL, checkpoint: str | Path | None = None,
               device: str = "cpu") -> "nn.Module":
    """A generator ready for ``endoxai.explain.explain`` (eval mode, float32, on ``device``):
    the bundled ``model`` (default: the polyp model), or ``checkpoint`` when given. Inputs are
    (N, 3, S, S) in [-1, 1], S = the ``data.image_size`` of the model's config, which
    ``endoxai.train.checkpoint.load_generator(resolve_model(...))`` returns with the generator;
    ``generator.logits(x) > 0`` is the mask."""
    from endoxai.train.checkpoint import load_generator

    return load_generator(resolve_model(checkpoint, None if checkpoint is not None else model),
                          map_location=device)[0]
