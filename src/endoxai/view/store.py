"""The viewer's images, addressed by short ids: files named on the command line and uploads.

The browser only ever sees ids (``f3``, ``u1``) and display names, never a file-system path, and
nothing it sends is used as one. Files given on the command line are read again when shown, so
that a folder of a thousand images costs a few numbers each in memory; an upload keeps only its
pixels at model resolution (the original bytes are decoded once and dropped).

Uploads are refused, each with a one-line reason shown in the page, when they are larger than
``MAX_UPLOAD_BYTES``, are neither JPEG nor PNG, claim more than ``MAX_UPLOAD_PIXELS`` pixels in
their header (checked before decoding: a decompression bomb is never expanded) or cannot be
decoded.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from endoxai.data.io import image_size, list_images, list_inputs, read_image, read_mask
from endoxai.data.preprocess import resize_image, resize_mask
from endoxai.errors import ItemError, UserError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MiB: far above any endoscopy still
MAX_UPLOAD_PIXELS = 40_000_000  # an 8K frame is 33 M pixels; a decompression bomb claims more
MAX_UPLOADS = 200  # uploads kept per viewer run (about 0.2 MB each at 256²)
UPLOAD_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "MPO": "JPEG"}  # PIL format -> shown name


class UploadRefused(ValueError):
    """An upload the viewer does not accept; the message is shown in the page as it is."""


@dataclass
class StoredImage:
    """One image of the gallery. ``truth_path`` / ``dice`` / ``jaccard`` only with a truth mask;
    ``pixels`` (S, S, 3) uint8 only for uploads (files are read again from ``path``)."""

    id: str
    name: str
    height: int
    width: int
    path: Path | None = None
    truth_path: Path | None = None
    pixels: np.ndarray | None = None
    dice: float | None = None
    jaccard: float | None = None

    def summary(self) -> dict:
        """What the browser may know of it (no paths)."""
        return {"id": self.id, "name": self.name, "height": self.height, "width": self.width,
                "dice": self.dice, "jaccard": self.jaccard,
                "has_truth": self.truth_path is not None, "uploaded": self.path is None}


@dataclass(frozen=True)
class Pixels:
    """An image at model resolution: ``image`` uint8 (S, S, 3), ``truth`` bool (S, S) or None."""

    image: np.ndarray
    truth: np.ndarray | None


class ImageStore:
    """The gallery: thread-safe registry from id to ``StoredImage``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._images: dict[str, StoredImage] = {}
        self._lock = threading.Lock()
        self._uploads = 0

    def add_files(self, inputs: Sequence[str | Path], masks: str | Path | None = None
                  ) -> list[StoredImage]:
        """Register image files (each input a file or a folder); pair each with the mask of the
        same stem in ``masks``. UserError for a missing input or mask folder; a file whose header
        cannot be read is left out with an error line."""
        files: list[Path] = []
        for item in inputs:
            files.extend(list_inputs(Path(item)))
        truths = _masks_by_stem(Path(masks).expanduser()) if masks is not None else {}
        added = []
        for path in files:
            try:
                height, width = image_size(path)
            except ItemError as err:
                logger.error("error: %s; left out of the gallery", err)
                continue
            with self._lock:
                image = StoredImage(f"f{len(self._images) + 1}", path.name, height, width,
                                    path=path, truth_path=truths.get(path.stem))
                self._images[image.id] = image
            added.append(image)
        return added

    def add_upload(self, data: bytes, name: str) -> StoredImage:
        """Decode an uploaded JPEG / PNG; UploadRefused with a one-line reason otherwise."""
        name = _display_name(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadRefused(too_large_message(len(data)))
        if not data:
            raise UploadRefused(f"{name}: empty file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    kind, (width, height) = img.format, img.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadRefused(f"{name}: refused, too many pixels (possible decompression "
                                "bomb)") from None
        except (OSError, ValueError, SyntaxError):
            raise UploadRefused(f"{name}: not a JPEG or PNG image, or the file is corrupt") \
                from None
        if kind not in UPLOAD_FORMATS:
            raise UploadRefused(f"{name}: {kind} files are not accepted; upload a JPEG or PNG")
        if width * height > MAX_UPLOAD_PIXELS:
            raise UploadRefused(f"{name}: {width}x{height} pixels is more than the "
                                f"{MAX_UPLOAD_PIXELS:,} accepted (possible decompression bomb); "
                                "not decoded")
        try:
            rgb = read_image(data, name)
        except ItemError as err:
            raise UploadRefused(str(err)) from None
        pixels = resize_image(rgb, self.size)
        with self._lock:
            if self._uploads >= MAX_UPLOADS:
                raise UploadRefused(f"{name}: this viewer already holds {MAX_UPLOADS} uploads; "
                                    "restart it to upload more")
            self._uploads += 1
            image = StoredImage(f"u{self._uploads}", name, rgb.shape[0], rgb.shape[1],
                                pixels=pixels)
            self._images[image.id] = image
        return image

    def get(self, image_id: str) -> StoredImage:
        """The image with this id; KeyError otherwise (ids come from the browser: never trusted)."""
        with self._lock:
            return self._images[image_id]

    def listing(self) -> list[StoredImage]:
        """All images, worst Dice first; images without a truth mask after them, in given order."""
        with self._lock:
            images = list(self._images.values())
        scored = sorted((i for i in images if i.dice is not None), key=lambda i: i.dice)
        return scored + [i for i in images if i.dice is None]

    def pixels(self, image: StoredImage) -> Pixels:
        """The image (and its truth mask) at model resolution, as the model sees them.

        ItemError if a file given on the command line can no longer be read.
        """
        if image.pixels is not None:
            return Pixels(image.pixels, None)
        rgb = read_image(image.path)
        truth = None
        if image.truth_path is not None:
            truth = resize_mask(_truth_at(read_mask(image.truth_path), rgb.shape[:2]), self.size)
        return Pixels(resize_image(rgb, self.size), truth)

    def truth_original(self, image: StoredImage) -> np.ndarray | None:
        """The truth mask at the image's own size (bool (H, W)), or None."""
        if image.truth_path is None:
            return None
        return _truth_at(read_mask(image.truth_path), (image.height, image.width))


def too_large_message(size: int) -> str:
    return (f"the file is {size / 2**20:.1f} MB; uploads are limited to "
            f"{MAX_UPLOAD_BYTES // 2**20} MB")


def _truth_at(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape != tuple(shape):
        raise ItemError(f"truth mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]}: sizes must match")
    return mask


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"mask folder not found: {folder}")
    return {path.stem: path for path in list_images(folder)}


def _display_name(name: str) -> str:
    """The last part of a browser-given file name, printable and at most 100 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if c.isprintable() else "?" for c in name).strip() or "upload"
    return name[:100]
