"""The report's pictures: PNG files in ``img/`` beside the page, linked by relative paths."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes
from endoxai.viz.canvas import Canvas
from endoxai.viz.figures import figure_png

IMAGE_DIR = "img"
FIGURE_DPI = 100


class Pictures:
    """Writes a section's pictures into ``output_dir/img``; each call returns the path the page
    links to (relative to the page)."""

    def __init__(self, output_dir: Path) -> None:
        self.folder = output_dir / IMAGE_DIR

    def make_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create {self.folder}: {err.strerror or err}") from err

    def array(self, name: str, rgb: np.ndarray) -> str:
        """An (H, W, 3) uint8 image as ``name``.png."""
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG", optimize=False)
        return self._write(name, buffer.getvalue())

    def figure(self, name: str, fig: Figure | Canvas) -> str:
        """A matplotlib figure, or a Pillow one (``endoxai.viz.canvas``), as ``name``.png."""
        return self._write(name, figure_png(fig, FIGURE_DPI))

    def _write(self, name: str, data: bytes) -> str:
        atomic_write_bytes(self.folder / f"{name}.png", data)
        return f"{IMAGE_DIR}/{name}.png"
