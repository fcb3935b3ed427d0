"""A corpus of hostile inputs, generated (nothing binary is committed), for test_hostile_inputs.py.

``corpus`` is a dataset folder ``data/`` (``images/``, ``masks/``, ``train.txt``, ``val.txt``)
mixing good pairs with one entry per kind of hostile file. Each ``Entry`` says what a correct
program does with it: the size the image decodes to (None: unreadable), the words its one-line
error must contain, the problems ``endoxai data check`` must report, and whether predict/explain
ignore it (not an image file). Expected values are written down here from how each file was built,
never computed by endoxai.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

H, W = 48, 64  # size of the ordinary images


@dataclass(frozen=True)
class Entry:
    kind: str  # row of the results table
    image: str | None  # file name in images/ (None: none)
    mask: str | None  # file name in masks/ (None: none)
    size: tuple[int, int] | None = (H, W)  # (h, w) the image decodes to; None: it must fail
    error: str = ""  # words of the one-line error (predict/explain) when size is None
    check: tuple[str, ...] = ()  # problem kinds data check reports for this entry
    ignored: bool = False  # not an image file: predict/explain skip it silently
    subject: str = "image"  # which of its files is the hostile one: "image" or "mask"


@dataclass
class Corpus:
    root: Path
    data: Path
    entries: list[Entry]

    def entry(self, kind: str) -> Entry:
        return next(e for e in self.entries if e.kind == kind)


# ---------------------------------------------------------------- file builders


def _picture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 90, size=(h, w, 3), dtype=np.uint8)
    image[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (220, 120, 100)
    return image


def _disc(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    return m


def encode(image, fmt: str, **kwargs) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _bomb_png() -> bytes:
    """A 300-byte PNG whose header claims 30000 x 30000 RGB pixels (2.7 GB decoded)."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))


def _bad_header_crc_png() -> bytes:
    data = bytearray(encode(_picture(3), "PNG"))
    data[29] ^= 0xFF  # the CRC of IHDR
    return bytes(data)


