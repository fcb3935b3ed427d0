"""``--checkpoint`` / ``--model``: the options that say which generator a command uses."""

from __future__ import annotations

import argparse
from pathlib import Path

from endoxai.weights import BUNDLED, DEFAULT_MODEL, resolve_model

CHECKPOINT_HELP = ("a trained model: a run folder (its best.pt), a .pt checkpoint or a "
                   ".safetensors export (default: the bundled model)")


def add_model_arguments(p: argparse.ArgumentParser | argparse._ActionsContainer) -> None:
    """Add ``--checkpoint PATH`` and ``--model NAME`` (either, or neither: the bundled model)."""
    p.add_argument("--checkpoint", metavar="PATH", help=CHECKPOINT_HELP)
    p.add_argument("--model", choices=list(BUNDLED), metavar="NAME",
                   help=f"a bundled model: {', '.join(BUNDLED)} (default: {DEFAULT_MODEL})")


def model_path(args: argparse.Namespace) -> Path:
    """The model file that ``--checkpoint`` / ``--model`` name (``weights.resolve_model``)."""
    return resolve_model(args.checkpoint, args.model)
