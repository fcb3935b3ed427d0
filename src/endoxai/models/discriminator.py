"""The 70x70 PatchGAN discriminator of Table 1 (pix2pix, Isola et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from endoxai.models.generator import init_weights

MULTIPLES = (1, 2, 4, 8)  # of the width, then one logit per patch
FILTERS = (64, 128, 256, 512, 1)  # Table 1 (width 64)
STRIDES = (2, 2, 2, 1, 1)  # Table 1


class Discriminator(nn.Module):
    """Scores (image, mask) pairs patch-wise: input is ``cat([image, mask], dim=1)``.

    Blocks ``block1..block5``: 4x4 conv (padding 1) with the strides above; BatchNorm in blocks
    2-4; LeakyReLU(0.2) after blocks 1-4; block5 returns one logit per patch (no sigmoid: the loss
    is BCE-with-logits). ``width`` scales the channel counts (pix2pix's ``ndf``; 64 = Table 1).
    A 256x256 input gives a 30x30 map, 512x512 gives 62x62.
    """

    def __init__(self, image_channels: int = 3, mask_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        c_in = image_channels + mask_channels
        filters = [width * m for m in MULTIPLES] + [1]
        last = len(filters)
        for i, (c_out, stride) in enumerate(zip(filters, STRIDES), start=1):
            batchnorm = 1 < i < last
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride, padding=1, bias=not batchnorm)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            if i < last:
                layers.append(nn.LeakyReLU(0.2))
            self.add_module(f"block{i}", nn.Sequential(*layers))
            c_in = c_out
        init_weights(self)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, mask], dim=1)
        for block in self.children():
            x = block(x)
        return x
