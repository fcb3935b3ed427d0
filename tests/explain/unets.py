"""A small Generator whose deep paths carry signal, as a trained model's do: the stand-in for a
trained U-Net in the skip-flow and sanity-check tests."""

from __future__ import annotations

import torch
from torch import nn

from endoxai.models import Generator

WIDTH = 4  # channels 4..32: the U-Net's wiring at a fraction of the cost


def small_generator(seed: int = 0, dtype: torch.dtype = torch.float64,
                    bias_free: bool = False) -> Generator:
    """A width-4 generator in eval mode with He-scaled random weights (so deep paths carry
    relevance, unlike the N(0, 0.02) initialisation), random BatchNorm scales and variances and,
    unless ``bias_free``, random biases, BatchNorm shifts and running means."""
    torch.manual_seed(seed)
    g = Generator(width=WIDTH)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] * 4
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.0 if bias_free else 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.0 if bias_free else 0.1)
                m.running_mean.normal_(0.0, 0.0 if bias_free else 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return g.to(dtype).eval()
