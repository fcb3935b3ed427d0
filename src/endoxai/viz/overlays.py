"""Masks and relevance drawn over the image, as uint8 RGB arrays (pure numpy)."""

from __future__ import annotations

import numpy as np

from endoxai.viz.heatmaps import heatmap_rgb, symmetric_limit

MASK_COLOUR = (0, 255, 0)  # green: distinct from both heatmap colours
# Errors of a predicted mask against the truth, from the Okabe-Ito palette: of its colours these
# three stay furthest apart from each other and from reddish mucosa, for normal vision and when
# simulated for protanopia, deuteranopia and tritanopia (Machado et al. 2009; tests/viz).
TP_COLOUR = (86, 180, 233)  # sky blue: predicted and true
FP_COLOUR = (240, 228, 66)  # yellow: predicted, not true
FN_COLOUR = (0, 114, 178)  # blue: true, missed


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image; got {image.dtype} {image.shape}")
    return image


def _check_same_size(image: np.ndarray, other: np.ndarray, what: str) -> None:
    if other.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"{what} is {other.shape[:2]}, image is {image.shape[:2]}: sizes must match"
        )


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    colour: tuple[int, int, int] = MASK_COLOUR,
    alpha: float = 0.4,
) -> np.ndarray:
    """uint8 (H, W, 3) image, bool (H, W) mask -> uint8 (H, W, 3): ``colour`` blended in at
    ``alpha`` where the mask is true; other pixels unchanged."""
    image = _check_image(image)
    mask = np.asarray(mask, dtype=bool)
    _check_same_size(image, mask, "mask")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    out = image.astype(np.float64)
    out[mask] = (1.0 - alpha) * out[mask] + alpha * np.asarray(colour, dtype=np.float64)
    return np.rint(out).astype(np.uint8)


def overlay_heatmap(
    image: np.ndarray,
    relevance: np.ndarray,
    alpha: float = 0.8,
    limit: float | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) image, (H, W) relevance -> uint8 (H, W, 3) with the heatmap blended over it.

    The blend weight of a pixel is ``alpha * |R| / limit`` (limit = max |R| by default), so
    irrelevant pixels show the image and strongly relevant ones show their heatmap colour.
    """
    image = _check_image(image)
    relevance = np.asarray(relevance, dtype=np.float64)
    _check_same_size(image, relevance, "relevance")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    limit = symmetric_limit(relevance) if limit is None else limit
    colours = heatmap_rgb(relevance, limit).astype(np.float64)
    strength = np.zeros_like(relevance)
    if limit > 0:
        strength = np.clip(np.nan_to_num(np.abs(relevance) / limit), 0.0, 1.0)
    weight = (alpha * strength)[..., None]
    return np.rint((1.0 - weight) * image + weight * colours).astype(np.uint8)


def error_overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray,
                  alpha: float = 0.55) -> np.ndarray:
    """uint8 (H, W, 3) image with a predicted mask's errors drawn over it (bool (H, W) masks):
    true positives in ``TP_COLOUR``, false positives in ``FP_COLOUR``, false negatives in
    ``FN_COLOUR``, each blended at ``alpha``; the errors (FP, FN) also get an opaque one-pixel
    outline, so that a thin or small error region stays visible on any tissue."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    out = overlay_mask(image, pred & truth, TP_COLOUR, alpha)
    for region, colour in ((pred & ~truth, FP_COLOUR), (~pred & truth, FN_COLOUR)):
        out = overlay_mask(out, region, colour, alpha)
        out[_edge(region)] = colour
    return out


def _edge(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it (or on the image border)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner
