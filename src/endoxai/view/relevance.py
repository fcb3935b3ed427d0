"""LRP with a reusable forward pass: one forward per image and composite, one backward per target.

``explain`` runs the modified forward and the relevance backward together. An interactive viewer
asks many questions (pixels, boxes, the mask) of one image, and all of them share the forward:
``CachedExplainer.forward`` runs it once and keeps its autograd graph, ``relevance`` runs only the
backward for a target. The numbers are those of ``explain`` (the same prepared copy of the model,
the same rules); a test checks that they agree.

Why saved tensors are copied on unpacking: the rules' backward (``propagate._RuleFunction``)
overwrites its saved coefficient maps in place to save memory, which is right for one backward
and wrong for the second backward through the same graph. The ``saved_tensors_hooks`` below hand
every backward fresh copies (a memory copy per layer, far cheaper than the convolutions they save)
and leave the engine untouched.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from endoxai.explain import DEFAULT_COMPOSITE, Explanation, get_composite
from endoxai.explain.canonize import prepare
from endoxai.explain.targets import Target, start_relevance, target_mask
from endoxai.runtime import autocast, resolve_lrp_precision


@dataclass(frozen=True)
class ForwardPass:
    """The modified forward of one batch, kept with its graph for repeated backward passes.

    ``logits`` (N, C_out, H, W) carries the graph; ``inputs`` is the leaf the input relevance is
    taken at; ``blocks`` / ``block_inputs``: block name -> its output / the tensor it received.
    """

    inputs: torch.Tensor
    logits: torch.Tensor
    blocks: OrderedDict[str, torch.Tensor]
    block_inputs: OrderedDict[str, torch.Tensor]
    composite: str
    precision: str


def _keep(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _fresh_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone()


class CachedExplainer:
    """LRP of one model under one composite, with the forward pass split from the backward.

    ``precision``: fp32 (default, relevance conserved to rounding), bf16 / auto as for
    ``endoxai.explain.Explainer`` (the one rule, ``runtime.resolve_lrp_precision``: auto is
    fp32). Relevance is returned in float32.
    """

    def __init__(self, model: nn.Module, composite: str = DEFAULT_COMPOSITE,
                 precision: str = "fp32") -> None:
        self.composite_name = composite
        self.composite = get_composite(composite)
        self._shadow = prepare(model, self.composite)
        reference = next(model.parameters())
        self._dtype, self._device = reference.dtype, reference.device
        self.precision = resolve_lrp_precision(precision, self._device)
        self._names = [name for name, _ in self._shadow.named_children()]

    def forward(self, images: torch.Tensor) -> ForwardPass:
        """Run the modified forward of ``images`` (N, C, H, W; for ``Generator`` in [-1, 1])."""
        shadow = self._shadow
        blocks: OrderedDict[str, torch.Tensor] = OrderedDict()
        block_inputs: OrderedDict[str, torch.Tensor] = OrderedDict()
        handles = []
        try:
            for name in self._names:
                module = shadow.get_submodule(name)
                handles.append(module.register_forward_hook(_record(blocks, name)))
                handles.append(module.register_forward_pre_hook(_record_input(block_inputs, name)))
            amp = autocast(self.precision, self._device)
            hooks = torch.autograd.graph.saved_tensors_hooks(_keep, _fresh_copy)
            with torch.inference_mode(False), torch.enable_grad(), amp, hooks:
                x = images.detach().to(device=self._device, dtype=self._dtype)
                x = x.clone(memory_format=torch.channels_last).requires_grad_(True)
                forward = getattr(shadow, "logits", None)
                logits = (forward if callable(forward) else shadow)(x)
        finally:
            for handle in handles:
                handle.remove()
        return ForwardPass(x, logits, blocks, block_inputs, self.composite_name, self.precision)

    def relevance(self, forward: ForwardPass, target: Target = "mask",
                  start: str = "logit") -> Explanation:
        """The backward pass for ``target`` (as for ``explain``) through a cached ``forward``.

        Returns an ``Explanation`` with ``input``, ``layers`` and ``layer_inputs`` (every block).
        """
        if forward.composite != self.composite_name:
            raise ValueError(f"this forward pass belongs to composite {forward.composite!r}, "
                             f"not {self.composite_name!r}")
        logits = forward.logits.detach()
        mask = target_mask(target, logits)
        background = isinstance(target, str) and target == "background"
        start_map = start_relevance(logits, mask, start, background=background)
        names = list(forward.blocks)
        wanted = ([forward.inputs] + [forward.blocks[n] for n in names]
                  + [forward.block_inputs[n] for n in names])
        amp = autocast(forward.precision, self._device)
        with torch.inference_mode(False), torch.enable_grad(), amp:
            grads = torch.autograd.grad(forward.logits, wanted, grad_outputs=start_map,
                                        retain_graph=True, allow_unused=True)
        grads = [(torch.zeros_like(w) if g is None else g).float() for w, g in zip(wanted, grads)]
        n = len(names)
        return Explanation(
            input=grads[0].contiguous(),
            layers=OrderedDict(zip(names, grads[1:1 + n])),
            output=start_map.float().contiguous(),
            logits=logits.float().contiguous(),
            target=mask.contiguous(),
            composite=self.composite_name,
            layer_inputs=OrderedDict(zip(names, grads[1 + n:])),
        )


def _record(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if name in store:
            raise RuntimeError(f"block {name!r} runs more than once per forward; cannot record it")
        store[name] = output

    return hook


def _record_input(store: dict[str, torch.Tensor], name: str):
    # A fresh view gives this use of the tensor its own autograd node, so its gradient is the
    # relevance entering this block only (a skip's other use is not summed in).
    def hook(module: nn.Module, args: tuple) -> tuple:
        first = args[0].view_as(args[0])
        store[name] = first
        return (first,) + tuple(args[1:])

    return hook
