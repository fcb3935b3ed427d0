"""A model whose every output reads one known region of the input: the dependency each
attribution method must find, and the oracle the perturbation curves are checked against."""

from __future__ import annotations

import torch
from torch import nn

SIZE, PATCH = 64, 8  # an 8 x 8 grid of patches
REGION = (2, 5)  # the planted region: patch rows 2..3, patch columns 5..6 (four patches)
REGION_PATCHES = {r * 8 + c for r in (2, 3) for c in (5, 6)}


class Planted(nn.Module):
    """Every output logit depends on the input inside one region only (the input is multiplied
    by a 0/1 region mask); positive weights and a positive input there make every contribution
    positive, and the output bias keeps every logit > 0, so the whole output is the target."""

    def __init__(self, region: torch.Tensor, bias: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("region", region[None, None].double())
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=gen, dtype=torch.float64)
                                  * 0.9 + 0.1)
            self.conv1.bias.zero_()
            self.conv2.bias.fill_(bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x * self.region)))


def region_mask() -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    r, c = REGION
    mask[r * PATCH:(r + 2) * PATCH, c * PATCH:(c + 2) * PATCH] = True
    return mask


def planted_image(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 2 - 1
    inside = torch.rand(1, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 0.8 + 0.2
    return torch.where(region_mask(), inside, x)


def planted_model_and_image() -> tuple[Planted, torch.Tensor]:
    return Planted(region_mask()).eval(), planted_image()
