"""Prepare a model for LRP: a weight-sharing copy in eval mode, BatchNorm folded, rules attached.

The caller's model is never modified: the copy shares its parameter and buffer storage (read
only, nothing is written to it), gets empty hook dicts, and is discarded after the explanation.
"""

from __future__ import annotations

import copy

from torch import nn

from endoxai.explain.composites import LINEAR_LAYERS, Composite
from endoxai.explain.propagate import LinearOp, PassLayer, RuleLayer, UnsupportedLayerError

ACTIVATIONS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardtanh,
)  # element-wise: relevance passes through unchanged
IDENTITIES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)  # the identity (dropout in eval mode) or a reshape: autograd passes relevance exactly
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
SUPPORTED = LINEAR_LAYERS + BATCHNORMS + ACTIVATIONS + IDENTITIES


def check_supported(model: nn.Module) -> None:
    """Raise UnsupportedLayerError naming the first module the engine cannot explain.

    Supported: Conv2d, ConvTranspose2d, Linear; BatchNorm1d/2d directly after one of them inside an
    ``nn.Sequential``; the element-wise activations in ``ACTIVATIONS``; dropout, identity,
    flatten; and any module that only holds such modules (no parameters of its own), whatever it
    does in ``forward`` with ``torch.cat``, slicing or reshaping. Functional activations or
    additions inside ``forward`` are not seen and are treated by their plain gradient.
    """
    follows_linear = _batchnorms_after_linear(model)
    for name, module in model.named_modules():
        if isinstance(module, LINEAR_LAYERS + ACTIVATIONS + IDENTITIES):
            continue
        if isinstance(module, BATCHNORMS):
            if name not in follows_linear:
                raise UnsupportedLayerError(
                    f"BatchNorm {name!r} does not directly follow a Conv2d, ConvTranspose2d or "
                    "Linear "
                    "inside an nn.Sequential, so it cannot be folded"
                )
            continue
        own = [p for p, _ in module.named_parameters(recurse=False)]
        if own:
            raise UnsupportedLayerError(
                f"module {name or '<root>'!r} ({type(module).__name__}) has parameters of its own "
                f"({', '.join(own)}); LRP supports only Conv2d, ConvTranspose2d, Linear and "
                "BatchNorm"
            )
        if not isinstance(module, CONTAINERS) and not list(module.children()):
            raise UnsupportedLayerError(
                f"layer {name!r} ({type(module).__name__}) has no LRP rule; supported layers: "
                f"{', '.join(t.__name__ for t in SUPPORTED)}"
            )


def _batchnorms_after_linear(model: nn.Module) -> dict[str, str]:
    """BatchNorm name -> name of the linear layer it directly follows in a Sequential."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (prev_name, prev), (child_name, child) in zip(children, children[1:]):
                if isinstance(child, BATCHNORMS) and isinstance(prev, LINEAR_LAYERS):
                    prefix = f"{name}." if name else ""
                    found[prefix + child_name] = prefix + prev_name
    return found


def shared_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that shares parameter and buffer storage and has no hooks.

    Parameters in the copy do not require grad; the copy is in eval mode.
    """
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b.detach()
    for m in model.modules():
        for key, value in vars(m).items():
            if "hooks" in key and isinstance(value, dict):
                memo[id(value)] = type(value)()  # the caller's hooks stay behind
    shadow = copy.deepcopy(model, memo)
    return shadow.eval()


def prepare(model: nn.Module, composite: Composite) -> nn.Module:
    """Eval-mode copy of ``model`` ready for one relevance pass under ``composite``.

    Linear layers become ``RuleLayer`` (with a following BatchNorm folded in), BatchNorms become
    ``nn.Identity``, element-wise activations become ``PassLayer``.
    """
    if isinstance(model, LINEAR_LAYERS + ACTIVATIONS + IDENTITIES + BATCHNORMS):
        model = nn.Sequential(model)  # a bare layer: give it a parent so it can be replaced
    check_supported(model)
    rules = composite.assign(
        (n, m) for n, m in model.named_modules() if isinstance(m, LINEAR_LAYERS)
    )
    shadow = shared_copy(model)
    # A module registered under two names gets one op and the rule of its first name.
    ops: dict[int, LinearOp] = {}
    for name, module in shadow.named_modules():
        if isinstance(module, LINEAR_LAYERS):
            ops[id(module)] = LinearOp(module, name)
    for bn_name, layer_name in _batchnorms_after_linear(shadow).items():
        ops[id(shadow.get_submodule(layer_name))].fold_batchnorm(
            shadow.get_submodule(bn_name), bn_name
        )
        _replace(shadow, bn_name, nn.Identity())
    replacements: dict[int, nn.Module] = {}
    for name, module in list(shadow.named_modules(remove_duplicate=False)):
        if id(module) not in replacements:
            if isinstance(module, LINEAR_LAYERS):
                op = ops[id(module)]
                replacements[id(module)] = RuleLayer(op, rules[op.name])
            elif isinstance(module, ACTIVATIONS):
                if hasattr(module, "inplace"):
                    module.inplace = (
                        False  # in-place would overwrite tensors saved for the backward
                    )
                replacements[id(module)] = PassLayer(module)
            else:
                continue
        _replace(shadow, name, replacements[id(module)])
    return shadow


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)
