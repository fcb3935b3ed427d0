"""endoxai: explainable segmentation of endoscopy images (pix2pix GAN + LRP)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from endoxai.models import Generator

__version__ = "0.1.0"
__all__ = [
    "COMPOSITES",
    "Config",
    "Explainer",
    "FaithfulnessSettings",
    "__version__",
    "build_report",
    "evaluate_faithfulness",
    "evaluate_folders",
    "export_onnx",
    "fit",
    "load_config",
    "load_model",
    "predict_files",
]

# One entry point per job, each imported on first use so that ``import endoxai`` stays free of
# torch. The LRP function itself is ``endoxai.explain.explain``: ``endoxai.explain`` is its package.
_LAZY = {
    "COMPOSITES": "endoxai.explain",
    "Config": "endoxai.config",
    "Explainer": "endoxai.explain",
    "FaithfulnessSettings": "endoxai.explain.faithfulness",
    "build_report": "endoxai.report",
    "evaluate_faithfulness": "endoxai.explain.faithfulness",
    "evaluate_folders": "endoxai.evaluate",
    "export_onnx": "endoxai.export",
    "fit": "endoxai.train.loop",
    "load_config": "endoxai.config",
    "predict_files": "endoxai.predict",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'endoxai' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_model(model: str = "polyp", checkpoint: str | Path | None = None,
               device: str = "cpu") -> Generator:
    """The bundled polyp generator (or the model in ``checkpoint``), in eval mode, ready for
    ``endoxai.explain.explain``: see ``endoxai.weights.load_model``. Imported on first use so
    that ``import endoxai`` stays free of torch."""
    from endoxai.weights import load_model as load

    return load(model, checkpoint, device)
