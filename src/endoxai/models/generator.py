"""The pix2pix U-Net generator of Table 1 (Ahmed & Ali 2021; Isola et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

# Channel counts in units of the width (pix2pix's ngf); width 64 gives Table 1's
# 64-128-256-512-512-512-512-512 encoder and 512-512-512-512-256-128-64 decoder.
ENCODER_MULTIPLES = (1, 2, 4, 8, 8, 8, 8, 8)
DECODER_MULTIPLES = (8, 8, 8, 8, 4, 2, 1)  # before the 1-channel output block
PAPER_WIDTH = 64  # Table 1
ENCODER_FILTERS = tuple(PAPER_WIDTH * m for m in ENCODER_MULTIPLES)  # Table 1
DECODER_FILTERS = tuple(PAPER_WIDTH * m for m in DECODER_MULTIPLES)  # Table 1
DROPOUT_BLOCKS = 3  # dropout in the first three decoder blocks (pix2pix)
STRIDE_TOTAL = 2 ** len(ENCODER_FILTERS)  # 8 stride-2 stages: sizes must be multiples of 256


def _down(c_in: int, c_out: int, batchnorm: bool) -> nn.Sequential:
    # Bias only where no BatchNorm follows (BN's shift makes a conv bias redundant).
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2))  # never inplace: in-place activations break LRP hooks
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """U-Net: 8 stride-2 4x4 conv blocks down, 8 transposed-conv blocks up, skip concatenations.

    Blocks are named ``down1..down8`` and ``up1..up8``. Encoder block i: Conv -> BN -> LeakyReLU(0.2)
    (no BN in down1 and down8). Decoder block i < 8: ConvT -> BN -> [Dropout] -> ReLU, then its
    output is concatenated with the mirrored encoder output (``[up_i, down_{8-i}]`` on dim 1).
    ``up8`` is a single ConvT to ``out_channels``; ``logits`` returns its output (pre-tanh),
    ``forward`` returns ``tanh(logits)`` in [-1, 1].

    ``width`` scales every channel count (pix2pix's ``ngf``): 64 is the paper's model, which
    ``Generator()`` builds. Inputs: (N, in_channels, H, W), H and W multiples of 256,
    values in [-1, 1].
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, dropout: float = 0.5,
                 width: int = PAPER_WIDTH) -> None:
        super().__init__()
        encoder = [width * m for m in ENCODER_MULTIPLES]
        n = len(encoder)
        c_in = in_channels
        for i, c_out in enumerate(encoder, start=1):
            self.add_module(f"down{i}", _down(c_in, c_out, batchnorm=1 < i < n))
            c_in = c_out
        for i, c_out in enumerate((width * m for m in DECODER_MULTIPLES), start=1):
            skip = encoder[n - 1 - i]
            self.add_module(f"up{i}", _up(c_in, c_out, dropout if i <= DROPOUT_BLOCKS else 0.0))
            c_in = c_out + skip
        self.add_module(
            f"up{n}", nn.Sequential(nn.ConvTranspose2d(c_in, out_channels, 4, stride=2, padding=1))
        )
        self.depth = n
        self.width = width
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pix2pix initialisation: conv weights N(0, 0.02), BN scale N(1, 0.02), biases 0."""
        init_weights(self)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, out_channels, H, W) pre-tanh scores."""
        check_input_size(x)
        skips = []
        for i in range(1, self.depth + 1):
            x = self.get_submodule(f"down{i}")(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds up1 directly
        for i in range(1, self.depth):
            x = torch.cat([self.get_submodule(f"up{i}")(x), skips.pop()], dim=1)
        return self.get_submodule(f"up{self.depth}")(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(x))


def check_input_size(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) batch; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % STRIDE_TOTAL or w % STRIDE_TOTAL or h == 0 or w == 0:
        raise ValueError(
            f"input height and width must be positive multiples of {STRIDE_TOTAL} "
            f"(the generator halves them 8 times); got {h}x{w}"
        )


def init_weights(module: nn.Module) -> None:
    """pix2pix initialisation (Isola et al. 2017): N(0, 0.02) conv weights, N(1, 0.02) BN scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class GeneratorLogits(nn.Module):
    """A generator's pre-tanh ``logits`` as a module's ``forward``, for tools that hook or trace
    ``forward`` only (DistributedDataParallel, the ONNX exporters, Zennit). Shares its parameters
    with ``generator``."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.logits(x)
