"""Randomisation sanity checks: does an explanation change when the model's weights are destroyed?

Adebayo et al. 2018 ("Sanity checks for saliency maps", NeurIPS; Quantus calls it MPRT) ask that
a map depend on the parameters it claims to explain. Adapted here to a U-Net segmenter:

- **Cascading randomisation** from the output block inward: ``up8``, then ``up8 + up7``, ... all
  decoder blocks, then ``down8`` ... ``down1`` too (for ``Generator``; any depth D works).
- **Independent randomisation** of one part only: the ``encoder`` (``down1..downD``), the
  ``decoder`` (``up1..upD``: the same model as the cascade's ``up1`` stage, computed once), or
  the ``skips``: the decoder weights that read the skip channels (in ``up_{D+1-k}``, the input
  channels that come from ``down_k``), so the skips still carry the encoder's features but the
  decoder no longer reads them as trained.
- **Data randomisation** (optional): a model of the same architecture trained on shuffled masks
  (``data.shuffle_masks``), which learnt no real image-mask relation, is the stage ``data``.
- **Randomising** a parameter tensor redraws it from a normal distribution with the trained
  tensor's own mean and standard deviation (so activations keep their scale), seeded by the
  parameter's name: a block gets the same draw at every stage it is randomised in. Convolution
  weights and biases and BatchNorm scales and shifts are redrawn (a one-number tensor, such as
  the bias of a one-channel output, has no spread and keeps its value); BatchNorm running
  statistics are kept (they are statistics of the data, not learned weights).
- **Target fixed**: every model, randomised or not, is explained for the positions the *trained*
  model predicts as foreground (``logit > 0``), with the same method as in ``methods`` (LRP starts
  from the logits there). Images with an empty prediction are skipped.
- **Similarity** of each map to the trained model's map, per image: Spearman rank correlation of
  |R| and SSIM of |R| / max|R| (``similarity``). A map that passes the check falls towards 0 as
  more is randomised; a map that stays similar did not depend on those weights.
- **Beyond locality**: a U-Net's relevance for a fixed target stays near the target whatever its
  weights (a convolution only sees a neighbourhood), so two maps of one target rank pixels
  alike even when one model is random: on the bundled model a fully randomised generator keeps
  Spearman ρ 0.6–0.95. ``spearman_partial`` removes that share: the partial rank correlation of
  the two maps given each pixel's distance to the target (``chessboard_distance``), i.e. how
  alike they are in what the distance alone does not predict.

The summary gives, per stage and method, the mean over images with its standard deviation and a
95 % bootstrap interval.
"""

from __future__ import annotations

import copy
import logging
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from endoxai.explain.flow import unet_depth
from endoxai.explain.methods import (
    RANDOM,
    check_methods,
    first_parameter,
    method_names,
    model_logits,
    relevance_maps,
)
from endoxai.explain.similarity import (
    centred_ranks,
    chessboard_distance,
    mean_interval,
    normalise_abs,
    partial_rank_correlation,
    rank_correlation,
    ssim,
)
from endoxai.fileio import json_safe  # one NaN policy for the result files

logger = logging.getLogger(__name__)

INDEPENDENT = ("encoder", "decoder", "skips")
# Every map is computed once per randomised model (19 models for Generator), so IG's path is
# shorter here than in the region perturbation: its 8-step maps rank |R| like 24-step ones
# (docs/results.md, sanity checks).
SANITY_IG_STEPS = 8
MEASURES = ("spearman", "spearman_partial", "ssim")
DATA = "data"  # the stage and kind of the model trained on shuffled masks
ORIGINAL = "original"


def default_methods() -> tuple[str, ...]:
    """Every method that has a map: each LRP composite, gradient, gradient × input, IG."""
    return tuple(m for m in method_names() if m != RANDOM)


@dataclass(frozen=True)
class SanitySettings:
    """What the sanity check randomises and compares; see the module docstring."""

    methods: tuple[str, ...] = field(default_factory=default_methods)
    cascade: bool = True
    independent: tuple[str, ...] = INDEPENDENT
    ig_steps: int = SANITY_IG_STEPS
    batch_size: int = 8  # images per attribution pass
    seed: int = 0

    def __post_init__(self) -> None:
        methods = check_methods(self.methods)
        if RANDOM in methods:
            raise ValueError("the random order has no map to randomise; leave it out")
        unknown = set(self.independent) - set(INDEPENDENT)
        if unknown:
            raise ValueError(f"unknown independent randomisation(s) {', '.join(sorted(unknown))};"
                             f" choose from {', '.join(INDEPENDENT)}")
        if not self.cascade and not self.independent:
            raise ValueError("nothing to randomise: enable the cascade or an independent part")
        for name in ("ig_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")


