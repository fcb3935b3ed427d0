"""Decoding images and masks from files or bytes into uint8 / bool arrays, with clear errors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from endoxai.errors import ItemError, UserError

Source = Union[str, Path, bytes]  # a path, or the raw bytes of a file (e.g. an archive member)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_THRESHOLD = 127.5  # MedAI evaluator: grey values above it are foreground
MAX_PIXELS = 100_000_000  # refuse larger images before decoding (decompression-bomb guard)


def _open(source: Source, name: str) -> Image.Image:
    data = source if isinstance(source, bytes) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else source)
            if img.width * img.height > MAX_PIXELS:
                raise ItemError(
                    f"{name}: image claims {img.width}x{img.height} pixels, more than the "
                    f"{MAX_PIXELS:,} allowed (possible decompression bomb)"
                )
            img.load()
    except ItemError:
        raise
    except FileNotFoundError as err:
        raise ItemError(f"{name}: file not found") from err
    except PermissionError as err:
        raise ItemError(f"{name}: permission denied") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise ItemError(f"{name}: cannot decode image ({err})") from err
    return img


def _name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    return "<bytes>" if isinstance(source, bytes) else str(source)


def read_image(source: Source, name: str | None = None) -> np.ndarray:
    """Decode to RGB uint8 (H, W, 3): EXIF orientation applied; grey/RGBA/palette/CMYK converted."""
    name = _name(source, name)
    img = _open(source, name)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose an otherwise fine image
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr / max(arr.max(), 1) * 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_mask(source: Source, name: str | None = None) -> np.ndarray:
    """Decode a mask to bool (H, W): grey value > 127.5 is foreground (MedAI evaluator).

    Colour masks are converted to grey (ITU-R 601 luma, as PIL's "L"). 16-bit masks are scaled to
    8 bits first. Masks whose values are all in {0, 1} are read as 0/1 masks (value > 0.5).
    EXIF orientation is applied so a mask stays aligned with its image.
    """
    name = _name(source, name)
    img = _open(source, name)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.asarray(img, dtype=np.float64)
        if grey.max() > 255:
            grey = grey / 257.0
    else:
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    if grey.size and grey.max() <= 1:
        return grey > 0.5
    return grey > MASK_THRESHOLD


def image_size(source: Source, name: str | None = None) -> tuple[int, int]:
    """(height, width) after EXIF orientation, without decoding pixels."""
    name = _name(source, name)
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    except Exception as err:
        raise ItemError(f"{name}: cannot read image header ({err})") from err
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted; hidden files skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def list_inputs(path: Path) -> list[Path]:
    """The image files to predict on: ``path`` itself if it is an image file, else list_images.

    Raises UserError for a missing path, a file that is not an image, or a folder without images
    (pointing at its images/ sub-folder when it looks like a dataset folder).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    files = list_images(path)
    if not files:
        hint = next((f"; did you mean {path / d}?" for d in ("images", "image", "img")
                     if (path / d).is_dir()), "")
        raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}{hint}")
    return files
