"""``explain``: LRP relevance of a model's inputs and blocks for a chosen output target."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from endoxai.explain.canonize import prepare
from endoxai.explain.composites import DEFAULT_COMPOSITE, Composite, get_composite
from endoxai.explain.flow import SkipFlow, skip_flow
from endoxai.explain.targets import Target, start_relevance, target_mask
from endoxai.runtime import autocast, resolve_lrp_precision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    """Relevances of one batch; all tensors detached, on the model's device and dtype.

    - ``input`` (N, C, H, W): relevance of every input value (sum over dim 1 for a pixel map).
    - ``layers``: block name -> (N, C, h, w) relevance at that block's *output*, i.e. the total
      relevance of those neurons; an encoder output that also feeds a skip connection gets the sum
      of both uses. In forward order (for ``Generator``: down1..down8, up1..up8).
    - ``layer_inputs``: (only if asked for) block name -> relevance at the tensor the block received
      through *this* use only; for ``up2`` that is the concatenation ``[up1 output, down7 output]``.
    - ``output`` (N, C_out, H, W): the relevance the propagation started from.
    - ``logits`` (N, C_out, H, W): the model's output (pre-tanh for ``Generator``).
    - ``target`` (N, C_out, H, W) bool: the explained output positions.
    - ``precision``: what the relevance was computed in (fp32, or bf16 / fp16 under autocast;
      fp32 also where a low-precision pass was not finite and was run again).
    """

    input: torch.Tensor
    layers: OrderedDict[str, torch.Tensor]
    output: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    composite: str
    layer_inputs: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict)
    precision: str = "fp32"

    @property
    def flow(self) -> SkipFlow:
        """The U-Net skip-flow ledger (``endoxai.explain.flow``): per image, the relevance entering
        each encoder level through its skip, continuing deeper, reaching the bottleneck, and
        absorbed by each block. Needs ``layers=True, layer_inputs=True`` and a model with blocks
        ``down1..downD, up1..upD`` (ValueError otherwise)."""
        return skip_flow(self)

    def totals(self) -> OrderedDict[str, torch.Tensor]:
        """Per-image relevance sums (N,): ``output``, each recorded block (backwards), ``input``.

        In a chain of bias-free layers under a conserving rule (LRP-0, γ, z^B, αβ) all are equal;
        with skip connections, a block's total excludes relevance that bypasses it via a skip.
        """
        rows = OrderedDict(output=_image_sums(self.output))
        for name in reversed(self.layers):
            rows[name] = _image_sums(self.layers[name])
        rows["input"] = _image_sums(self.input)
        return rows


def _image_sums(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


class Explainer:
    """LRP for one model and composite, prepared once and reused for many batches.

    Preparing means: check the layers, make the eval-mode weight-sharing copy, fold BatchNorm and
    derive the weights the rules need (channels-last, |w|, ρ(w)); ``explain`` does all of it per
    call, an ``Explainer`` once (it keeps those derived weights: about twice the parameters'
    memory). The model must not change while an Explainer is in use: it reads the parameters as
    they were at construction (BatchNorm statistics, folded weights).

    ``precision``: ``fp32`` (default: relevance is conserved to rounding, the tested guarantee),
    ``bf16`` / ``fp16`` (the modified forward and its backward run under autocast: 1.6x faster
    for epsilon-gamma-box at 512² on a 2-core Zen 4, but slower than fp32 at 256² on a 2-core
    Xeon with AMX, docs/results.md; the tests require its maps to correlate > 0.99 with fp32 and
    the input total to stay within 2 % of the output relevance; composites without
    ``low_precision`` amplify its rounding) or ``auto`` (fp32 wherever bf16 was not measured
    both faster and safe: ``runtime.resolve_lrp_precision``). Results are always returned in
    float32.
    """

    def __init__(self, model: nn.Module, composite: str | Composite = DEFAULT_COMPOSITE,
                 precision: str = "fp32") -> None:
        if isinstance(composite, Composite):
            self.composite, self.composite_name = composite, "custom"
        else:
            self.composite, self.composite_name = get_composite(composite), composite
        self._shadow = prepare(model, self.composite)
        reference = next(model.parameters(), None)
        self._dtype = None if reference is None else reference.dtype
        self._device = None if reference is None else reference.device
        self.precision = resolve_lrp_precision(precision, self._device or torch.device("cpu"))

    def __call__(
        self,
        images: torch.Tensor,
        target: Target = "mask",
        layers: bool | Sequence[str] = True,
        start: str | torch.Tensor = "logit",
        layer_inputs: bool = False,
        sources: Sequence[str] | None = None,
    ) -> Explanation:
        """Explain ``images``; the arguments are those of ``explain``. ``sources``: what the
        images are (e.g. their file names), for the warning below.

        Under bf16 / fp16, a batch whose relevance comes back non-finite is propagated again in
        fp32, with a warning that names its images (or says how many) and that their results are
        fp32 (``Explanation.precision``): a map is never returned with NaN or Inf in it.
        """
        if self._dtype is not None:
            images = images.to(device=self._device, dtype=self._dtype)
        names = _layer_names(self._shadow, layers)
        result = self._propagate(images, target, names, start, layer_inputs, self.precision)
        if self.precision != "fp32" and not _finite(result):
            which = ", ".join(sources) if sources else f"a batch of {images.shape[0]} image(s)"
            logger.warning("%s: %s relevance was not finite (NaN or Inf); explained again in "
                           "fp32, so this result is fp32 (--precision fp32 saves the double "
                           "work)", which, self.precision)
            result = self._propagate(images, target, names, start, layer_inputs, "fp32")
        return result

    def _propagate(self, images: torch.Tensor, target: Target, names: list[str],
                   start: str | torch.Tensor, layer_inputs: bool, precision: str) -> Explanation:
        shadow = self._shadow
        outputs: dict[str, torch.Tensor] = {}
        inputs: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for name in names:
                module = shadow.get_submodule(name)
                handles.append(module.register_forward_hook(_capture(outputs, name)))
                if layer_inputs:
                    handles.append(module.register_forward_pre_hook(_separate_input(inputs, name)))
            amp = autocast(precision, self._device or images.device)
            with torch.inference_mode(False), torch.enable_grad(), amp:
                # channels-last: oneDNN's fast layout for (transposed) convolutions on CPU
                layout = torch.channels_last if images.ndim == 4 else torch.contiguous_format
                x = images.detach().clone(memory_format=layout).requires_grad_(True)
                forward = getattr(shadow, "logits", None)
                logits = (forward if callable(forward) else shadow)(x)
                mask = target_mask(target, logits.detach())
                background = isinstance(target, str) and target == "background"
                relevance = start_relevance(logits.detach(), mask, start, background=background)
                if not mask.any():
                    logger.debug("empty target: all relevance is 0")
                wanted = (
                    [x] + [outputs[n] for n in names] + [inputs[n] for n in names if layer_inputs]
                )
                # the gradient of Σ logits · R is R's backward pass; passing R as grad_outputs
                # instead makes torch import sympy on first use (0.3 s of a one-image explain)
                grads = torch.autograd.grad((logits * relevance).sum(), wanted, allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        grads = [torch.zeros_like(w) if g is None else g for w, g in zip(wanted, grads)]
        if precision != "fp32":  # autocast left some maps in bf16 / fp16
            grads = [g.float() for g in grads]
            relevance, logits = relevance.float(), logits.float()
        n = len(names)
        return Explanation(
            input=grads[0].contiguous(),
            layers=OrderedDict(zip(names, grads[1 : 1 + n])),
            output=relevance.contiguous(),
            logits=logits.detach().contiguous(),
            target=mask.contiguous(),
            composite=self.composite_name,
            layer_inputs=OrderedDict(zip(names, grads[1 + n :])) if layer_inputs else OrderedDict(),
            precision=precision,
        )


def explain(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = "mask",
    composite: str | Composite = DEFAULT_COMPOSITE,
    layers: bool | Sequence[str] = True,
    start: str | torch.Tensor = "logit",
    layer_inputs: bool = False,
    precision: str = "fp32",
) -> Explanation:
    """Layer-wise relevance propagation of ``model`` on ``images``: one forward, one backward pass.

    ``model``: any module built from the layers listed in ``canonize.check_supported`` (e.g.
    ``Generator``); its ``logits`` method is explained if it has one, else ``forward``. It is left
    exactly as it was: the engine works on an eval-mode, weight-sharing copy (BatchNorm with running
    statistics folded into the preceding layer, dropout off) and registers nothing on the model.
    ``images``: (N, C, H, W), cast to the model's dtype and device; for ``Generator`` in [-1, 1].
    ``target``: see ``targets.target_mask`` ("mask", "background", ("pixel", y, x),
    ("box", y0, x0, y1, x1) or a bool tensor). ``start``: "logit" (the logit at the target, negated
    for "background") or "ones"; see ``targets.start_relevance``. ``composite``: a name in
    ``COMPOSITES`` or a ``Composite``. ``layers``: True records every direct child of the model
    (for ``Generator`` the 16 blocks), False none, or a list of module names. ``layer_inputs``:
    also record the relevance at each recorded block's input (for exact conservation checks).
    ``precision``: fp32 (exact), bf16 / fp16 / auto (faster, approximate; see ``Explainer``).
    Layer maps may come back in channels-last memory layout (``.contiguous()`` before ``.view``).
    To explain many batches with one model, build an ``Explainer`` once instead.
    Raises KeyError for an unknown composite, ValueError for a bad target or start,
    UnsupportedLayerError for a layer without a rule.
    """
    return Explainer(model, composite, precision)(images, target, layers, start, layer_inputs)


def _finite(result: Explanation) -> bool:
    maps = [result.input, result.output, *result.layers.values(), *result.layer_inputs.values()]
    return all(bool(torch.isfinite(m).all()) for m in maps)


def _layer_names(shadow: nn.Module, layers: bool | Sequence[str]) -> list[str]:
    if layers is True:
        return [name for name, _ in shadow.named_children()]
    if not layers:
        return []
    names = list(layers)
    for name in names:
        try:
            shadow.get_submodule(name)
        except AttributeError:
            raise ValueError(f"no module named {name!r} in the model") from None
    return names


def _capture(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if name in store:
            raise RuntimeError(f"block {name!r} runs more than once per forward; cannot record it")
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"block {name!r} returns {type(output).__name__}, not a tensor")
        store[name] = output

    return hook


def _separate_input(store: dict[str, torch.Tensor], name: str):
    # A fresh view gives this use of the tensor its own autograd node, so its gradient is the
    # relevance flowing into this block only (not the sum over all uses).
    def hook(module: nn.Module, args: tuple) -> tuple:
        if not args or not isinstance(args[0], torch.Tensor):
            raise TypeError(f"block {name!r} takes no tensor as first argument")
        first = args[0].view_as(args[0])
        store[name] = first
        return (first,) + tuple(args[1:])

    return hook
