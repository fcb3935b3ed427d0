"""Generator and discriminator of the pix2pix GAN (Table 1 of Ahmed & Ali 2021)."""

from endoxai.config import ModelConfig
from endoxai.models.discriminator import Discriminator
from endoxai.models.generator import Generator, GeneratorLogits, check_input_size

__all__ = ["Discriminator", "Generator", "GeneratorLogits", "build_models", "check_input_size"]


def build_models(model_cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """Build (generator, discriminator) from a ``ModelConfig``."""
    g = Generator(model_cfg.in_channels, model_cfg.out_channels, model_cfg.dropout,
                  model_cfg.width)
    d = Discriminator(model_cfg.in_channels, model_cfg.out_channels, model_cfg.width)
    return g, d
