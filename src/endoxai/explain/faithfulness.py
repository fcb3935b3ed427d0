"""Do the explanations tell the truth? Region perturbation (MoRF / LeRF, AOPC) and localisation.

Protocol (Samek et al. 2017, "Evaluating the visualization of what a deep neural network has
learned", IEEE TNNLS), adapted to segmentation:

- **Explained score.** ``f(x) = Σ logit`` over the *originally* explained target: the positions the
  model predicts as foreground on the unperturbed image (``logit > 0``, the ``"mask"`` target of
  ``endoxai explain``). The positions stay fixed while the image is perturbed. Images with an empty
  prediction have nothing to explain and are skipped.
- **Methods.** Every LRP composite (``lrp:<name>``, started from the logits at the target, so the
  input relevance sums to about ``f(x)``); ``gradient`` (sensitivity ``‖∂f/∂x‖₂`` over the colour
  channels, never negative); ``gradient-x-input`` (``Σ_c x_c ∂f/∂x_c``, with ``x`` in the model's
  input space [-1, 1], i.e. relative to mid-grey); ``integrated-gradients`` (Sundararajan et al.
  2017; midpoint Riemann sum with ``ig_steps`` steps from the black image, which is ``-1`` in the
  model's input space: the absence of light, and the natural "nothing here" for endoscopy frames
  with their black borders); ``random`` (a seeded random patch order, the floor any explanation
  must beat). Each method's map is its relevance per pixel, summed over the colour channels.
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
  removed evidence from our Kvasir-SEG model at every stage of training we measured
  (docs/RESULTS.md): with the patches replaced in random order over half the image, it lowered the
  mean logit after 2 epochs and after 5. A ``blur``red copy (Gaussian, σ = 2 patches) *raised* it
  after 2 epochs and barely lowered it after 5: blurring keeps the colour and coarse shape the
  model reads, and smooth patches look like a polyp's surface. The image's ``mean`` colour and
  ``black`` raised it after 2 epochs and lowered it after 5. Noise is not neutral either (texture
  argues against a smooth polyp, and a few noise patches can flip a whole prediction): compare
  methods under one baseline, never numbers across baselines.
- **AOPC** (area over the perturbation curve): ``AOPC = 1/(K+1) Σ_{k=0}^{K} (f_0 - f_k) / |T|``
  per image, ``|T|`` the number of explained output pixels, so the curve is the *mean logit over
  the explained pixels* and AOPC is in logit units, comparable between images with large and small
  masks; then the mean over images. (Dividing by ``f_0`` instead, as a share of the unperturbed
  score, is unstable: a barely-positive prediction has ``f_0`` near 0 and a huge ratio.) Higher
  MoRF AOPC = the ranking found the evidence sooner; lower LeRF AOPC = what it ranked last really
  did not matter. A perturbation can also *raise* the score (negative AOPC). ``abpc`` (area
  between the perturbation curves, Schulz et al. 2020) is ``AOPC_MoRF - AOPC_LeRF``.
- **Localisation** against the ground-truth mask (at model resolution), on the positive part of the
  pixel map: *relevance mass accuracy* (Arras et al. 2022, CLEVR-XAI) = share of the positive
  relevance that lies inside the mask; *pointing game* (Zhang et al. 2018, no tolerance margin) =
  whether the pixel of maximal relevance lies inside the mask. Undefined (NaN) for ``random``, for a
  map without positive relevance, or without a ground truth.

Efficiency: all perturbed copies of one image (every method, both orders, every step) are built
from a per-pixel rank map and run through the model in batches, without gradients and, on hardware
with native bf16, under bf16 autocast (``precision="auto"``); attributions always run in float32.

Files (``write_faithfulness``): ``faithfulness.json`` (settings, per-method summary with mean
curves, every image's raw curves and scores), ``faithfulness_per_image.csv`` (one row per image and
method) and ``faithfulness_curves.png`` (mean MoRF and LeRF curves of every method).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm

from endoxai.config import PRECISIONS
from endoxai.data import decode_pair, find_dataset, read_split
from endoxai.data.archive import archive_suffix
from endoxai.data.layouts import DatasetIndex
from endoxai.data.preprocess import to_model_input
from endoxai.errors import ItemError, UserError
from endoxai.explain.composites import COMPOSITES
from endoxai.explain.explanation import explain
from endoxai.fileio import atomic_write_bytes, atomic_write_text
from endoxai.runtime import autocast, resolve_precision
from endoxai.train.checkpoint import load_generator

logger = logging.getLogger(__name__)

PATCHES_PER_SIDE = 32  # 8 px at 256², 16 px at 512²
DEFAULT_STEPS = 16
DEFAULT_FRACTION = 0.125  # share of the image perturbed at the last step (module docstring)
IG_STEPS = 24  # "a few dozen" Riemann steps; completeness error is checked in the tests
BLACK = -1.0  # black in the generator's input space ([0, 255] -> [-1, 1])
BLUR_SIGMA_PATCHES = 2.0  # Gaussian σ of the blur baseline, in patches
BASELINES = ("noise", "blur", "mean", "black")
ORDERS = ("morf", "lerf")

LRP_PREFIX = "lrp:"
GRADIENT = "gradient"
GRADIENT_X_INPUT = "gradient-x-input"
INTEGRATED_GRADIENTS = "integrated-gradients"
RANDOM = "random"
OTHER_METHODS = (GRADIENT, GRADIENT_X_INPUT, INTEGRATED_GRADIENTS, RANDOM)

JSON_NAME = "faithfulness.json"
CSV_NAME = "faithfulness_per_image.csv"
PLOT_NAME = "faithfulness_curves.png"
CSV_COLUMNS = ("name", "method", "initial_score", "target_pixels", "aopc_morf", "aopc_lerf",
               "abpc", "mass_accuracy", "pointing_game", "seconds")


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


def patch_size_for(image_size: int) -> int:
    """Patch side in pixels for a square image of side ``image_size``: 1/32 of it, at least 1."""
    return max(1, image_size // PATCHES_PER_SIDE)


# ---------------------------------------------------------------- scores and attributions

def _forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    logits = getattr(model, "logits", None)
    return logits if callable(logits) else model


def _reference(model: nn.Module) -> torch.Tensor:
    return next(model.parameters())


def target_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits, bool target of the same shape -> (N,) float64 ``Σ logit`` over the target."""
    return torch.where(target, logits, torch.zeros((), dtype=logits.dtype,
                                                   device=logits.device)).double().flatten(1).sum(1)


