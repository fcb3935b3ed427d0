"""Shared model builders for the LRP tests (not a test module)."""

from __future__ import annotations

import torch
from torch import nn

from endoxai.models import Generator


def bias_free_generator(seed: int = 0, dtype: torch.dtype = torch.float64,
                        width: int = 64) -> Generator:
    """Generator of ``width`` (64: Table 1), eval mode, every bias, BN shift and running mean 0;
    BN scales (some negative) and running variances random; conv weights scaled so activations
    stay O(1)."""
    torch.manual_seed(seed)
    g = Generator(width=width)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = (
                    m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] * 16 // 4
                )
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5).mul_(
                    torch.where(torch.rand_like(m.weight) < 0.2, -1.0, 1.0)
                )
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.uniform_(0.5, 2.0)
    return g.to(dtype).eval()


def random_generator(
    seed: int = 0, dtype: torch.dtype = torch.float64, identity_bn: bool = False,
    width: int = 64,
) -> Generator:
    """Generator of ``width`` (64: Table 1) with random weights, biases and BN statistics (or
    identity BatchNorms)."""
    g = bias_free_generator(seed, dtype, width)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.normal_(0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                if identity_bn:
                    # running_var = 1 - eps makes BN exactly the identity
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0 - m.eps)
                else:
                    m.bias.normal_(0.0, 0.1)
                    m.running_mean.normal_(0.0, 0.1)
    return g


def random_images(
    n: int = 1, size: int = 256, seed: int = 1, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen, dtype=dtype) * 2 - 1