@dataclass(frozen=True)
class Stage:
    """One randomised model: ``name`` (the last block randomised for the cascade, else the part),
    ``kind`` ("cascade" | "independent" | "data": the model trained on shuffled masks), the
    whole ``blocks`` redrawn, and whether only the ``skip`` inputs of the decoder were."""

    name: str
    kind: str
    blocks: tuple[str, ...]
    skips_only: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """What the stage redraws: two stages with one key are one randomised model."""
        if self.kind == DATA:
            return (DATA,)
        return tuple(sorted(self.blocks)) + (("skips",) if self.skips_only else ())


def unet_blocks(model: nn.Module) -> int:
    """D for a model whose children are ``down1..downD, up1..upD`` (ValueError otherwise)."""
    return unet_depth([name for name, _ in model.named_children()])


def stages(depth: int, settings: SanitySettings) -> list[Stage]:
    """The randomised models of ``settings`` in order: the cascade (``up_D`` ... ``up1``,
    ``down_D`` ... ``down1``), then the independent parts."""
    order = [f"up{j}" for j in range(depth, 0, -1)] + [f"down{i}" for i in range(depth, 0, -1)]
    out = []
    if settings.cascade:
        out += [Stage(block, "cascade", tuple(order[:i + 1])) for i, block in enumerate(order)]
    for part in settings.independent:
        if part == "encoder":
            out.append(Stage(part, "independent", tuple(f"down{i}" for i in range(1, depth + 1))))
        elif part == "decoder":
            out.append(Stage(part, "independent", tuple(f"up{j}" for j in range(1, depth + 1))))
        else:
            out.append(Stage(part, "independent", (), skips_only=True))
    return out


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _redraw(t: torch.Tensor, seed: int, name: str) -> torch.Tensor:
    """A tensor shaped like ``t`` drawn from N(mean(t), std(t)), seeded by ``name``."""
    flat = t.detach().double()
    std = float(flat.std()) if t.numel() > 1 else 0.0
    noise = torch.randn(t.shape, generator=_generator(seed, name), dtype=torch.float64)
    return (float(flat.mean()) + std * noise).to(t)


def randomise(model: nn.Module, stage: Stage, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` (eval mode) with ``stage``'s parameters redrawn (module docstring);
    ``model`` itself is not touched."""
    depth = unet_blocks(model)
    twin = copy.deepcopy(model).eval()
    with torch.no_grad():
        for block in stage.blocks:
            for name, p in twin.get_submodule(block).named_parameters():
                p.copy_(_redraw(p, seed, f"{block}.{name}"))
        if stage.skips_only:
            for j in range(2, depth + 1):
                conv = _first_linear(twin.get_submodule(f"up{j}"))
                upsampled = _first_linear(twin.get_submodule(f"up{j - 1}"))
                c = upsampled.out_channels
                # ConvTranspose2d weights are (C_in, C_out, k, k): input channels c.. are the skip
                conv.weight[c:] = _redraw(conv.weight[c:], seed, f"up{j}.skip")
    return twin


def _first_linear(block: nn.Module) -> nn.Module:
    for m in block.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return m
    raise ValueError(f"block {block!r} has no convolution")


@dataclass
class SanityResult:
    """Per-image similarities and their summary.

    ``similarity[stage][method][measure]``: one float per image of ``names`` (NaN where a map is
    constant); ``stages``: the stage records in order (name, kind, blocks, skips_only).
    """

    settings: dict[str, Any]
    stages: list[dict[str, Any]]
    names: list[str]
    similarity: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.settings["methods"])

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float | int | None]]]]:
        """stage -> method -> measure -> ``mean_interval`` over images (n, mean, std, 95 % CI)."""
        return {stage: {method: {m: mean_interval(values[m], seed=self.settings["seed"])
                                 for m in MEASURES}
                        for method, values in per_method.items()}
                for stage, per_method in self.similarity.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content of ``sanity.json`` (NaN -> None)."""
        return json_safe({"settings": self.settings, "stages": self.stages, "names": self.names,
                          "summary": self.summary(), "similarity": self.similarity,
                          "skipped": self.skipped})


def attribution_maps(model: nn.Module, images: torch.Tensor, target: torch.Tensor,
                     methods: Sequence[str], ig_steps: int, batch_size: int,
                     bar: tqdm | None = None) -> dict[str, torch.Tensor]:
    """method -> (N, H, W) float32 maps (``methods.relevance_maps``), ``batch_size`` images at a
    time."""
    out: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    # channels-last: oneDNN's fast layout for the gradient passes (LRP sets it itself)
    images = images.contiguous(memory_format=torch.channels_last)
    for first in range(0, images.shape[0], batch_size):
        x, t = images[first:first + batch_size], target[first:first + batch_size]
        for method in methods:
            out[method].append(relevance_maps(model, x, t, method, ig_steps, batch_size))
            if bar is not None:
                bar.update(x.shape[0])
    return {m: torch.cat(maps) for m, maps in out.items()}


def evaluate_sanity(
    model: nn.Module,
    images: torch.Tensor,
    names: Sequence[str] | None = None,
    settings: SanitySettings | None = None,
    progress: bool | None = None,
    data_random: nn.Module | None = None,
) -> SanityResult:
    """Run the randomisation checks of ``settings`` (module docstring) on ``images`` (N, C, H, W,
    in the model's input space) for an eval-mode U-Net ``model`` (children ``down1..downD,
    up1..upD``). ``progress``: a tqdm bar over (stage, method, image) passes (None: only on a
    terminal). ``data_random``: the same architecture trained on shuffled masks, compared as the
    stage ``data``."""
    settings = settings or SanitySettings()
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()): dropout and batch statistics "
                         "would make the maps random")
    depth = unet_blocks(model)
    plan = stages(depth, settings)
    if data_random is not None:
        if unet_blocks(data_random) != depth:
            raise ValueError("the data-randomised model must have the model's depth")
        plan.append(Stage(DATA, DATA, ()))
    n = images.shape[0]
    names = list(names) if names is not None else [f"image{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"need {n} names; got {len(names)}")
    ref = first_parameter(model)
    images = images.to(ref.device, ref.dtype)
    with torch.no_grad():
        target = torch.cat([model_logits(model)(images[i:i + 1]) > 0 for i in range(n)])
    keep = [i for i in range(n) if target[i].any()]
    result = SanityResult(
        settings={**asdict(settings), "methods": list(settings.methods),
                  "independent": list(settings.independent), "depth": depth,
                  "image_size": list(images.shape[-2:])},
        stages=[asdict(s) for s in plan], names=[names[i] for i in keep])
    for i in range(n):
        if i not in keep:
            logger.warning("%s: empty prediction, nothing to explain; skipped", names[i])
            result.skipped.append({"name": names[i], "reason": "empty prediction"})
    if not keep:
        return result
    images, target = images[keep], target[keep]
    methods = list(settings.methods)
    total = len(methods) * len(keep) * (1 + len({stage.key for stage in plan}))
    with tqdm(total=total, unit="map", desc="sanity", disable=None if progress is None
              else not progress) as bar:
        bar.set_postfix_str(ORIGINAL)
        reference = attribution_maps(model, images, target, methods, settings.ig_steps,
                                     settings.batch_size, bar)
        # the trained model's side of every comparison, prepared once for all stages
        ranks = {m: centred_ranks(reference[m].abs()) for m in methods}
        scaled = {m: normalise_abs(reference[m]) for m in methods}
        nearness = centred_ranks(-chessboard_distance(target))  # what locality alone predicts
        computed: dict[tuple[str, ...], dict[str, dict[str, list[float]]]] = {}
        for stage in plan:
            key = stage.key
            if key not in computed:  # the decoder alone is the cascade's up1 stage
                bar.set_postfix_str(stage.name)
                twin = (randomise(model, stage, settings.seed) if stage.kind != DATA
                        else data_random.to(ref.device, ref.dtype).eval())
                maps = attribution_maps(twin, images, target, methods, settings.ig_steps,
                                        settings.batch_size, bar)
                del twin
                computed[key] = {m: _similarities(ranks[m], scaled[m], nearness, maps[m])
                                 for m in methods}
            result.similarity[stage.name] = computed[key]
    return result


def _similarities(ranks: torch.Tensor, scaled: torch.Tensor, nearness: torch.Tensor,
                  maps: torch.Tensor) -> dict[str, list[float]]:
    """Each of ``MEASURES`` per image, between the trained model's maps (as ``centred_ranks`` and
    ``normalise_abs``) and a randomised model's ``maps``."""
    other = centred_ranks(maps.abs())
    return {"spearman": rank_correlation(ranks, other).tolist(),
            "spearman_partial": partial_rank_correlation(ranks, other, nearness).tolist(),
            "ssim": ssim(scaled, normalise_abs(maps)).tolist()}
