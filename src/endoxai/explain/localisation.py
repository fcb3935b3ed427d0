"""Localisation of a relevance map against the ground-truth mask: relevance mass and pointing game.

Both score the positive part of a pixel map at model resolution: *relevance mass accuracy*
(Arras et al. 2022, CLEVR-XAI) is the share of the positive relevance that lies inside the mask;
the *pointing game* (Zhang et al. 2018, no tolerance margin) asks whether the pixel of maximal
relevance lies inside the mask. Undefined (NaN) for a map without positive relevance.
"""

from __future__ import annotations

import math

import torch


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
