"""load_arrays: mask thresholds, EXIF orientation, bad files skipped and reported."""

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from endoxai.data import find_dataset, load_arrays

S = 32


def _jpeg_with_orientation(array: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_noisy_jpeg_mask_and_binary_png_mask_are_thresholded(tmp_path, synth):
    yy, xx = np.mgrid[:S, :S]
    pattern = ((yy - 15) ** 2 + (xx - 13) ** 2 < 81) | ((yy < 6) & (xx > 25))
    noisy = synth.encode(pattern.astype(np.uint8) * 255, "JPEG", quality=75)
    grey = np.asarray(Image.open(io.BytesIO(noisy)))
    assert ((grey > 0) & (grey < 255)).any()  # the test needs real compression noise
    synth.write_files(tmp_path, {
        "images/noisy.jpg": synth.encode(synth.image_array(0), "JPEG"),
        "images/binary.jpg": synth.encode(synth.image_array(1), "JPEG"),
        "masks/noisy.jpg": noisy,
        "masks/binary.png": synth.encode(pattern.astype(np.uint8), "PNG"),  # values 0 and 1
    })
    arrays = load_arrays(find_dataset(tmp_path), ["noisy", "binary"], S, progress=False)
    assert arrays.masks.dtype == torch.uint8 and arrays.masks.shape == (2, 1, S, S)
    for k in range(2):
        np.testing.assert_array_equal(arrays.masks[k, 0].numpy(), pattern.astype(np.uint8))


def test_exif_rotated_image_is_read_upright_and_pairs_with_upright_mask(tmp_path, synth):
    stored = np.zeros((S, 2 * S, 3), dtype=np.uint8)  # 64 wide, 32 high as stored
    stored[:, :S] = (255, 0, 0)  # left half red
    stored[:, S:] = (0, 0, 255)  # right half blue
    # Orientation 6: display = stored turned 90° clockwise, so the left half ends up on top.
    upright_mask = np.zeros((2 * S, S), dtype=np.uint8)
    upright_mask[:S] = 255
    synth.write_files(tmp_path, {
        "images/rot.jpg": _jpeg_with_orientation(stored, 6),
        "masks/rot.png": synth.encode(upright_mask, "PNG"),
    })
    arrays = load_arrays(find_dataset(tmp_path), ["rot"], S, progress=False)
    assert arrays.failures == []
    image = arrays.images[0].float()
    top = image[:, 2 : S // 2 - 2].mean(dim=(1, 2))
    bottom = image[:, S // 2 + 2 : -2].mean(dim=(1, 2))
    assert top[0] > 200 and top[2] < 50  # red on top
    assert bottom[2] > 200 and bottom[0] < 50  # blue below
    assert arrays.masks[0, 0, : S // 2].all() and not arrays.masks[0, 0, S // 2 :].any()


def test_unreadable_pairs_are_skipped_reported_and_logged(tmp_path, synth, caplog):
    files = synth.pair_files(4, "kvasir-seg")
    files["images/id001.jpg"] = b"definitely not a jpeg"
    files["masks/id002.jpg"] = synth.mask_bytes("JPEG", size=2 * S)  # size differs from image
    synth.write_files(tmp_path, files)
    index = find_dataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        arrays = load_arrays(index, ["id003", "id001", "id002", "id000"], S, progress=False)
    assert arrays.stems == ["id003", "id000"]
    assert arrays.images.shape == (2, 3, S, S) and arrays.masks.shape == (2, 1, S, S)
    assert len(arrays.failures) == 2
    assert "id001.jpg" in arrays.failures[0] and "cannot decode" in arrays.failures[0]
    assert "id002.jpg" in arrays.failures[1] and "64x64" in arrays.failures[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("id001.jpg" in w for w in warnings) and any("id002.jpg" in w for w in warnings)
    assert all("\n" not in w for w in warnings)
    # The good pairs hold their own pixels (not shifted by the skipped ones).
    np.testing.assert_allclose(arrays.images[1].float().mean(dim=(1, 2)).numpy(),
                               synth.colour_of(0), atol=3)


def test_images_are_resized_to_the_model_size(tmp_path, synth):
    synth.write_files(tmp_path, synth.pair_files(2, "kvasir-seg"))
    arrays = load_arrays(find_dataset(tmp_path), ["id000", "id001"], 16, progress=False)
    assert arrays.images.shape == (2, 3, 16, 16) and arrays.images.dtype == torch.uint8
    expected = np.zeros((16, 16), dtype=np.uint8)
    expected[:, :8] = 1
    np.testing.assert_array_equal(arrays.masks[0, 0].numpy(), expected)


def test_shuffle_masks_gives_every_image_another_images_mask():
    from endoxai.data import Arrays, shuffle_masks
    from endoxai.errors import UserError

    n = 7
    masks = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    arrays = Arrays(torch.zeros(n, 3, 2, 2, dtype=torch.uint8), masks, [f"s{i}" for i in range(n)])
    for seed in range(20):
        out = shuffle_masks(arrays, seed)
        owner = out.masks[:, 0, 0, 0].tolist()  # whose mask each image now has
        assert sorted(owner) == list(range(n)) and all(o != i for i, o in enumerate(owner))
        # one cycle through all of them: following the owners visits every image
        seen, i = set(), 0
        while i not in seen:
            seen.add(i)
            i = owner[i]
        assert len(seen) == n
        assert out.images is arrays.images and out.stems == arrays.stems
    assert torch.equal(shuffle_masks(arrays, 1).masks, shuffle_masks(arrays, 1).masks)
    assert not torch.equal(shuffle_masks(arrays, 1).masks, shuffle_masks(arrays, 2).masks)
    with pytest.raises(UserError, match="two"):
        shuffle_masks(Arrays(arrays.images[:1], masks[:1], ["s0"]), 0)
