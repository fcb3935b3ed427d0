"""endoxai: explainable segmentation of endoscopy images (pix2pix GAN + LRP)."""

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def load_model(model: str = "polyp", checkpoint=None, device: str = "cpu"):
    """The bundled polyp generator (or the model in ``checkpoint``), in eval mode, ready for
    ``endoxai.explain.explain``: see ``endoxai.weights.load_model``. Imported on first use so
    that ``import endoxai`` stays free of torch."""
    from endoxai.weights import load_model as load

    return load(model, checkpoint, device)
