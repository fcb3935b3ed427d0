"""Do the explanations tell the truth? The evaluation that scores every method on every image.

Protocol (Samek et al. 2017, "Evaluating the visualization of what a deep neural network has
learned", IEEE TNNLS), adapted to segmentation:

- **Explained score.** ``f(x) = Σ logit`` over the *originally* explained target: the positions the
  model predicts as foreground on the unperturbed image (``logit > 0``, the ``"mask"`` target of
  ``endoxai explain``). The positions stay fixed while the image is perturbed. Images with an empty
  prediction have nothing to explain and are skipped.
- **Methods** (``explain.methods``): every LRP composite, gradient, gradient x input, integrated
  gradients, and a random patch order as the floor.
- **Perturbation** (``explain.perturbation``): patches removed in each method's MoRF and LeRF
  order onto a baseline, the explained score after each step.
- **AOPC** per image is taken of the curve divided by ``|T|``, the number of explained output
  pixels, so the curve is the *mean logit over the explained pixels* and AOPC is in logit units,
  comparable between images with large and small masks; then the mean over images. (Dividing by
  ``f_0`` instead, as a share of the unperturbed score, is unstable: a barely-positive prediction
  has ``f_0`` near 0 and a huge ratio.) Higher MoRF AOPC = the ranking found the evidence sooner;
  lower LeRF AOPC = what it ranked last really did not matter. A perturbation can also *raise* the
  score (negative AOPC). ``abpc`` (area between the perturbation curves, Schulz et al. 2020) is
  ``AOPC_MoRF - AOPC_LeRF``.
- **Segmentation-scored curves.** The same perturbed copies are also scored by the Dice of their
  prediction against the unperturbed one (``perturbation.perturbation_scores``); the Dice AOPC,
  ``1/(K+1) Σ (1 - d_k)``, is the mean share of the predicted region lost (0..1): high for MoRF,
  low for LeRF. It does not depend on the logits' scale, so it compares across models.
- **Spread.** Every AOPC is summarised over images by its mean, standard error and a 95 %
  percentile-bootstrap interval (``similarity.mean_interval``).
- **Localisation** (``explain.localisation``) against the ground-truth mask: relevance mass
  accuracy and pointing game; NaN for ``random`` and without a ground truth.

Attributions always run in float32 (or the model's dtype); the perturbation forwards may use bf16.
Files and the table: ``explain.faithfulness_files``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from endoxai.config import PRECISIONS
from endoxai.explain.localisation import pointing_game, relevance_mass_accuracy
from endoxai.explain.methods import (
    IG_STEPS,
    INTEGRATED_GRADIENTS,
    LRP_PREFIX,
    RANDOM,
    check_methods,
    first_parameter,
    method_names,
    model_logits,
    relevance_maps,
)
from endoxai.explain.perturbation import (
    BASELINES,
    DEFAULT_FRACTION,
    DEFAULT_STEPS,
    ORDERS,
    aopc,
    baseline_images,
    patch_grid,
    patch_relevance,
    patch_size_for,
    perturbation_scores,
    perturbation_order,
    perturbation_passes,
    pixel_ranks,
    random_order,
    step_counts,
)
from endoxai.explain.similarity import mean_interval
from endoxai.fileio import json_safe

logger = logging.getLogger(__name__)

# Rough cost of one map in forward passes of one image (a backward pass costs about two; LRP's
# modified backward about four). Only the progress bar's ETA uses them: measured once on a CPU
# against a batched forward, they need not be exact.
_LRP_PASSES = 5
_GRADIENT_PASSES = 2
_IG_PASSES_PER_STEP = 1.5
AOPC_KEYS = ("aopc_morf", "aopc_lerf", "abpc", "aopc_dice_morf", "aopc_dice_lerf")
_BAR = "{desc}{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"


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
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; "
                             f"got {self.baseline!r}")
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
    after step k), ``aopc_morf``, ``aopc_lerf`` (of f_k / |T|, in logit units), ``dice_morf`` /
    ``dice_lerf`` (d_k, Dice of the prediction against the target) and ``aopc_dice_morf`` /
    ``aopc_dice_lerf`` (their AOPC, a share of the predicted region),
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
        """Method -> ``n_images``; for each of ``aopc_morf`` / ``aopc_lerf`` / ``abpc`` /
        ``aopc_dice_morf`` / ``aopc_dice_lerf`` the mean, its standard error (``_sem``) and a
        95 % bootstrap interval (``_low``, ``_high``); mean ``mass_accuracy`` and
        ``pointing_game`` (hit rate) over the images where they are defined (None if nowhere),
        mean ``seconds``, the mean normalised curves ``curve_morf`` / ``curve_lerf`` (mean over
        images of f_k / |T|, the mean logit over the explained pixels) and the mean Dice curves
        ``dice_curve_morf`` / ``dice_curve_lerf``."""
        out: dict[str, dict[str, Any]] = {}
        for method in self.methods:
            rows = [image["methods"][method] for image in self.images]
            entry: dict[str, Any] = {"n_images": len(rows)}
            for key in AOPC_KEYS:
                values = [r.get(key) for r in rows]
                mean, sem = _mean_sem(values)
                entry[key], entry[key + "_sem"] = mean, sem
                spread = mean_interval(values, seed=self.settings.get("seed", 0))
                entry[key + "_low"], entry[key + "_high"] = spread["low"], spread["high"]
            for key in ("mass_accuracy", "pointing_game", "seconds"):
                entry[key] = _mean_sem([r[key] for r in rows])[0]
            for order in ORDERS:
                curves = [np.asarray(r[order]) / image["target_pixels"]
                          for r, image in zip(rows, self.images)]
                entry[f"curve_{order}"] = (np.mean(curves, 0).tolist() if curves else [])
                dice = [r[f"dice_{order}"] for r in rows if f"dice_{order}" in r]
                entry[f"dice_curve_{order}"] = np.mean(dice, 0).tolist() if dice else []
            out[method] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (NaN -> None): the content of ``faithfulness.json``."""
        return json_safe({"settings": self.settings, "fractions": self.fractions,
                          "summary": self.summary(), "images": self.images,
                          "skipped": self.skipped})


