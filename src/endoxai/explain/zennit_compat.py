"""Importing Zennit (the reference LRP library) where torchvision is not installable.

Zennit imports torchvision at package import only for its ResNet canonizer's type checks; its
core never uses it. For comparisons (tests, benchmarks) on CPU-only machines, where torchvision
has no build, minimal stand-in modules are put into ``sys.modules`` during the import only.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from types import ModuleType

from torch import nn


def import_zennit() -> ModuleType | None:
    """``zennit`` with its composites, canonizers and rules imported, or None if not installed."""
    if importlib.util.find_spec("zennit") is None:
        return None
    stubs: dict[str, ModuleType] = {}
    if importlib.util.find_spec("torchvision") is None:
        resnet = types.ModuleType("torchvision.models.resnet")
        resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
        resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
        models = types.ModuleType("torchvision.models")
        models.resnet = resnet
        tv = types.ModuleType("torchvision")
        tv.models = models
        stubs = {"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet}
    added = [name for name in stubs if name not in sys.modules]
    sys.modules.update({name: stubs[name] for name in added})
    try:
        import zennit.canonizers
        import zennit.composites
        import zennit.rules
    finally:
        for name in added:
            del sys.modules[name]
    return zennit
