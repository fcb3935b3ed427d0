"""endoxai: explainable segmentation of endoscopy images (pix2pix GAN + LRP)."""

__version__ = "0.1.0"
