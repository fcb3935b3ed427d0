"""benchmarks/critic_probe.py: the masks it shows the critic and how it scores the critic's
answers, checked on hand-made masks and a stand-in critic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import critic_probe  # noqa: E402


def test_variants_keep_the_true_shape_or_the_generated_one():
    truth = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    logits = torch.tensor([[[[0.5, 2.0], [-3.0, -0.2]]]])
    out = critic_probe.variants(truth, logits)
    signs = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
    assert torch.equal(out["true mask (±1)"], signs)
    softened = [v for k, v in out.items() if k.startswith("true mask, softened k=2 ")]
    assert len(softened) == 1
    torch.testing.assert_close(softened[0], signs * torch.tanh(torch.tensor(2.0)))
    # the true signs with the generated magnitudes
    torch.testing.assert_close(out["true shape, generated values"],
                               signs * torch.tanh(logits).abs())
    torch.testing.assert_close(out["generated (tanh)"], torch.tanh(logits))
    assert torch.equal(out["generated, hardened (sign)"],
                       torch.tensor([[[[1.0, 1.0], [-1.0, -1.0]]]]))
    assert all(v.abs().max() <= 1 for v in out.values())


class _MeanCritic(nn.Module):
    """Patch logits = 4 × the mask's value (one patch per pixel); ignores the image."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return 4 * mask


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_critic_scores_average_every_patch_of_every_image(batch_size):
    images = torch.zeros(5, 3, 2, 2)
    masks = torch.full((5, 1, 2, 2), -1.0)
    masks[0] = 1.0  # image 0: 4 patches called real, all others fake
    mean, share = critic_probe.critic_scores(_MeanCritic(), images, masks, batch_size)
    p_real, p_fake = (torch.sigmoid(torch.tensor(z)).item() for z in (4.0, -4.0))
    assert mean == pytest.approx((4 * p_real + 16 * p_fake) / 20)
    assert share == pytest.approx(4 / 20)


def _shapes(n: int = 8, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images, and masks with a square in each image's left half."""
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    masks = torch.zeros(n, 1, size, size)
    masks[..., 8:24, 2:14] = 1
    return images, masks


def test_a_sign_critic_cannot_tell_apart_masks_of_the_same_shape(monkeypatch):
    images, masks = _shapes()
    logits = 3.0 * (masks * 2 - 1)  # G's masks: the true shape, soft values (tanh 3 = 0.995)
    shown_in_training = []
    real_step = critic_probe.discriminator_step
    monkeypatch.setattr(critic_probe, "discriminator_step", lambda d, opt, x, real, fake:
                        shown_in_training.append(fake) or real_step(d, opt, x, real, fake))
    d = critic_probe.train_critic("sign", images, masks, logits, steps=5, batch_size=4)
    assert len(shown_in_training) == 5
    assert all(set(f.unique().tolist()) == {-1.0, 1.0} for f in shown_in_training)
    shown = critic_probe.critic_view(torch.tanh(logits), "sign")
    assert torch.equal(shown, masks * 2 - 1)
    assert critic_probe.critic_scores(d, images, masks * 2 - 1, 4) == \
        critic_probe.critic_scores(d, images, shown, 4)


def test_a_sign_critic_learns_to_tell_apart_different_shapes():
    images, masks = _shapes()
    moved = torch.roll(masks, shifts=16, dims=-1)  # G's masks: the square in the right half
    logits = 3.0 * (moved * 2 - 1)
    d = critic_probe.train_critic("sign", images, masks, logits, steps=10, batch_size=4)
    real, _ = critic_probe.critic_scores(d, images, masks * 2 - 1, 4)
    fake, _ = critic_probe.critic_scores(d, images, moved * 2 - 1, 4)
    assert real > 0.5 > fake
