"""Resizing decoded arrays to the model size and scaling them to the generator's input range."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3), bilinear with antialiasing when shrinking."""
    return np.array(Image.fromarray(image).resize((size, size), Image.BILINEAR, reducing_gap=None))


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """bool (H, W) -> bool (size, size): area-weighted resize of the 0/255 mask, then > 127.5."""
    grey = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(grey.resize((size, size), Image.BILINEAR)) > 127.5


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) in [0, 255] -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def mask_to_target(masks: torch.Tensor) -> torch.Tensor:
    """{0, 1} (N, 1, H, W) -> float32 {-1, 1}, the range of the generator's tanh output."""
    return masks.float().mul_(2.0).sub_(1.0)
