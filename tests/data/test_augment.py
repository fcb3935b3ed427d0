"""augment: image and mask move together, colour touches the image only, seeded and reproducible."""

import dataclasses

import pytest
import torch

from endoxai.config import AugmentConfig
from endoxai.data import augment

S = 16
OFF = AugmentConfig(enabled=True, hflip=0.0, vflip=0.0, rot90=False, scale=0.0, shift=0.0,
                    brightness=0.0, contrast=0.0, saturation=0.0)


def marker_batch(n: int, r: int, c: int, block: int = 1):
    """Dark images with a bright square at (r, c) in the red channel and the same in the mask."""
    images = torch.full((n, 3, S, S), -1.0)
    masks = torch.zeros((n, 1, S, S))
    images[:, 0, r : r + block, c : c + block] = 1.0
    masks[:, 0, r : r + block, c : c + block] = 1.0
    return images, masks


def positions(x: torch.Tensor) -> list[tuple[int, int]]:
    """(row, col) of the maximum of each (1, S, S) plane."""
    flat = x.reshape(x.shape[0], -1).argmax(dim=1)
    return [(int(i) // S, int(i) % S) for i in flat]


def run(cfg, images, masks, seed=0):
    return augment(images, masks, cfg, torch.Generator().manual_seed(seed))


def test_horizontal_and_vertical_flips_move_image_and_mask_together():
    images, masks = marker_batch(3, r=2, c=5)
    out_i, out_m = run(dataclasses.replace(OFF, hflip=1.0), images, masks)
    assert positions(out_i[:, :1]) == positions(out_m) == [(2, S - 1 - 5)] * 3
    out_i, out_m = run(dataclasses.replace(OFF, vflip=1.0), images, masks)
    assert positions(out_i[:, :1]) == positions(out_m) == [(S - 1 - 2, 5)] * 3
    out_i, out_m = run(dataclasses.replace(OFF, hflip=1.0, vflip=1.0), images, masks)
    assert positions(out_i[:, :1]) == positions(out_m) == [(S - 1 - 2, S - 1 - 5)] * 3


def test_rot90_moves_image_and_mask_together_to_the_four_rotations():
    r, c = 2, 5
    quarter_turns = {(r, c), (c, S - 1 - r), (S - 1 - r, S - 1 - c), (S - 1 - c, r)}
    images, masks = marker_batch(32, r, c)
    out_i, out_m = run(dataclasses.replace(OFF, rot90=True), images, masks, seed=1)
    got_i, got_m = positions(out_i[:, :1]), positions(out_m)
    assert got_i == got_m
    assert set(got_i) == quarter_turns  # 32 draws reach all four angles
    assert out_m.sum(dim=(1, 2, 3)).eq(1).all()  # exact: the marker is moved, not interpolated


def test_flips_rotation_and_affine_keep_image_and_mask_aligned():
    cfg = dataclasses.replace(OFF, hflip=0.5, vflip=0.5, rot90=True, scale=0.2, shift=0.15)
    images, masks = marker_batch(16, r=5, c=6, block=4)
    out_i, out_m = run(cfg, images, masks, seed=2)
    grid = torch.stack(torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")).float()
    moved = 0
    for k in range(16):
        weight_i = (out_i[k, 0] + 1) / 2  # marker brightness in [0, 1]
        weight_m = out_m[k, 0]
        assert weight_m.sum() > 0, "marker left the image; draws too large for this test"
        centre_i = (grid * weight_i).sum(dim=(1, 2)) / weight_i.sum()
        centre_m = (grid * weight_m).sum(dim=(1, 2)) / weight_m.sum()
        assert torch.allclose(centre_i, centre_m, atol=0.75)
        moved += int(not torch.allclose(centre_m, torch.tensor([6.5, 7.5]), atol=0.5))
    assert moved >= 8  # the geometry did change most samples


def test_colour_jitter_changes_the_image_only():
    images = torch.rand((8, 3, S, S)) * 1.2 - 0.6
    masks = (torch.rand((8, 1, S, S)) > 0.5).float()
    geometric = dataclasses.replace(AugmentConfig(), brightness=0.0, contrast=0.0, saturation=0.0)
    full_i, full_m = run(AugmentConfig(), images, masks, seed=5)
    geo_i, geo_m = run(geometric, images, masks, seed=5)
    assert torch.equal(full_m, geo_m)  # the same geometric draw with or without colour
    assert not torch.allclose(full_i, geo_i, atol=1e-3)


def test_brightness_is_a_uniform_shift_within_its_range():
    images = torch.zeros((6, 3, S, S))  # mid grey: no clipping
    images[:, :, :, : S // 2] = 0.2
    masks = torch.zeros((6, 1, S, S))
    out, out_m = run(dataclasses.replace(OFF, brightness=0.2), images, masks, seed=3)
    delta = out - images
    per_image = delta.mean(dim=(1, 2, 3))
    assert torch.allclose(delta, per_image.view(-1, 1, 1, 1).expand_as(delta), atol=1e-6)
    assert per_image.abs().max() <= 0.4 + 1e-6  # 0.2 of the [0, 1] range is 0.4 in [-1, 1]
    assert per_image.std() > 0  # drawn per image
    assert torch.equal(out_m, masks)


def test_saturation_and_contrast_leave_a_flat_grey_image_unchanged():
    images = torch.full((4, 3, S, S), 0.1)
    masks = torch.zeros((4, 1, S, S))
    out, _ = run(dataclasses.replace(OFF, contrast=0.5, saturation=0.5), images, masks)
    assert torch.allclose(out, images, atol=1e-5)


def test_same_seed_same_result_other_seed_other_result():
    images = torch.rand((4, 3, 32, 32)) * 2 - 1
    masks = (torch.rand((4, 1, 32, 32)) > 0.7).float()
    a = run(AugmentConfig(), images, masks, seed=11)
    b = run(AugmentConfig(), images, masks, seed=11)
    c = run(AugmentConfig(), images, masks, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_output_ranges_shapes_and_inputs_untouched():
    images = torch.rand((5, 3, 32, 32)) * 2 - 1
    masks = (torch.rand((5, 1, 32, 32)) > 0.5).float()
    before = images.clone(), masks.clone()
    out_i, out_m = run(AugmentConfig(), images, masks)
    assert out_i.shape == images.shape and out_m.shape == masks.shape
    assert out_i.dtype == images.dtype and out_m.dtype == masks.dtype
    assert out_i.min() >= -1 and out_i.max() <= 1
    assert set(out_m.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(images, before[0]) and torch.equal(masks, before[1])


def test_disabled_returns_copies_and_draws_nothing():
    images, masks = marker_batch(2, 1, 1)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    out_i, out_m = augment(images, masks, dataclasses.replace(AugmentConfig(), enabled=False),
                           generator)
    assert torch.equal(out_i, images) and out_i is not images and out_m is not masks
    assert torch.equal(generator.get_state(), state)


def test_non_square_batches_rotate_by_180_only():
    images = torch.full((16, 3, 8, 12), -1.0)
    images[:, 0, 1, 2] = 1.0
    masks = torch.zeros((16, 1, 8, 12))
    masks[:, 0, 1, 2] = 1.0
    out_i, out_m = run(dataclasses.replace(OFF, rot90=True), images, masks, seed=4)
    assert out_i.shape == images.shape
    where = {tuple((out_m[k, 0] == 1).nonzero()[0].tolist()) for k in range(16)}
    assert where == {(1, 2), (6, 9)}


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="expected images"):
        run(AugmentConfig(), torch.zeros((2, 3, 8, 8)), torch.zeros((2, 3, 8, 8)))
