import copy

import pytest
import torch
import torch.nn.functional as F

from endoxai.config import TrainConfig
from endoxai.models import Discriminator, Generator
from endoxai.train.steps import (
    adversarial_loss,
    critic_view,
    discriminator_step,
    generator_step,
    soft_dice_loss,
    train_step,
)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    g, d = Generator(), Discriminator()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    m = (torch.rand(2, 1, 256, 256) > 0.7).float()
    return g, d, opt_g, opt_d, x, m


def _same(a, b):
    # parameters only: BatchNorm running statistics move with every train-mode forward
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_d_step_leaves_g_untouched_and_g_step_leaves_d_untouched(setup):
    g, d, opt_g, opt_d, x, m = setup
    g_before, d_before = copy.deepcopy(g), copy.deepcopy(d)
    logits = g.logits(x)
    discriminator_step(d, opt_d, x, m * 2 - 1, torch.tanh(logits))
    assert _same(g, g_before) and not _same(d, d_before)
    assert all(p.grad is None for p in g.parameters())
    d_after = copy.deepcopy(d)
    generator_step(d, opt_g, x, m, logits, TrainConfig())
    assert _same(d, d_after) and not _same(g, g_before)
    assert all(p.requires_grad for p in d.parameters())


def test_losses_are_the_pix2pix_objective(setup):
    g, d, opt_g, opt_d, x, m = setup
    logits = g.logits(x)
    fake = torch.tanh(logits)
    with torch.no_grad():
        s_real, s_fake = d(x, m * 2 - 1), d(x, fake)
    expected_d = 0.5 * (F.binary_cross_entropy(torch.sigmoid(s_real), torch.ones_like(s_real))
                        + F.binary_cross_entropy(torch.sigmoid(s_fake), torch.zeros_like(s_fake)))
    logs = discriminator_step(d, opt_d, x, m * 2 - 1, fake)
    assert logs["loss_d"] == pytest.approx(expected_d.item(), rel=1e-4)
    with torch.no_grad():
        s = d(x, fake)
    l1 = (fake - (m * 2 - 1)).abs().mean()
    expected_g = F.binary_cross_entropy(torch.sigmoid(s), torch.ones_like(s)) + 100 * l1
    logs = generator_step(d, opt_g, x, m, logits, TrainConfig())
    assert logs["loss_g"] == pytest.approx(expected_g.item(), rel=1e-4)
    assert logs["loss_g_l1"] == pytest.approx(l1.item(), rel=1e-5)


def test_adversarial_loss_is_stable_for_huge_scores():
    assert torch.isfinite(adversarial_loss(torch.tensor([1e4, -1e4]), real=True))


def test_soft_dice():
    masks = torch.zeros(1, 1, 4, 4)
    masks[..., :2, :] = 1
    perfect = (masks * 2 - 1) * 50
    assert soft_dice_loss(perfect, masks).item() == pytest.approx(0.0, abs=1e-3)
    # inverted: no overlap, 8 predicted + 8 true pixels -> dice = (0 + 1) / (16 + 1)
    assert soft_dice_loss(-perfect, masks).item() == pytest.approx(1 - 1 / 17, abs=1e-3)


@pytest.mark.slow
def test_overfits_one_batch():
    torch.manual_seed(0)
    g, d = Generator(), Discriminator()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    m = torch.zeros(2, 1, 256, 256)
    m[..., 64:192, 64:192] = 1
    cfg = TrainConfig(seg_loss="dice")
    first = train_step(g, d, opt_g, opt_d, x, m, cfg)["loss_g_l1"]
    for _ in range(8):
        last = train_step(g, d, opt_g, opt_d, x, m, cfg)["loss_g_l1"]
    assert last < 0.7 * first


def test_critic_view_sign_is_hard_forward_and_straight_through_backward():
    fake = torch.tanh(torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0])).requires_grad_()
    assert critic_view(fake, "tanh") is fake
    shown = critic_view(fake, "sign")
    assert torch.equal(shown, torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0]))
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (grad,) = torch.autograd.grad(shown, fake, upstream)
    assert torch.equal(grad, upstream)


class _RecordingCritic(torch.nn.Module):
    """Scores every mask by a learnable weighted mean; remembers the masks it was shown."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))
        self.seen: list[torch.Tensor] = []

    def forward(self, image, mask):
        self.seen.append(mask.detach().clone())
        return (self.w * mask).mean(dim=(1, 2, 3), keepdim=True)


@pytest.mark.parametrize("kind", ["tanh", "sign"])
def test_train_step_shows_the_critic_its_critic_view(kind):
    torch.manual_seed(0)
    g = torch.nn.Conv2d(3, 1, 3, padding=1)
    g.logits = g.forward
    d = _RecordingCritic()
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), 0.1) for m in (g, d))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    m = (torch.rand(2, 1, 8, 8) > 0.5).float()
    cfg = TrainConfig(l1_weight=0.0, critic_input=kind)  # only the adversarial term trains G
    before, bias = g.weight.detach().clone(), g.bias.detach().clone()
    train_step(g, d, opt_g, opt_d, x, m, cfg)
    real, fake_d, fake_g = d.seen  # D step: real, then generated; G step: generated
    assert torch.equal(real, m * 2 - 1)
    expected = torch.tanh(F.conv2d(x, before, bias, padding=1))
    if kind == "sign":
        expected = torch.where(expected > 0, 1.0, -1.0)
    torch.testing.assert_close(fake_d, expected)
    values = set(fake_g.unique().tolist())
    if kind == "sign":
        assert values <= {-1.0, 1.0}
    else:
        assert len(values) > 2
    assert not torch.equal(g.weight, before)  # the adversarial gradient reached G either way