def _corrupt_pixels_png() -> bytes:
    data = bytearray(encode(_picture(4), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10: start + 40] = b"\xAA" * 30  # inside the zlib stream
    return bytes(data)


def _bad_idat_crc_png() -> bytes:
    """Only the chunk CRC is wrong; zlib's own checksum of the pixel data is intact."""
    data = bytearray(encode(_picture(5), "PNG"))
    tag = data.index(b"IDAT")
    length = struct.unpack(">I", data[tag - 4: tag])[0]
    data[tag + 4 + length] ^= 0xFF
    return bytes(data)


def _exif_rotated_jpeg() -> bytes:
    """Stored W x H = 64 x 48, EXIF orientation 6: shown (and read) as 48 wide, 64 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(_picture(6), "JPEG", exif=exif.tobytes())


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(_picture(7 + i)) for i in range(3)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def _palette_with_transparency() -> bytes:
    img = Image.fromarray(_picture(10)).convert("P")
    return encode(img, "PNG", transparency=0)


def _png16(values: np.ndarray) -> bytes:
    return encode(Image.fromarray(values.astype(np.uint16)), "PNG")


def _float_tiff() -> bytes:
    values = _picture(11)[..., 0].astype(np.float32) / 255.0
    return encode(Image.fromarray(values, mode="F"), "TIFF")


def _red_on_black() -> bytes:
    m = np.zeros((H, W, 3), np.uint8)
    m[_disc() > 0] = (255, 0, 0)  # grey (luma) 76: below the 127.5 threshold
    return encode(m, "PNG")


# ---------------------------------------------------------------- the corpus


def _can_read(path: Path) -> bool:
    """Whether this process can read a chmod-000 file (root can, unless it dropped
    CAP_DAC_OVERRIDE, e.g. ``setpriv --bounding-set=-dac_override,-dac_read_search``)."""
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


def _half(h: int = H, w: int = W) -> bytes:
    m = np.zeros((h, w), np.uint8)
    m[:, : max(1, w // 2)] = 255
    return encode(m, "PNG")


def build_corpus(root: Path) -> Corpus:
    """Write the corpus under ``root/data`` and return it (see the module docstring)."""
    data = root / "data"
    images, masks = data / "images", data / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    entries: list[Entry] = []

    def add(entry: Entry, image: bytes | None = None, mask: bytes | None = None) -> None:
        if entry.image is not None and image is not None:
            (images / entry.image).write_bytes(image)
        if entry.mask is not None:
            (masks / entry.mask).write_bytes(mask if mask is not None else encode(_disc(), "PNG"))
        entries.append(entry)

    def pair(kind: str, name: str, image: bytes, mask: bytes | None = None, **expect) -> None:
        """An image ``name`` in images/ with the mask ``<stem>.png`` in masks/."""
        add(Entry(kind, name, f"{Path(name).stem}.png", **expect), image, mask)

    def jpeg(seed: int) -> bytes:
        return encode(_picture(seed), "JPEG", quality=95)

    for i in range(3):
        pair(f"good pair {i}", f"good{i}.jpg", jpeg(100 + i))

    bad = {"size": None, "check": ("unreadable",)}
    whole = jpeg(1)
    pair("zero-byte file", "zero.jpg", b"", error="empty file (0 bytes)", **bad)
    pair("truncated JPEG", "truncated.jpg", whole[: len(whole) // 2], error="cannot decode",
         **bad)
    pair("PNG with a bad header CRC", "badcrc.png", _bad_header_crc_png(),
         error="not an image, or its header is corrupt", **bad)
    pair("PNG with corrupt pixel data", "corrupt_pixels.png", _corrupt_pixels_png(),
         error="cannot decode", **bad)
    pair("PNG with a bad data-chunk CRC (zlib checksum intact)", "idat_crc.png",
         _bad_idat_crc_png())
    pair("HTML page named .jpg", "html.jpg",
         b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
         error="not an image, or its header is corrupt", **bad)
    pair("text file named .png", "text.png", b"polyp annotations v2\nid,x,y\n",
         error="not an image, or its header is corrupt", **bad)
    pair("header claims 30000x30000 (decompression bomb)", "bomb.png", _bomb_png(),
         error="decompression bomb", **bad)
    pair("empty file with a newline in its name", "new\nline.jpg", b"", error="empty file",
         size=None, check=("unreadable", "split-unlisted"))
    add(Entry("animated GIF named .gif", "animated.gif", None, ignored=True,
              check=("ignored-file",)), _animated("GIF"))
    pair("animated GIF named .png", "gif_as_png.png", _animated("GIF"))
    pair("animated PNG (APNG)", "apng.png", _animated("PNG"))
    pair("grayscale PNG", "grey.png", encode(_picture(12)[..., 0], "PNG"))
    pair("RGBA PNG", "rgba.png",
         encode(np.dstack([_picture(13), np.full((H, W), 128, np.uint8)]), "PNG"))
    pair("palette PNG with transparency", "palette.png", _palette_with_transparency())
    pair("16-bit PNG", "png16.png", _png16(_picture(14)[..., 0].astype(np.uint16) * 257))
    pair("CMYK JPEG", "cmyk.jpg", encode(Image.fromarray(_picture(15)).convert("CMYK"), "JPEG"))
    pair("32-bit float TIFF", "float.tif", _float_tiff())
    pair("bilevel (1-bit) PNG", "bilevel.png",
         encode(Image.fromarray(_picture(18)[..., 0] > 60), "PNG"))
    pair("BMP", "bitmap.bmp", encode(_picture(19), "BMP"))
    pair("EXIF-rotated JPEG (orientation 6)", "rotated.jpg", _exif_rotated_jpeg(),
         encode(_disc(W, H), "PNG"), size=(W, H))
    pair("JPEG with a garbage EXIF block", "bad_exif.jpg",
         encode(_picture(20), "JPEG", exif=b"Exif\x00\x00" + b"\xff" * 40))
    pair("1x1 image", "one_pixel.png", encode(_picture(16, 1, 1), "PNG"),
         encode(np.full((1, 1), 255, np.uint8), "PNG"), size=(1, 1),
         check=("tiny-image", "full-mask"))
    pair("1x2000 strip", "strip.png", encode(_picture(17, 1, 2000), "PNG"), _half(1, 2000),
         size=(1, 2000), check=("tiny-image",))
    pair("upper-case suffix .JPG", "UPPER.JPG", jpeg(21))
    pair("name with spaces", "with space.jpg", jpeg(22))
    pair("unicode name", "café_ü_息肉.jpg", jpeg(23))
    pair("name with a leading dash", "-dash.jpg", jpeg(24))
    if sys.platform.startswith("linux"):  # other systems refuse names that are not UTF-8
        pair("name that is not UTF-8 (Latin-1 bytes)", os.fsdecode(b"latin1_\xe9t\xe9.jpg"),
             jpeg(25))
    (images / "locked.jpg").write_bytes(jpeg(26))
    (images / "locked.jpg").chmod(0)
    pair("unreadable file (chmod 000)", "locked.jpg", None,
         **({} if _can_read(images / "locked.jpg") else {"error": "permission denied", **bad}))
    (images / "folder.jpg").mkdir()
    entries.append(Entry("folder named .jpg", "folder.jpg", None, ignored=True,
                         check=("ignored-file",)))
    (images / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    entries.append(Entry("dangling symlink named .jpg", "dangling.jpg", None, ignored=True,
                         check=("ignored-file",)))
    if hasattr(os, "mkfifo"):
        os.mkfifo(images / "fifo.jpg")  # opening it would block forever
        entries.append(Entry("FIFO named .jpg", "fifo.jpg", None, ignored=True,
                             check=("ignored-file",)))
    add(Entry("hidden file .hidden.jpg", ".hidden.jpg", None, ignored=True), jpeg(27))
    pair("two images with one stem (dup.jpg + dup.png)", "dup.jpg", jpeg(28),
         check=("duplicate-name",))
    (images / "dup.png").write_bytes(encode(_picture(29), "PNG"))
    add(Entry("image without mask", "orphan_image.jpg", None, check=("unpaired",)), jpeg(30))
    add(Entry("mask without image", None, "orphan_mask.png", check=("unpaired",),
              subject="mask"))
    pair("mask/image size mismatch", "mismatch.jpg", jpeg(31), encode(_disc(40, 40), "PNG"),
         check=("size-mismatch",), subject="mask")
    pair("mask with values 0/1", "mask01.jpg", jpeg(32), encode(_disc() // 255, "PNG"),
         subject="mask")
    pair("mask all mid-grey (128)", "midgrey.jpg", jpeg(33),
         encode(np.full((H, W), 128, np.uint8), "PNG"), check=("not-a-mask",), subject="mask")
    pair("empty (black) mask", "black.jpg", jpeg(34), encode(np.zeros((H, W), np.uint8), "PNG"),
         check=("empty-mask",), subject="mask")
    pair("full (white) mask", "white.jpg", jpeg(35),
         encode(np.full((H, W), 255, np.uint8), "PNG"), check=("full-mask",), subject="mask")
    pair("colour mask, red on black", "red.jpg", jpeg(36), _red_on_black(),
         check=("not-a-mask",), subject="mask")
    pair("16-bit mask 0/65535", "mask16.jpg", jpeg(37),
         _png16(_disc().astype(np.uint16) * 257), subject="mask")
    pair("image with the same bytes as another", "copy.jpg", (images / "good0.jpg").read_bytes(),
         check=("duplicate-image",))
    pair("pair in no split list", "unlisted.jpg", jpeg(38), check=("split-unlisted",))
    entries.append(Entry("split list names a missing id", None, None,
                         check=("split-unknown-id",), subject=""))

    listed = sorted({Path(e.image).stem for e in entries
                     if e.image and e.mask and "split-unlisted" not in e.check})
    train = [s for s in listed if s != "good2"] + ["ghost"]
    (data / "train.txt").write_bytes(os.fsencode("\n".join(train) + "\n"))
    (data / "val.txt").write_text("good2\n")
    return Corpus(root, data, entries)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("hostile")
    built = build_corpus(root)
    yield built
    (built.data / "images" / "locked.jpg").chmod(0o644)  # so that pytest can delete it
    shutil.rmtree(root, ignore_errors=True)


FATAL = ("unreadable", "size-mismatch", "duplicate-name", "not-a-mask")  # endoxai.data.check


@pytest.fixture
def warnings_only(tmp_path) -> Corpus:
    """The corpus without the files of entries that have a fatal problem (dup.png removed)."""
    built = build_corpus(tmp_path / "warnings")
    images, masks = built.data / "images", built.data / "masks"
    kept = []
    for entry in built.entries:
        if "duplicate-name" in entry.check:
            (images / "dup.png").unlink()
            entry = replace(entry, check=())
        elif any(k in FATAL for k in entry.check):
            for path in (entry.image and images / entry.image, entry.mask and masks / entry.mask):
                if path:
                    path.unlink()
            continue
        kept.append(entry)
    built.entries = kept
    return built


# ---------------------------------------------------------------- models


class TinyG(nn.Module):
    """Stand-in generator for the one training run that must get going (speed only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(x))


class TinyD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 1, 16, stride=16)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([image, mask], 1))


@pytest.fixture
def tiny_models(monkeypatch):
    import endoxai.train.loop as loop

    monkeypatch.setattr(loop, "build_models", lambda model_cfg: (TinyG(), TinyD()))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A Table-1 generator checkpoint with random weights (predict and explain need no training)."""
    from endoxai.config import Config
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "g.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": Generator().state_dict()}, path)
    return path
