"""Decoding images and masks from files or bytes into uint8 / bool arrays, with clear errors."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from endoxai.errors import ItemError, UserError

logger = logging.getLogger(__name__)

Source = Union[str, Path, bytes]  # a path, or the raw bytes of a file (e.g. an archive member)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_THRESHOLD = 127.5  # MedAI evaluator: grey values above it are foreground
MAX_PIXELS = 100_000_000  # refuse larger images before decoding (decompression-bomb guard)
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")  # more than 8 bits per sample


def _open(source: Source, name: str) -> Image.Image:
    """Open and load ``source``; every failure is an ItemError with a one-line reason."""
    data = source if isinstance(source, bytes) else None
    try:
        if (len(data) if data is not None else Path(source).stat().st_size) == 0:
            raise ItemError(f"{name}: cannot decode image: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else source)
            if img.width * img.height > MAX_PIXELS:
                raise ItemError(
                    f"{name}: image claims {img.width}x{img.height} pixels, more than the "
                    f"{MAX_PIXELS:,} allowed (possible decompression bomb); not decoded"
                )
            img.load()
    except ItemError:
        raise
    except FileNotFoundError as err:
        raise ItemError(f"{name}: file not found") from err
    except PermissionError as err:
        raise ItemError(f"{name}: permission denied") from err
    except Image.UnidentifiedImageError as err:
        raise ItemError(f"{name}: cannot decode image: not an image, or its header is corrupt") \
            from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ItemError(f"{name}: refused, possible decompression bomb ({err}); not decoded") \
            from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ItemError(f"{name}: cannot decode image ({err})") from err
    return img


def _name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    return "<bytes>" if isinstance(source, bytes) else str(source)


def read_image(source: Source, name: str | None = None) -> np.ndarray:
    """Decode to RGB uint8 (H, W, 3): EXIF orientation applied; grey/RGBA/palette/CMYK converted.

    16-bit and 32-bit (integer or float) images are scaled so their maximum is 255 (values in
    [0, 1] are taken as fractions of full scale); transparent pixels are composited onto black.
    Any failure is an ItemError naming the file.
    """
    name = _name(source, name)
    img = _oriented(_open(source, name))
    try:
        if img.mode in WIDE_MODES:
            img = Image.fromarray(_to_uint8(np.asarray(img, dtype=np.float64)))
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(background, img)
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, TypeError) as err:  # e.g. a colour mode PIL cannot convert
        raise ItemError(f"{name}: cannot convert {img.mode} image to RGB ({err})") from err


def read_mask_grey(source: Source, name: str | None = None) -> np.ndarray:
    """Decode a mask to float64 grey values (H, W) on its own scale: 0..255 for 8-bit files
    (colour converted with ITU-R 601 luma, as PIL's "L"), 16-bit files scaled to 0..255, 0/1
    masks left as 0/1. EXIF orientation is applied so a mask stays aligned with its image.
    """
    name = _name(source, name)
    img = _oriented(_open(source, name))
    try:
        if img.mode in WIDE_MODES:
            grey = np.nan_to_num(np.asarray(img, dtype=np.float64))
            return grey / 257.0 if grey.max(initial=0) > 255 else grey
        return np.asarray(img.convert("L"), dtype=np.float64)
    except (OSError, ValueError, TypeError) as err:
        raise ItemError(f"{name}: cannot convert {img.mode} mask to grey ({err})") from err


def binarize_mask(grey: np.ndarray) -> np.ndarray:
    """bool (H, W): grey > 127.5 (MedAI evaluator), or > 0.5 when every value is in [0, 1]."""
    if grey.size and grey.max() <= 1:
        return grey > 0.5
    return grey > MASK_THRESHOLD


def read_mask(source: Source, name: str | None = None) -> np.ndarray:
    """Decode a mask to bool (H, W): grey value > 127.5 is foreground (MedAI evaluator).

    Colour masks are converted to grey (ITU-R 601 luma, as PIL's "L"). 16-bit masks are scaled to
    8 bits first. Masks whose values are all in {0, 1} are read as 0/1 masks (value > 0.5).
    EXIF orientation is applied so a mask stays aligned with its image.
    """
    return binarize_mask(read_mask_grey(source, name))


def _oriented(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose an otherwise fine image
        return img


def _to_uint8(values: np.ndarray) -> np.ndarray:
    values = np.clip(np.nan_to_num(values), 0, None)
    peak = values.max(initial=0)
    scale = 255.0 if peak <= 1 else 255.0 / peak
    return np.round(values * scale).astype(np.uint8)


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
    """Image files directly in ``folder`` (sorted; hidden files skipped).

    Other entries (other suffixes, sub-folders, FIFOs, broken links) are skipped with one log
    line that counts them. UserError if the folder cannot be listed.
    """
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError as err:
        raise UserError(f"cannot list folder {folder}: {err.strerror or err}") from err
    images, skipped = [], []
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            images.append(p)
        else:
            skipped.append(p.name)
    if skipped:
        logger.info("%s: skipped %d entr%s that %s not image files (%s), e.g. %s", folder,
                    len(skipped), "y" if len(skipped) == 1 else "ies",
                    "is" if len(skipped) == 1 else "are", ", ".join(IMAGE_SUFFIXES), skipped[0])
    return images


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """The base name of each input's output files: its stem, or its full name with dots turned
    into underscores when two inputs share a stem (``a.jpg`` + ``a.PNG`` -> ``a_jpg``, ``a_PNG``),
    so that no output overwrites another. Stems are compared case-insensitively (macOS, Windows).
    """
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem.casefold()] = counts.get(p.stem.casefold(), 0) + 1
    return {p: p.stem if counts[p.stem.casefold()] == 1 else p.name.replace(".", "_")
            for p in paths}


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
