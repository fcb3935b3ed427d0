"""endoxai.data.masklike: binary masks (JPEG noise included) pass, photographs and look-alikes do
not; on synthetic images and, when the data folder is there, on Kvasir-SEG's own files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from endoxai.data.io import read_image, read_mask_grey
from endoxai.data.masklike import is_colour, mask_problem


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _discs(seed: int, n: int, size=(300, 400)) -> Image.Image:
    """A black mask with ``n`` white discs of radius 2..30: much edge for JPEG to blur."""
    rng = np.random.default_rng(seed)
    h, w = size
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(n):
        y, x, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 30)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return mask


def _photo(seed: int, size=(240, 320), dark: bool = False) -> Image.Image:
    """Photograph-like: smooth colour shading plus texture, optionally mostly dark."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = np.stack([150 + 80 * np.sin(3 * xx + seed), 90 + 60 * np.cos(4 * yy),
                     70 + 40 * np.sin(5 * (xx + yy))], axis=-1)
    image = base + rng.normal(0, 12, base.shape)
    if dark:
        image *= 0.35
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("quality", [10, 30, 75, 95])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_masks_are_masks(quality, mode):
    for seed, n in ((0, 1), (1, 20), (2, 60)):
        data = _jpeg(_discs(seed, n).convert(mode), quality)
        grey = read_mask_grey(data)
        assert len(np.unique(grey)) > 2 or quality == 95  # JPEG noise is there to be tolerated
        assert mask_problem(grey) is None, (quality, mode, n)


@pytest.mark.parametrize("mask", [
    np.zeros((8, 8)),  # empty
    np.full((8, 8), 255.0),  # full
    np.eye(8),  # a 0/1 mask
    np.where(np.eye(8, dtype=bool), 255.0, 0.0),
    np.where(np.eye(8, dtype=bool), 128.0, 0.0),  # 128 > 127.5: still two levels across it
])
def test_clean_masks_pass(mask):
    assert mask_problem(mask) is None


@pytest.mark.parametrize("quality", [95, 50])
def test_an_empty_or_full_mask_saved_as_jpeg_is_a_mask(quality):
    # One level with JPEG noise around it: an image without the object (or all object) is a
    # valid mask; the noise must not be taken for a second level beside the first.
    for level in (0, 255):
        flat = Image.new("L", (64, 48), level)
        flat.putpixel((5, 5), abs(level - 6))  # a speck for the encoder to spread
        assert mask_problem(read_mask_grey(_jpeg(flat, quality))) is None
    noisy = np.zeros((20, 20))
    noisy[:4, :4] = 3
    assert mask_problem(noisy) is None


@pytest.mark.parametrize("seed, dark", [(0, False), (1, False), (2, True), (3, True)])
def test_photographs_are_not_masks(seed, dark):
    data = _jpeg(_photo(seed, dark=dark), 90)
    reason = mask_problem(read_mask_grey(data))
    # a dark photograph's narrow grey range may look two-valued, but then both levels are dark
    assert reason is not None and ("not two-valued" in reason or dark and "below 127.5" in reason)
    assert is_colour(read_image(data)) or dark  # a dark one's colours are dim


def test_grey_probability_map_is_not_a_mask():
    ramp = np.tile(np.linspace(0, 255, 200), (50, 1))
    assert "not two-valued" in mask_problem(ramp)
    assert not is_colour(np.repeat(ramp[..., None], 3, axis=-1).astype(np.uint8))


def test_two_levels_on_one_side_of_the_threshold():
    # A red-on-black colour mask is 0 and 76 in grey (ITU-R 601): it would read as empty.
    red = np.zeros((40, 40, 3), np.uint8)
    red[10:30, 10:30] = (255, 0, 0)
    buffer = io.BytesIO()
    Image.fromarray(red).save(buffer, format="PNG")
    reason = mask_problem(read_mask_grey(buffer.getvalue()))
    assert reason is not None and "both below 127.5" in reason and "background" in reason
    light = np.where(np.eye(40, dtype=bool), 255.0, 180.0)
    assert "both above 127.5" in mask_problem(light)
    assert is_colour(red) is True and is_colour(np.zeros((4, 4, 3), np.uint8)) is False


def test_real_kvasir_seg_masks_pass_and_photographs_fail(kvasir_seg):
    masks = sorted((kvasir_seg / "masks").glob("*.jpg"))
    images = sorted((kvasir_seg / "images").glob("*.jpg"))
    assert len(masks) == len(images) == 1000
    # every 10th file keeps the test fast; all 1000 of each pass / fail (see the module docstring)
    for path in masks[::10]:
        assert mask_problem(read_mask_grey(path)) is None, path.name
    for path in images[::10]:
        assert mask_problem(read_mask_grey(path)) is not None, path.name
        assert is_colour(read_image(path)), path.name