def _input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        score = target_score(_forward(model)(x), target).sum()
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
    ref = _reference(model)
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


# ---------------------------------------------------------------- patches and perturbation

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


@torch.inference_mode()
def perturbation_curves(
    model: nn.Module,
    image: torch.Tensor,
    target: torch.Tensor,
    ranks: dict[str, torch.Tensor],
    counts: Sequence[int],
    baseline: torch.Tensor,
    batch_size: int = 8,
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Explained score after each step of each patch order, for one image.

    ``image`` (1, C, H, W) and ``baseline`` (1, C, H, W) in the model's input space; ``target`` bool
    (1, C_out, H, W); ``ranks``: curve name -> (H, W) pixel ranks (``pixel_ranks``); ``counts`` the
    perturbed patches per step (``step_counts``). Returns curve name -> (K+1,) float64 ``f_k``;
    ``f_0`` (nothing perturbed) is computed once and shared. Every perturbed copy of the image runs
    through the model in batches of ``batch_size``; ``precision`` "fp32" | "bf16" | "auto".
    """
    ref = _reference(model)
    device = ref.device
    precision = resolve_precision(precision, device)
    image = image.to(device, ref.dtype)
    baseline = baseline.to(device, ref.dtype)
    target = target.to(device)
    forward = _forward(model)
    jobs = [(None, 0)] + [(name, k) for name in ranks for k in range(1, len(counts))]
    rank_maps = {name: r.to(device) for name, r in ranks.items()}
    scores: dict[tuple[str | None, int], float] = {}
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
    f0 = scores[(None, 0)]
    return {name: np.array([f0] + [scores[(name, k)] for k in range(1, len(counts))])
            for name in ranks}


# ---------------------------------------------------------------- scores of curves and maps

def aopc(curve: np.ndarray | Sequence[float]) -> float:
    """Area over the perturbation curve ``f_0..f_K``: ``1/(K+1) Σ_{k=0}^{K} (f_0 - f_k)``, in the
    curve's units (Samek et al. 2017, Eq. 12, for one image)."""
    f = np.asarray(curve, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"a curve is a non-empty 1-D sequence; got shape {f.shape}")
    return float(np.mean(f[0] - f))


def relevance_mass_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) pixel maps, (N, H, W) bool masks -> (N,) float64 share of the *positive*
    relevance inside the mask (Arras et al. 2022); NaN where a map has no positive relevance."""
    positive = maps.double().clamp(min=0)
    total = positive.flatten(1).sum(1)
    inside = (positive * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-300),
                       torch.full_like(total, math.nan))


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) pixel maps, (N, H, W) bool masks -> (N,) float64: 1.0 if the pixel of maximal
    relevance lies in the mask (the first such pixel in row-major order on ties), 0.0 if not, NaN
    when the map has no positive value or the mask is empty."""
    flat = maps.flatten(1)
    best = flat.argmax(1)
    hit = masks.flatten(1).gather(1, best[:, None])[:, 0].double()
    defined = (flat.max(1).values > 0) & masks.flatten(1).any(1)
    return torch.where(defined, hit, torch.full_like(hit, math.nan))


