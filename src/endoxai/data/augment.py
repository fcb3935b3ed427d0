"""Batched training augmentation on tensors: one geometric draw shared by image and mask, colour on
the image only, all randomness from an explicit torch.Generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from endoxai.config import AugmentConfig

# ITU-R 601 luma, the weights of PIL's "L" conversion (io.read_mask uses the same).
_LUMA = (0.299, 0.587, 0.114)
_DRAWS = 9  # uniform numbers per sample: hflip, vflip, rot90, zoom, shift x, shift y, b, c, s


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flip, rotate by multiples of 90°, zoom/shift and colour-jitter a batch.

    images: float (N, 3, H, W) in [-1, 1]; masks: float (N, 1, H, W) in {0, 1}. Returns new
    tensors of the same shapes, dtypes and ranges. Per sample, in this order:
    horizontal flip (probability cfg.hflip), vertical flip (cfg.vflip), rotation by k·90° with k
    uniform in 0..3 (cfg.rot90; only 0/180° for non-square inputs), an affine zoom by a factor in
    [1 - scale, 1 + scale] and a shift in [-shift, shift]·size (bilinear; image padded with black,
    mask padded with 0 and re-thresholded at 0.5), then on the image only: additive brightness in
    [-b, b] (of the [0, 1] range), contrast factor in [1 - c, 1 + c] around the image's mean grey,
    saturation factor in [1 - s, 1 + s] around each pixel's grey; clipped to the valid range.

    The same ``_DRAWS`` numbers per sample are always drawn from ``generator`` whatever the
    config, so a given generator state gives the same geometry for image and mask and the same
    result on every run (deterministic on CPU). With ``cfg.enabled`` false nothing is drawn and
    copies are returned.
    """
    n, channels, h, w = images.shape
    if channels != 3 or masks.shape != (n, 1, h, w):
        raise ValueError(f"expected images (N, 3, H, W) and masks (N, 1, H, W); got "
                         f"{tuple(images.shape)} and {tuple(masks.shape)}")
    if not cfg.enabled:
        return images.clone(), masks.clone()
    u = torch.rand((n, _DRAWS), generator=generator, device=generator.device)
    u = u.to(device=images.device, dtype=torch.float32)

    # Image in [0, 1] (so that zero padding is black) stacked with the mask: every geometric
    # operation below is one operation on both.
    x = torch.empty((n, 4, h, w), device=images.device, dtype=torch.float32)
    x[:, :3] = images
    x[:, :3].add_(1.0).mul_(0.5)
    x[:, 3:] = masks

    theta = _geometry(u, cfg, square=h == w)
    if theta is not None:
        affine = cfg.scale > 0 or cfg.shift > 0
        grid = F.affine_grid(theta, [n, 4, h, w], align_corners=False)
        # Flips and quarter turns map pixel centres onto pixel centres: nearest is exact for them.
        x = F.grid_sample(x, grid, mode="bilinear" if affine else "nearest",
                          padding_mode="zeros", align_corners=False)

    image, mask = x[:, :3], x[:, 3:] > 0.5

    if cfg.brightness > 0 or cfg.contrast > 0:
        # Brightness then contrast around the mean grey, fused: (x + b - (m + b)) c + m + b.
        shift = (cfg.brightness * (2.0 * u[:, 6] - 1.0)).view(n, 1, 1, 1)
        factor = (1.0 + cfg.contrast * (2.0 * u[:, 7] - 1.0)).view(n, 1, 1, 1)
        mean = _grey(image).mean(dim=(-2, -1), keepdim=True) if cfg.contrast > 0 else 0.0
        image = image * factor + (mean * (1.0 - factor) + shift)
    if cfg.saturation > 0:
        factor = (1.0 + cfg.saturation * (2.0 * u[:, 8] - 1.0)).view(n, 1, 1, 1)
        image = torch.addcmul(image * factor, _grey(image), 1.0 - factor)  # grey + (x - grey) f
    image = image.clamp(0.0, 1.0).mul_(2.0).sub_(1.0)
    return image.to(images.dtype), mask.to(masks.dtype)


# Quarter turns k = 0..3 as 2x2 maps of normalised (x, y) output coordinates to input coordinates.
_QUARTER_TURNS = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, -1.0], [1.0, 0.0]],
                               [[-1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]]])


def _geometry(u: torch.Tensor, cfg: AugmentConfig, square: bool) -> torch.Tensor | None:
    """(N, 2, 3) affine_grid matrices for flip -> quarter turn -> zoom/shift, or None if the
    draws leave every sample unchanged."""
    n = u.shape[0]
    flip_x = torch.where(u[:, 0] < cfg.hflip, -1.0, 1.0)
    flip_y = torch.where(u[:, 1] < cfg.vflip, -1.0, 1.0)
    quarter = (u[:, 2] * 4).long().clamp_(max=3) if cfg.rot90 else torch.zeros_like(u[:, 2]).long()
    if not square:  # a quarter turn would stretch a non-square image: 0 or 180 degrees only
        quarter = (quarter // 2) * 2
    affine = cfg.scale > 0 or cfg.shift > 0
    if not affine and (flip_x > 0).all() and (flip_y > 0).all() and (quarter == 0).all():
        return None
    # Sampling composes backwards: out(p) = flipped(R A p + R t) with R = F Q.
    turn = _QUARTER_TURNS.to(u.device)[quarter]
    flip = torch.diag_embed(torch.stack([flip_x, flip_y], dim=1))
    rotate = flip @ turn
    theta = torch.zeros((n, 2, 3), device=u.device)
    theta[:, :, :2] = rotate
    if affine:
        zoom = 1.0 + cfg.scale * (2.0 * u[:, 3] - 1.0)
        # affine_grid's coordinates span [-1, 1], i.e. 2 units per image size.
        shift = 2.0 * cfg.shift * (2.0 * u[:, 4:6] - 1.0)
        theta[:, :, :2] = rotate / zoom.view(n, 1, 1)
        theta[:, :, 2] = (rotate @ shift.unsqueeze(-1)).squeeze(-1)
    return theta


def _grey(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma."""
    r, g, b = _LUMA
    return image[:, 0:1] * r + image[:, 1:2] * g + image[:, 2:3] * b
