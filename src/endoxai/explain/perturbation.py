"""Region perturbation: patch orders, perturbed copies, their curves and AOPC (Samek et al. 2017).

- **Patches.** The image is tiled into square patches of ``patch_size_for(S) = S / 32`` pixels
  (8 px at 256², 16 px at 512²; Samek et al. used 9 px patches on 224² images). A patch's score is
  the sum of its pixels' relevance. MoRF perturbs the patches in decreasing score order (most
  relevant first), LeRF in increasing order (least relevant, i.e. most negative, first).
- **Steps.** After step ``k`` (0..K) the first ``round(k · fraction · P / K)`` of the P patches are
  perturbed, so step K covers ``fraction`` of the image: by default 16 steps up to 1/8 of it
  (8 patches, 0.8 % of the image, per step at 256²), close to Samek et al.'s range (the first 100
  of ~620 patches). A trained model's evidence sits in a few patches: once they are gone, every
  sensible method's curve lies flat at the bottom, so a longer range only dilutes AOPC (on our
  Kvasir-SEG model, perturbing the first 3 % of the image already took the mean logit from +2.4 to
  below -2 for every method but the random order).
- **Baseline** (what a perturbed patch becomes; ``BASELINES``). Default ``noise``: uniform noise
  in [-1, 1], drawn once per image (Samek et al.'s choice), because it is the one baseline that
  removed evidence from our Kvasir-SEG model at every stage of training we measured: with the
  patches replaced in random order over half the image, it lowered the mean logit after 2 epochs
  and after 5. A ``blur``red copy (Gaussian, σ = 2 patches) *raised* it after 2 epochs and barely
  lowered it after 5: blurring keeps the colour and coarse shape the model reads, and smooth
  patches look like a polyp's surface. The image's ``mean`` colour and ``black`` raised it after 2
  epochs and lowered it after 5. Noise is not neutral either (texture argues against a smooth
  polyp, and a few noise patches can flip a whole prediction): compare methods under one
  baseline, never numbers across baselines.
- **AOPC** (area over the perturbation curve): ``AOPC = 1/(K+1) Σ_{k=0}^{K} (f_0 - f_k)``.
- **Two scores per perturbed copy** (``perturbation_scores``): the explained score ``f_k``
  (``Σ logit`` over the target) and the *segmentation* score, the Dice of the perturbed
  prediction (``logit > 0``) against the unperturbed one (the target): ``d_0 = 1``, and a
  perturbation that erases or moves the predicted region lowers it whatever the logits' scale.

Efficiency: all perturbed copies of one image (every method, both orders, every step) are built
from a per-pixel rank map and run through the model in batches, without gradients and, on hardware
with native bf16, under bf16 autocast (``precision="auto"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from endoxai.explain.methods import BLACK, first_parameter, model_logits, target_score
from endoxai.runtime import autocast, resolve_precision

PATCHES_PER_SIDE = 32  # 8 px at 256², 16 px at 512²
DEFAULT_STEPS = 16
DEFAULT_FRACTION = 0.125  # share of the image perturbed at the last step (module docstring)
BLUR_SIGMA_PATCHES = 2.0  # Gaussian σ of the blur baseline, in patches
BASELINES = ("noise", "blur", "mean", "black")
ORDERS = ("morf", "lerf")


def patch_size_for(image_size: int) -> int:
    """Patch side in pixels for a square image of side ``image_size``: 1/32 of it, at least 1."""
    return max(1, image_size // PATCHES_PER_SIDE)



def patch_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """(rows, columns) of patches; the last row / column is smaller if ``patch`` does not divide."""
    return -(-height // patch), -(-width // patch)


def patch_relevance(maps: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, H, W) pixel maps -> (N, P) float64 sum of relevance per patch, P = rows · columns in
    row-major order (patch ``p`` covers rows ``(p // columns) · patch ...``)."""
    n, h, w = maps.shape
    rows, cols = patch_grid(h, w, patch)
    padded = F.pad(maps.double(), (0, cols * patch - w, 0, rows * patch - h))
    return padded.view(n, rows, patch, cols, patch).sum((2, 4)).flatten(1)


def perturbation_order(scores: torch.Tensor, order: str) -> torch.Tensor:
    """(N, P) patch scores -> (N, P) patch indices: ``morf`` highest score first, ``lerf`` lowest
    first. Ties keep patch index order (stable), so the result is deterministic."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
    return torch.sort(scores, dim=1, descending=order == "morf", stable=True).indices


def random_order(n_patches: int, generator: torch.Generator) -> torch.Tensor:
    """(P,) a random permutation of the patch indices."""
    return torch.randperm(n_patches, generator=generator)


def step_counts(n_patches: int, steps: int, fraction: float = DEFAULT_FRACTION) -> list[int]:
    """Patches perturbed after step k = 0..steps: ``round(k · fraction · P / steps)``, strictly
    increasing. ValueError if there are more steps than patches to perturb."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    total = fraction * n_patches
    if steps > total:
        raise ValueError(f"{steps} steps but only {int(total)} patch(es) to perturb "
                         f"({n_patches} patches, fraction {fraction}): use fewer steps")
    return [round(k * total / steps) for k in range(steps + 1)]


