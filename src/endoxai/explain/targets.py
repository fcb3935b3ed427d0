"""Targets (which output positions to explain) and the relevance the propagation starts from."""

from __future__ import annotations

from typing import Union

import torch

Target = Union[str, tuple, torch.Tensor]
TARGET_KINDS = ("mask", "background", "pixel", "box", "bool tensor")
STARTS = ("logit", "ones")


def target_mask(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Bool mask, shaped like ``logits`` (N, C, H, W), of the output positions to explain.

    - ``"mask"``: the predicted foreground, ``logit > 0``;
    - ``"background"``: the predicted background, ``logit <= 0``;
    - ``("pixel", y, x)``: one output position (every image, every output channel);
    - ``("box", y0, x0, y1, x1)``: rows ``y0 <= y < y1`` and columns ``x0 <= x < x1``;
    - a bool tensor shaped like ``logits`` (or (N, H, W) / (H, W), broadcast to it).
    Raises ValueError for anything else or for positions outside the output.
    """
    if isinstance(target, torch.Tensor):
        if target.dtype != torch.bool:
            raise ValueError(f"a target tensor must be bool; got {target.dtype}")
        t = target.to(logits.device)
        if t.ndim == logits.ndim - 1:
            t = t.unsqueeze(1)
        try:
            return torch.broadcast_to(t, logits.shape).clone()
        except RuntimeError:
            raise ValueError(
                f"target mask of shape {tuple(target.shape)} does not fit the output "
                f"{tuple(logits.shape)}"
            ) from None
    if target == "mask":
        return logits > 0
    if target == "background":
        return logits <= 0
    if isinstance(target, tuple) and target and target[0] in ("pixel", "box"):
        h, w = logits.shape[-2:]
        mask = torch.zeros_like(logits, dtype=torch.bool)
        if target[0] == "pixel" and len(target) == 3:
            y, x = (int(v) for v in target[1:])
            if not (0 <= y < h and 0 <= x < w):
                raise ValueError(f"pixel ({y}, {x}) lies outside the {h}x{w} output")
            mask[..., y, x] = True
            return mask
        if target[0] == "box" and len(target) == 5:
            y0, x0, y1, x1 = (int(v) for v in target[1:])
            if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
                raise ValueError(
                    f"box ({y0}, {x0}, {y1}, {x1}) must satisfy 0 <= y0 < y1 <= {h}, "
                    f"0 <= x0 < x1 <= {w}"
                )
            mask[..., y0:y1, x0:x1] = True
            return mask
    raise ValueError(
        f"unknown target {target!r}; use 'mask', 'background', ('pixel', y, x), "
        "('box', y0, x0, y1, x1) or a bool tensor shaped like the output"
    )


def start_relevance(
    logits: torch.Tensor,
    mask: torch.Tensor,
    start: str | torch.Tensor = "logit",
    background: bool = False,
) -> torch.Tensor:
    """The relevance at the output the propagation starts from, 0 outside ``mask``.

    ``start="logit"``: the pre-tanh logit at the target positions, negated for the ``"background"``
    target (background logits are ≤ 0, so -logit ≥ 0 and positive relevance is evidence *for*
    background; for every other target positive relevance is evidence for foreground, i.e. for a
    larger logit). ``start="ones"``: 1 at every target position (the seed paper's option); since
    LRP shares a neuron's relevance in proportion to the contributions to its own value, this
    makes positive relevance evidence for what the model predicted at each position, for every
    target. A tensor ``start`` (broadcast to the logits) is used as given inside the mask.
    """
    if isinstance(start, torch.Tensor):
        value = torch.broadcast_to(start.to(logits), logits.shape)
    elif start == "logit":
        value = -logits if background else logits
    elif start == "ones":
        value = torch.ones_like(logits)
    else:
        raise ValueError(
            f"unknown start {start!r}; choose from {', '.join(STARTS)} or give a tensor"
        )
    return torch.where(mask, value, torch.zeros((), dtype=logits.dtype, device=logits.device))
