"""The attribution methods faithfulness compares: every LRP composite and the gradient baselines.

- ``lrp:<composite>``: LRP started from the logits at the target, so the input relevance sums to
  about ``f(x) = Σ logit`` over the target.
- ``gradient``: sensitivity ``‖∂f/∂x‖₂`` over the colour channels, never negative.
- ``gradient-x-input``: ``Σ_c x_c ∂f/∂x_c``, with ``x`` in the model's input space [-1, 1], i.e.
  relative to mid-grey.
- ``integrated-gradients`` (Sundararajan et al. 2017): midpoint Riemann sum with ``ig_steps`` steps
  from the black image, which is ``-1`` in the model's input space: the absence of light, and the
  natural "nothing here" for endoscopy frames with their black borders.
- ``random``: a seeded random patch order (perturbation.random_order), the floor any explanation
  must beat; it has no map.

Each method's map is its relevance per pixel, summed over the colour channels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from endoxai.explain.composites import COMPOSITES
from endoxai.explain.explanation import explain

IG_STEPS = 24  # "a few dozen" Riemann steps; completeness error is checked in the tests
BLACK = -1.0  # black in the generator's input space ([0, 255] -> [-1, 1])

LRP_PREFIX = "lrp:"
GRADIENT = "gradient"
GRADIENT_X_INPUT = "gradient-x-input"
INTEGRATED_GRADIENTS = "integrated-gradients"
RANDOM = "random"
OTHER_METHODS = (GRADIENT, GRADIENT_X_INPUT, INTEGRATED_GRADIENTS, RANDOM)


def method_names() -> list[str]:
    """Every method, in report order: ``lrp:<composite>`` for each registered composite, then
    ``gradient``, ``gradient-x-input``, ``integrated-gradients``, ``random``."""
    return [LRP_PREFIX + name for name in COMPOSITES] + list(OTHER_METHODS)


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """The methods as a tuple, in the given order; KeyError naming the valid ones otherwise."""
    valid = method_names()
    unknown = [m for m in methods if m not in valid]
    if unknown or not methods:
        raise KeyError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                       f"choose from {', '.join(valid)}")
    return tuple(dict.fromkeys(methods))


def model_logits(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's ``logits`` method if it has one (``Generator``: pre-tanh scores), else the model."""
    logits = getattr(model, "logits", None)
    return logits if callable(logits) else model


def first_parameter(model: nn.Module) -> torch.Tensor:
    """A parameter of ``model``: its device and dtype are where inputs must go."""
    return next(model.parameters())


def target_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits, bool target of the same shape -> (N,) float64 ``Σ logit`` over the target."""
    return torch.where(target, logits, torch.zeros((), dtype=logits.dtype,
                                                   device=logits.device)).double().flatten(1).sum(1)


def _input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        score = target_score(model_logits(model)(x), target).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad


def integrated_gradients(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor, steps: int = IG_STEPS,
    baseline: float = BLACK, batch_size: int = 8,
) -> torch.Tensor:
    """Integrated gradients (N, C, H, W) of ``f(x) = Σ logit`` over ``target`` for each image.

    ``(x - x') ⊙ 1/m Σ_k ∇f(x' + α_k (x - x'))`` with midpoints ``α_k = (k + ½)/m``, k < m = ``steps``,
    and the constant baseline image ``x' = baseline`` (default black, -1). The interpolated images
    of one input run in batches of ``batch_size``. Σ over all values ≈ ``f(x) - f(x')``.
    """
    out = torch.empty_like(images)
    alphas = (torch.arange(steps, dtype=images.dtype, device=images.device) + 0.5) / steps
    for i in range(images.shape[0]):
        x, t = images[i:i + 1], target[i:i + 1]
        start = torch.full_like(x, baseline)
        total = torch.zeros_like(x)
        for chunk in alphas.split(batch_size):
            path = start + chunk.view(-1, 1, 1, 1) * (x - start)
            total += _input_gradient(model, path, t.expand(len(chunk), *t.shape[1:])).sum(0, True)
        out[i] = ((x - start) * total / steps)[0]
    return out


def relevance_maps(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor, method: str,
    ig_steps: int = IG_STEPS, batch_size: int = 8,
) -> torch.Tensor:
    """(N, H, W) float32 relevance per pixel of ``method`` (module docstring) for ``f = Σ logit``
    over the bool ``target`` (shaped like the logits). ``images`` in the model's input space.
    ``random`` has no map (ValueError); an unknown method raises KeyError."""
    check_methods([method])
    ref = first_parameter(model)
    images = images.to(device=ref.device, dtype=ref.dtype)
    target = target.to(ref.device)
    if method.startswith(LRP_PREFIX):
        exp = explain(model, images, target=target, composite=method[len(LRP_PREFIX):],
                      layers=False, start="logit")
        pixel = exp.input.sum(1)
    elif method == GRADIENT:
        pixel = _input_gradient(model, images, target).norm(dim=1)
    elif method == GRADIENT_X_INPUT:
        pixel = (images * _input_gradient(model, images, target)).sum(1)
    elif method == INTEGRATED_GRADIENTS:
        pixel = integrated_gradients(model, images, target, ig_steps, batch_size=batch_size).sum(1)
    else:
        raise ValueError(f"method {method!r} has no relevance map (it is an order, not a map)")
    return pixel.detach().float().cpu()

