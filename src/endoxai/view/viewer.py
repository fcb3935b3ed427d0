"""The viewer's model side: the model loaded once, per-image predictions and relevance answers.

Everything here runs in one worker thread (``app`` hands it the jobs), so the caches need no
locks and the CPU cores are never shared between two relevance passes. Caches are small LRUs:
the prediction of the last few images, the prepared copy of the model for the last composites
and the forward pass (with its graph) of the last image and composite pairs; a click on an image
whose forward pass is cached costs one backward pass.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from endoxai.config import Config
from endoxai.data.preprocess import to_model_input
from endoxai.errors import ItemError
from endoxai.explain import COMPOSITES, DEFAULT_COMPOSITE, Explanation
from endoxai.explain.flow import SkipFlow
from endoxai.explain.files import format_target
from endoxai.explain.targets import Target
from endoxai.metrics import confusion_counts, medai_scores
from endoxai.predict import logits_to_mask, predict_logits
from endoxai.train.checkpoint import load_generator
from endoxai.view.relevance import CachedExplainer, ForwardPass
from endoxai.view.store import ImageStore, Pixels, StoredImage
from endoxai.weights import DEFAULT_MODEL, resolve_model

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def load_model(checkpoint: str | Path | None = None, model: str | None = None
               ) -> tuple[nn.Module, Config, str]:
    """The generator the viewer explains, its config and a label for the page: ``checkpoint``
    (a .pt / .safetensors file or a run folder) or the bundled ``model`` (default: polyp).

    UserError, one line, when it cannot be found or read.
    """
    path = resolve_model(checkpoint, model)
    generator, config = load_generator(path)
    # a run's best.pt is named by its folder too: "best.pt" alone says nothing
    label = ("/".join(path.parts[-2:]) if checkpoint is not None
             else f"{model or DEFAULT_MODEL} (bundled)")
    return generator, config, label


class LRU(Generic[K, V]):
    """A dict that keeps the ``capacity`` most recently used entries."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> tuple[V, bool]:
        """(value, True if it was cached); ``make()`` builds a missing value."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key], True
        value = make()
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value, False

    def __contains__(self, key: object) -> bool:
        return key in self._items


@dataclass(frozen=True)
class Prediction:
    """An image at model resolution with the model's answer: ``logits`` float32 (S, S)."""

    pixels: Pixels
    logits: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.logits > 0


@dataclass
class Answer:
    """Relevance for one question. Maps are channel sums: ``input`` (S, S), ``layers`` name ->
    (h, w) with ``shapes`` name -> (C, h, w) of the full relevance. ``totals``: Σ relevance at
    the output, at every block (forward order) and at the input. ``seconds``: forward (0 when
    cached) and backward."""

    input: np.ndarray
    layers: OrderedDict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    totals: dict[str, float]
    target_pixels: int
    seconds: dict[str, float]
    forward_cached: bool
    flow: SkipFlow | None = None


