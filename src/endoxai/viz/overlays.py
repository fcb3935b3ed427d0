"""Masks and relevance drawn over the image, as uint8 RGB arrays (pure numpy)."""

from __future__ import annotations

import numpy as np

from endoxai.viz.heatmaps import heatmap_rgb, symmetric_limit

MASK_COLOUR = (0, 255, 0)  # green: distinct from both heatmap colours


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