def _mean_sem(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return None, None
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), sem


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
    in ``result.skipped``. ``progress``: a tqdm bar with an ETA (None: only on a terminal).
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
    ref = first_parameter(model)
    per_image = _passes_per_image(settings, counts)
    # Counted in passes, shown as a percentage: the ETA is good from the first image on. No
    # smoothing: the ETA from the average rate, as the maps and the perturbation differ in speed.
    with logging_redirect_tqdm(), tqdm(
        total=n * per_image, smoothing=0, disable=None if progress is None else not progress,
        desc="faithfulness", bar_format=_BAR,
    ) as bar:
        for i in range(n):
            bar.set_description(f"faithfulness, image {i + 1}/{n}", refresh=False)
            x = images[i:i + 1].to(ref.device, ref.dtype)
            with torch.no_grad():  # not inference_mode: the target takes part in autograd later
                target = model_logits(model)(x) > 0
            if not target.any():
                logger.warning("%s: empty prediction, nothing to explain; skipped", names[i])
                result.skipped.append({"name": names[i], "reason": "empty prediction"})
            else:
                gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + i)
                mask = None if masks is None else masks[i:i + 1].cpu()
                result.images.append(_evaluate_image(model, x, target, mask, names[i], patch,
                                                     counts, settings, gen, bar))
            if not bar.disable:  # a skipped image's share
                bar.update((i + 1) * per_image - bar.n)
    return result


def _map_passes(method: str, ig_steps: int) -> int:
    if method == RANDOM:
        return 0
    if method.startswith(LRP_PREFIX):
        return _LRP_PASSES
    if method == INTEGRATED_GRADIENTS:
        return math.ceil(_IG_PASSES_PER_STEP * ig_steps)
    return _GRADIENT_PASSES


def _passes_per_image(settings: FaithfulnessSettings, counts: Sequence[int]) -> int:
    maps = [m for m in settings.methods if m != RANDOM]
    curves = 2 * len(maps) + (RANDOM in settings.methods)
    return (sum(_map_passes(m, settings.ig_steps) for m in maps)
            + perturbation_passes(curves, counts))


def _evaluate_image(model, x, target, mask, name, patch, counts, settings, gen, bar) -> dict:
    h, w = x.shape[-2:]
    n_patches = patch_grid(h, w, patch)[0] * patch_grid(h, w, patch)[1]
    ranks: dict[tuple[str, str], torch.Tensor] = {}
    records: dict[str, dict[str, Any]] = {}
    for method in settings.methods:
        bar.set_postfix_str(f"{name}: {method}")
        record: dict[str, Any] = {"mass_accuracy": math.nan, "pointing_game": math.nan}
        if method == RANDOM:
            order = random_order(n_patches, gen)
            ranks[(method, "morf")] = ranks[(method, "lerf")] = pixel_ranks(order, h, w, patch)
            record["seconds"] = 0.0
        else:
            t0 = time.perf_counter()
            maps = relevance_maps(model, x, target, method, settings.ig_steps, settings.batch_size)
            record["seconds"] = time.perf_counter() - t0
            bar.update(_map_passes(method, settings.ig_steps))
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
    bar.set_postfix_str(f"{name}: perturbation")
    baseline = baseline_images(x.detach().cpu().float(), settings.baseline, patch, gen)
    scores = perturbation_scores(model, x, target,
                                 {f"{m}|{o}": r for (m, o), r in unique.items()}, counts,
                                 baseline, settings.batch_size, settings.precision,
                                 on_batch=bar.update)
    curves, dice = scores["logit"], scores["dice"]
    pixels = int(target.sum())
    for method, record in records.items():
        morf = curves[f"{method}|morf"]
        lerf = morf if method == RANDOM else curves[f"{method}|lerf"]
        record.update(morf=morf.tolist(), lerf=lerf.tolist(), aopc_morf=aopc(morf / pixels),
                      aopc_lerf=aopc(lerf / pixels))
        record["abpc"] = record["aopc_morf"] - record["aopc_lerf"]
        dice_morf = dice[f"{method}|morf"]
        dice_lerf = dice_morf if method == RANDOM else dice[f"{method}|lerf"]
        record.update(dice_morf=dice_morf.tolist(), dice_lerf=dice_lerf.tolist(),
                      aopc_dice_morf=aopc(dice_morf), aopc_dice_lerf=aopc(dice_lerf))
    return {"name": name, "initial_score": float(curves[next(iter(curves))][0]),
            "target_pixels": pixels, "methods": records}