class Viewer:
    """The model, the images and the caches behind one ``endoxai view`` run."""

    def __init__(self, model: nn.Module, config: Config, label: str, store: ImageStore,
                 precision: str = "fp32", forward_cache: int = 2) -> None:
        self.model = model.eval()
        self.config = config
        self.label = label
        self.store = store
        self.size = config.data.image_size
        self.precision = precision
        self._predictions: LRU[str, Prediction] = LRU(8)
        self._explainers: LRU[str, CachedExplainer] = LRU(2)
        self._forwards: LRU[tuple[str, str], ForwardPass] = LRU(forward_cache)

    def score(self, images: list[StoredImage], progress: bool = True) -> None:
        """Dice and Jaccard (MedAI protocol, at each image's own size, as ``endoxai evaluate``
        scores ``endoxai predict``'s masks) of every image with a truth mask."""
        scored = [image for image in images if image.truth_path is not None]
        for image in tqdm(scored, desc="score", unit="image", disable=not progress):
            try:
                prediction = self.prediction(image)
                truth = self.store.truth_original(image)
            except ItemError as err:
                logger.error("error: %s; shown without a score", err)
                continue
            logit = torch.from_numpy(prediction.logits)[None]
            pred = logits_to_mask(logit, (image.height, image.width))
            scores = medai_scores(confusion_counts(pred, truth))
            image.dice, image.jaccard = float(scores["dice"]), float(scores["jaccard"])

    def prediction(self, image: StoredImage) -> Prediction:
        """The image at model resolution and the model's logits (cached for recent images)."""
        def make() -> Prediction:
            pixels = self.store.pixels(image)
            batch = torch.from_numpy(pixels.image).permute(2, 0, 1)[None]
            logits = predict_logits(self.model, batch)[0, 0].numpy()
            return Prediction(pixels, logits)

        return self._predictions.get(image.id, make)[0]

    def explainer(self, composite: str) -> CachedExplainer:
        """The prepared copy of the model for ``composite`` (cached for the last two)."""
        if composite not in COMPOSITES:
            raise ValueError(f"unknown composite {composite!r}; choose from "
                             f"{', '.join(COMPOSITES)}")
        return self._explainers.get(
            composite, lambda: CachedExplainer(self.model, composite, self.precision))[0]

    def forward(self, image: StoredImage, composite: str) -> ForwardPass:
        """The modified forward pass of ``image`` under ``composite`` (cached)."""
        return self._cached_forward(image, composite)[0]

    def forget_forwards(self) -> None:
        """Empty the forward-pass cache (the next question of every image runs a forward)."""
        self._forwards = LRU(self._forwards.capacity)

    def _cached_forward(self, image: StoredImage, composite: str) -> tuple[ForwardPass, bool]:
        explainer = self.explainer(composite)

        def make() -> ForwardPass:
            pixels = torch.from_numpy(self.prediction(image).pixels.image)
            return explainer.forward(to_model_input(pixels.permute(2, 0, 1)[None]))

        return self._forwards.get((image.id, composite), make)

    def ask(self, image: StoredImage, composite: str, target: Target) -> Answer:
        """Relevance of ``target`` (as for ``explain``) in ``image`` under ``composite``."""
        explainer = self.explainer(composite)
        start = time.perf_counter()
        forward, cached = self._cached_forward(image, composite)
        middle = time.perf_counter()
        explanation = explainer.relevance(forward, target)
        end = time.perf_counter()
        layers = OrderedDict((name, r[0].sum(0).numpy()) for name, r in explanation.layers.items())
        totals = {"output": float(explanation.output.sum())}
        totals.update((name, float(m.sum())) for name, m in layers.items())
        input_map = explanation.input[0].sum(0).numpy()
        totals["input"] = float(input_map.sum())
        return Answer(
            input=input_map,
            layers=layers,
            shapes={name: tuple(r.shape[1:]) for name, r in explanation.layers.items()},
            totals=totals,
            target_pixels=int(explanation.target[0, 0].sum()),
            seconds={"forward": 0.0 if cached else middle - start, "backward": end - middle},
            forward_cached=cached,
            flow=_flow(explanation),
        )


def _flow(explanation: Explanation) -> SkipFlow | None:
    """The skip-flow ledger, or None for a model that is not a U-Net of down/up blocks."""
    try:
        return explanation.flow
    except ValueError:
        return None


def parse_target(spec: object, size: int) -> Target:
    """A target sent by the page -> an ``explain`` target; ValueError with a one-line reason.

    ``{"kind": "mask"}``, ``{"kind": "background"}``, ``{"kind": "pixel", "y": Y, "x": X}``,
    ``{"kind": "box", "y0": .., "x0": .., "y1": .., "x1": ..}`` (half-open, model resolution).
    """
    if not isinstance(spec, dict):
        raise ValueError("target must be an object with a 'kind'")
    kind = spec.get("kind")
    if kind in ("mask", "background"):
        return kind
    keys = {"pixel": ("y", "x"), "box": ("y0", "x0", "y1", "x1")}.get(kind)
    if keys is None:
        raise ValueError(f"unknown target kind {kind!r}; use mask, background, pixel or box")
    values = [spec.get(k) for k in keys]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"a {kind} target needs integer {', '.join(keys)}")
    limit = size - 1 if kind == "pixel" else size
    if not all(0 <= v <= limit for v in values):
        raise ValueError(f"{kind} {values} lies outside the {size}x{size} model input")
    if kind == "box" and not (values[0] < values[2] and values[1] < values[3]):
        raise ValueError("a box needs y0 < y1 and x0 < x1")
    return (kind, *values)


def npz_arrays(answer: Answer, prediction: Prediction, image: StoredImage, composite: str,
               target: Target) -> dict[str, np.ndarray]:
    """The arrays of one answer, with the keys of ``endoxai explain``'s npz where they agree."""
    arrays = {
        "image": prediction.pixels.image,
        "input_map": answer.input.astype(np.float32),
        "logits": prediction.logits.astype(np.float32),
        "mask": prediction.mask,
        "layer_names": np.array(list(answer.layers)),
        "layer_shapes": np.array([answer.shapes[n] for n in answer.layers], dtype=np.int64),
        "source": np.array(image.name),
        "target": np.array(format_target(target)),
        "composite": np.array(composite),
        "start": np.array("logit"),
    }
    arrays.update((f"layer_{name}", m.astype(np.float32)) for name, m in answer.layers.items())
    if answer.flow is not None:
        arrays.update(answer.flow.arrays(0))
    return arrays