# ---------------------------------------------------------------- the evaluation

@dataclass(frozen=True)
class FaithfulnessSettings:
    """How explanations are scored; defaults finish a few 256² images in minutes on 2 CPU cores."""

    methods: tuple[str, ...] = field(default_factory=lambda: tuple(method_names()))
    patch: int | None = None  # pixels; None = patch_size_for(image size)
    steps: int = DEFAULT_STEPS
    fraction: float = DEFAULT_FRACTION
    baseline: str = "noise"  # see the module docstring for why
    ig_steps: int = IG_STEPS
    batch_size: int = 8  # perturbed copies (and IG path points) per forward pass
    seed: int = 0  # random order and noise baseline
    precision: str = "auto"  # of the perturbation forwards: fp32 | bf16 | auto

    def __post_init__(self) -> None:
        check_methods(self.methods)
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; got {self.baseline!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be fp32, bf16 or auto; got {self.precision!r}")
        for name in ("steps", "ig_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.patch is not None and self.patch < 1:
            raise ValueError(f"patch must be >= 1 pixel; got {self.patch}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {self.fraction}")


@dataclass
class FaithfulnessResult:
    """Per-image results and their summary.

    ``images``: one dict per evaluated image: ``name``, ``initial_score`` (f_0), ``target_pixels``
    (|T|) and ``methods`` -> method -> ``morf`` / ``lerf`` (raw f_k = Σ logit over the target
    after step k), ``aopc_morf``, ``aopc_lerf`` (of f_k / |T|, in logit units),
    ``abpc``, ``mass_accuracy``, ``pointing_game``, ``seconds`` (time to compute the map).
    ``fractions`` (K+1,): share of the image's patches perturbed at each step.
    """

    settings: dict[str, Any]
    fractions: list[float]
    images: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.settings["methods"])

    def summary(self) -> dict[str, dict[str, Any]]:
        """Method -> ``n_images``, mean and standard error of ``aopc_morf`` / ``aopc_lerf`` /
        ``abpc``, mean ``mass_accuracy`` and ``pointing_game`` (hit rate) over the images where
        they are defined (None if nowhere), mean ``seconds``, and the mean normalised curves
        ``curve_morf`` / ``curve_lerf`` (mean over images of f_k / |T|, the mean logit over the
        explained pixels)."""
        out: dict[str, dict[str, Any]] = {}
        for method in self.methods:
            rows = [image["methods"][method] for image in self.images]
            entry: dict[str, Any] = {"n_images": len(rows)}
            for key in ("aopc_morf", "aopc_lerf", "abpc"):
                mean, sem = _mean_sem([r[key] for r in rows])
                entry[key], entry[key + "_sem"] = mean, sem
            for key in ("mass_accuracy", "pointing_game", "seconds"):
                entry[key] = _mean_sem([r[key] for r in rows])[0]
            for order in ORDERS:
                curves = [np.asarray(r[order]) / image["target_pixels"]
                          for r, image in zip(rows, self.images)]
                entry[f"curve_{order}"] = (np.mean(curves, 0).tolist() if curves else [])
            out[method] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (NaN -> None): the content of ``faithfulness.json``."""
        return _json_safe({"settings": self.settings, "fractions": self.fractions,
                           "summary": self.summary(), "images": self.images,
                           "skipped": self.skipped})


def _mean_sem(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return None, None
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), sem


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate_faithfulness(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    names: Sequence[str] | None = None,
    settings: FaithfulnessSettings = FaithfulnessSettings(),
    progress: bool | None = None,
) -> FaithfulnessResult:
    """Score every method of ``settings`` on each image (module docstring for the protocol).

    ``model``: eval-mode module whose ``logits`` (or ``forward``) maps (N, C, H, W) to (N, C_out, H,
    W) scores; ``images`` (N, C, H, W) in its input space ([-1, 1] for ``Generator``); ``masks``
    (N, H, W) bool ground truth for the localisation scores (None: those are NaN); ``names`` for
    the records (default ``image0`` ...). Images whose prediction is empty are skipped and listed
    in ``result.skipped``. ``progress``: a tqdm bar over images (None: only on a terminal).
    """
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()): dropout and batch statistics "
                         "would make the explained score random")
    n, _, h, w = images.shape
    names = list(names) if names is not None else [f"image{i}" for i in range(n)]
    if len(names) != n or (masks is not None and tuple(masks.shape) != (n, h, w)):
        raise ValueError(f"need {n} names and masks of shape ({n}, {h}, {w})")
    patch = settings.patch or patch_size_for(min(h, w))
    rows, cols = patch_grid(h, w, patch)
    counts = step_counts(rows * cols, settings.steps, settings.fraction)
    recorded = {**asdict(settings), "patch": patch, "methods": list(settings.methods),
                "image_size": [h, w], "patches": rows * cols, "counts": counts}
    result = FaithfulnessResult(recorded, [c / (rows * cols) for c in counts])
    ref = _reference(model)
    with tqdm(total=n, unit="image", desc="faithfulness", disable=None if progress is None
              else not progress) as bar:
        for i in range(n):
            x = images[i:i + 1].to(ref.device, ref.dtype)
            with torch.no_grad():  # not inference_mode: the target takes part in autograd later
                target = _forward(model)(x) > 0
            if not target.any():
                logger.warning("%s: empty prediction, nothing to explain; skipped", names[i])
                result.skipped.append({"name": names[i], "reason": "empty prediction"})
                bar.update()
                continue
            gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + i)
            mask = None if masks is None else masks[i:i + 1].cpu()
            result.images.append(_evaluate_image(model, x, target, mask, names[i], patch, counts,
                                                 settings, gen, bar))
            bar.update()
    return result


def _evaluate_image(model, x, target, mask, name, patch, counts, settings, gen, bar) -> dict:
    h, w = x.shape[-2:]
    n_patches = patch_grid(h, w, patch)[0] * patch_grid(h, w, patch)[1]
    ranks: dict[tuple[str, str], torch.Tensor] = {}
    records: dict[str, dict[str, Any]] = {}
    for method in settings.methods:
        bar.set_postfix_str(method)
        record: dict[str, Any] = {"mass_accuracy": math.nan, "pointing_game": math.nan}
        if method == RANDOM:
            order = random_order(n_patches, gen)
            ranks[(method, "morf")] = ranks[(method, "lerf")] = pixel_ranks(order, h, w, patch)
            record["seconds"] = 0.0
        else:
            t0 = time.perf_counter()
            maps = relevance_maps(model, x, target, method, settings.ig_steps, settings.batch_size)
            record["seconds"] = time.perf_counter() - t0
            scores = patch_relevance(maps, patch)
            for order in ORDERS:
                ranks[(method, order)] = pixel_ranks(perturbation_order(scores, order)[0], h, w,
                                                     patch)
            if mask is not None:
                record["mass_accuracy"] = float(relevance_mass_accuracy(maps, mask)[0])
                record["pointing_game"] = float(pointing_game(maps, mask)[0])
        records[method] = record
    # The random order is one curve, shown under both orders: perturb it once.
    unique = {key: r for key, r in ranks.items() if not (key[0] == RANDOM and key[1] == "lerf")}
    bar.set_postfix_str("perturbation")
    baseline = baseline_images(x.detach().cpu().float(), settings.baseline, patch, gen)
    curves = perturbation_curves(model, x, target, {f"{m}|{o}": r for (m, o), r in unique.items()},
                                 counts, baseline, settings.batch_size, settings.precision)
    pixels = int(target.sum())
    for method, record in records.items():
        morf = curves[f"{method}|morf"]
        lerf = morf if method == RANDOM else curves[f"{method}|lerf"]
        record.update(morf=morf.tolist(), lerf=lerf.tolist(), aopc_morf=aopc(morf / pixels),
                      aopc_lerf=aopc(lerf / pixels))
        record["abpc"] = record["aopc_morf"] - record["aopc_lerf"]
    return {"name": name, "initial_score": float(curves[next(iter(curves))][0]),
            "target_pixels": pixels, "methods": records}


# ---------------------------------------------------------------- files, table, plot

def format_table(result: FaithfulnessResult) -> str:
    """Plain-text table of the summary: one row per method."""
    summary = result.summary()
    header = (f"{'method':<26} {'AOPC MoRF ↑':>13} {'AOPC LeRF ↓':>13} {'ABPC ↑':>8} "
              f"{'mass acc.':>9} {'pointing':>8} {'s/img':>6}")
    lines = [(f"Region perturbation on {len(result.images)} image(s), patch "
             f"{result.settings['patch']} px, {result.settings['steps']} steps up to "
             f"{100 * result.settings['fraction']:.0f}% of the image, baseline "
             f"{result.settings['baseline']}"), header]
    for method, s in summary.items():
        lines.append(f"{method:<26} {_pm(s['aopc_morf'], s['aopc_morf_sem']):>13} "
                     f"{_pm(s['aopc_lerf'], s['aopc_lerf_sem']):>13} {_num(s['abpc']):>8} "
                     f"{_num(s['mass_accuracy']):>9} {_num(s['pointing_game']):>8} "
                     f"{_num(s['seconds'], '.1f'):>6}")
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} image(s) with an empty prediction")
    return "\n".join(lines)


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "—" if value is None or math.isnan(value) else format(value, fmt)


def _pm(mean: float | None, sem: float | None) -> str:
    return _num(mean) + ("" if sem is None else f"±{sem:.3f}")


def curves_figure(summary: dict[str, dict[str, Any]], fractions: Sequence[float],
                  title: str | None = None) -> Figure:
    """Two panels, MoRF and LeRF: each method's mean logit over the explained pixels (averaged over
    the images) against the share of the image perturbed, with one legend below them (the AOPC
    values are in the table). ``random`` is dashed black."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    x = 100 * np.asarray(fractions)
    colours = iter(_palette(len(summary)))
    styles = {m: ({"color": "black", "ls": "--"} if m == RANDOM else {"color": next(colours)})
              for m in summary}
    for ax, order, label in zip(axes, ORDERS, ("MoRF: most relevant first (falls fast = good)",
                                               "LeRF: least relevant first (stays high = good)")):
        for method, s in summary.items():
            curve = s.get(f"curve_{order}") or []
            if len(curve) != len(x):
                continue
            ax.plot(x, curve, marker=".", lw=1.5, label=method, **styles[method])
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("image perturbed (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean logit over the explained pixels\n(mean over images)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(handles)),
                   fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _palette(n: int) -> list[str]:
    base = ["#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#1f77b4", "#17becf",
            "#2ca02c", "#9467bd", "#7f7f7f"]
    return [base[i % len(base)] for i in range(n)]


def write_faithfulness(result: FaithfulnessResult, output_dir: str | Path) -> dict[str, Path]:
    """Write ``faithfulness.json``, ``faithfulness_per_image.csv`` and ``faithfulness_curves.png``
    into ``output_dir`` (atomically); returns kind ("json", "csv", "png") -> path."""
    out = Path(output_dir)
    paths = {"json": out / JSON_NAME, "csv": out / CSV_NAME, "png": out / PLOT_NAME}
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for image in result.images:
        for method, r in image["methods"].items():
            writer.writerow([image["name"], method, f"{image['initial_score']:.6g}",
                             image["target_pixels"]]
                            + [_csv(r[k]) for k in CSV_COLUMNS[4:]])
    atomic_write_text(paths["csv"], buffer.getvalue())
    s = result.settings
    title = (f"Region perturbation, {len(result.images)} image(s), {s['patch']} px patches, "
             f"baseline {s['baseline']}")
    fig = curves_figure(result.summary(), result.fractions, title=title)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    atomic_write_bytes(paths["png"], png.getvalue())
    return paths


def _csv(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.6g}"


def read_faithfulness(path: str | Path) -> dict[str, Any]:
    """``faithfulness.json`` (or the folder holding it) as written by ``write_faithfulness``;
    UserError if missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"faithfulness results not found: {path}") from err
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read faithfulness results ({err})") from err
    if not isinstance(data, dict) or not {"settings", "summary", "fractions"} <= data.keys():
        raise UserError(f"{path}: not a faithfulness.json (needs settings, summary, fractions)")
    return data


# ---------------------------------------------------------------- the driver behind the CLI

def dataset_from_split(split_file: str | Path, data: str | Path | None = None) -> Path:
    """The dataset a run trained on: ``data`` if given, else the ``"dataset"`` recorded in the
    run's ``split.json``. A relative recorded path is relative to where training ran, so it is
    tried from the current folder, then from each folder above the split file. An archive member
    (``kvasir-seg.zip:Kvasir-SEG/``) means the archive. UserError if none exists."""
    if data is not None:
        return Path(data)
    split_file = Path(split_file)
    try:
        recorded = json.loads(split_file.read_text(encoding="utf-8")).get("dataset")
    except (OSError, ValueError, AttributeError) as err:
        raise UserError(f"cannot read {split_file}: {err}") from err
    if not isinstance(recorded, str) or not recorded:
        raise UserError(f"{split_file} records no dataset path: give --data")
    head, sep, _ = recorded.rpartition(":")
    if sep and archive_suffix(head):
        recorded = head
    path = Path(recorded).expanduser()
    candidates = [path] if path.is_absolute() else (
        [path] + [parent / path for parent in split_file.resolve().parents])
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UserError(f"{split_file} names the dataset {recorded}, which was not found (a relative "
                    "path is relative to where training ran): give --data")


def validation_set(
    data: str | Path | None, split_file: str | Path | None = None
) -> tuple[DatasetIndex, list[str]]:
    """(dataset, validation ids): the ``val`` ids of ``split_file`` (a run's ``split.json``) in
    ``data`` (default: the dataset recorded there), or without a split file the dataset's official
    validation list, or all its pairs. UserError for a missing dataset or a foreign split."""
    if split_file is not None:
        index = find_dataset(dataset_from_split(split_file, data))
        ids = read_split(Path(split_file))["val"]
        unknown = sorted(set(ids) - set(index.stems))
        if unknown:
            raise UserError(f"{split_file} names {len(unknown)} id(s) that are not pairs of "
                            f"{index.where} (e.g. {unknown[0]}); was it made for another dataset?")
        return index, ids
    if data is None:
        raise UserError("give a dataset (--data) or a run folder (--run)")
    index = find_dataset(data)
    return index, list(index.official_split["val"] if index.official_split else index.stems)


def evaluate_explanation_files(
    checkpoint: str | Path,
    data: str | Path | None,
    output_dir: str | Path,
    split_file: str | Path | None = None,
    n_images: int = 4,
    settings: FaithfulnessSettings = FaithfulnessSettings(),
    progress: bool | None = None,
    device: str | torch.device = "cpu",
) -> tuple[FaithfulnessResult, dict[str, Path]]:
    """Evaluate the explanations of the generator in ``checkpoint`` on the first ``n_images``
    validation images (``validation_set``, sorted ids) whose prediction is not empty, at the
    checkpoint's image size, with the model on ``device``; write the files of
    ``write_faithfulness`` into ``output_dir``.

    Returns the result and the written paths. Unreadable pairs are logged and skipped. UserError
    for a bad checkpoint, dataset or setting.
    """
    if n_images < 1:
        raise UserError(f"--n-images must be >= 1; got {n_images}")
    model, config = load_generator(checkpoint, device)
    size = config.data.image_size
    index, ids = validation_set(data, split_file)
    images, masks, names, skipped = [], [], [], []
    for stem in ids:
        if len(names) == n_images:
            break
        try:
            image, mask = decode_pair(index, stem, size)
        except ItemError as err:
            logger.error("skipped: %s", err)
            skipped.append({"name": stem, "reason": str(err)})
            continue
        x = to_model_input(torch.from_numpy(image).permute(2, 0, 1)[None])
        with torch.inference_mode():
            if not (model.logits(x.to(device)) > 0).any():
                skipped.append({"name": stem, "reason": "empty prediction"})
                continue
        images.append(x)
        masks.append(torch.from_numpy(mask))
        names.append(stem)
    if not names:
        raise UserError(f"none of the {len(ids)} validation images of {index.where} has a "
                        "non-empty prediction: nothing to explain")
    if len(names) < n_images:
        logger.warning("only %d image(s) with a non-empty prediction among %d validation images",
                       len(names), len(ids))
    try:
        result = evaluate_faithfulness(model, torch.cat(images), torch.stack(masks), names,
                                       settings, progress)
    except ValueError as err:  # e.g. more steps than patches
        raise UserError(str(err)) from err
    result.skipped = skipped + result.skipped
    result.settings.update(checkpoint=str(checkpoint), dataset=index.where,
                           split_file=None if split_file is None else str(split_file))
    return result, write_faithfulness(result, output_dir)