def pixel_ranks(order: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """(P,) patch order -> (H, W) int64: each pixel's patch's position in the order, so the
    pixels perturbed after ``n`` patches are exactly ``ranks < n``."""
    rows, cols = patch_grid(height, width, patch)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    grid = rank.view(rows, cols).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    return grid[:height, :width]


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    h, w = images.shape[-2:]
    radius = max(1, min(math.ceil(3 * sigma), h - 1, w - 1))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def baseline_images(
    images: torch.Tensor, kind: str, patch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> what their perturbed patches become (module docstring):
    ``noise`` (uniform in [-1, 1], drawn once from ``generator``), ``blur`` (Gaussian, σ = 2
    patches, reflected borders), ``mean`` (each image's mean colour) or ``black`` (-1)."""
    if kind == "blur":
        return _gaussian_blur(images, BLUR_SIGMA_PATCHES * patch)
    if kind == "mean":
        return images.mean((2, 3), keepdim=True).expand_as(images).clone()
    if kind == "noise":
        noise = torch.rand(images.shape, generator=generator, dtype=torch.float64)
        return (noise * 2 - 1).to(images)
    if kind == "black":
        return torch.full_like(images, BLACK)
    raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")


def dice_to_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits, bool target broadcastable to them -> (N,) float64 Dice of the
    prediction ``logit > 0`` against the target (1 where both are empty)."""
    predicted = logits > 0
    target = target.expand_as(predicted)
    both = (predicted & target).flatten(1).sum(1).double()
    size = (predicted.flatten(1).sum(1) + target.flatten(1).sum(1)).double()
    return torch.where(size > 0, 2 * both / size.clamp(min=1), torch.ones_like(size))


@torch.inference_mode()
def perturbation_scores(
    model: nn.Module,
    image: torch.Tensor,
    target: torch.Tensor,
    ranks: dict[str, torch.Tensor],
    counts: Sequence[int],
    baseline: torch.Tensor,
    batch_size: int = 8,
    precision: str = "fp32",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Both scores after each step of each patch order, for one image: ``{"logit": curves,
    "dice": curves}``, curve name -> (K+1,) float64 ``f_k`` and ``d_k`` (module docstring).

    ``image`` (1, C, H, W) and ``baseline`` (1, C, H, W) in the model's input space; ``target`` bool
    (1, C_out, H, W); ``ranks``: curve name -> (H, W) pixel ranks (``pixel_ranks``); ``counts`` the
    perturbed patches per step (``step_counts``). Returns curve name -> (K+1,) float64 ``f_k``;
    ``f_0`` (nothing perturbed) is computed once and shared. Every perturbed copy of the image runs
    through the model in batches of ``batch_size``; ``precision`` "fp32" | "bf16" | "auto".
    ``on_batch(n)`` is called after each batch of ``n`` copies (``perturbation_passes`` in all).
    """
    ref = first_parameter(model)
    device = ref.device
    precision = resolve_precision(precision, device)
    image = image.to(device, ref.dtype)
    baseline = baseline.to(device, ref.dtype)
    target = target.to(device)
    forward = model_logits(model)
    jobs = [(None, 0)] + [(name, k) for name in ranks for k in range(1, len(counts))]
    rank_maps = {name: r.to(device) for name, r in ranks.items()}
    scores: dict[tuple[str | None, int], float] = {}
    dice: dict[tuple[str | None, int], float] = {}
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first:first + batch_size]
        batch = torch.cat([
            image if name is None else torch.where(rank_maps[name] < counts[k], baseline, image)
            for name, k in chunk
        ]).contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            logits = forward(batch).double()
        values = target_score(logits, target.expand(len(chunk), *target.shape[1:]))
        scores.update(zip(chunk, values.tolist()))
        dice.update(zip(chunk, dice_to_target(logits, target).tolist()))
        if on_batch is not None:
            on_batch(len(chunk))
    return {kind: {name: np.array([values[(None, 0)]]
                               + [values[(name, k)] for k in range(1, len(counts))])
                   for name in ranks}
            for kind, values in (("logit", scores), ("dice", dice))}


def perturbation_passes(n_curves: int, counts: Sequence[int]) -> int:
    """Images ``perturbation_scores`` runs through the model for ``n_curves`` orders: the
    unperturbed image once, then every order at every step after the first."""
    return 1 + n_curves * (len(counts) - 1)


def aopc(curve: np.ndarray | Sequence[float]) -> float:
    """Area over the perturbation curve ``f_0..f_K``: ``1/(K+1) Σ_{k=0}^{K} (f_0 - f_k)``, in the
    curve's units (Samek et al. 2017, Eq. 12, for one image)."""
    f = np.asarray(curve, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"a curve is a non-empty 1-D sequence; got shape {f.shape}")
    return float(np.mean(f[0] - f))

