"""The pix2pix objective as two small steps: one discriminator update, one generator update.

D minimises ``0.5 * [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]`` (pix2pix halves D's objective).
G minimises ``BCE(D(x, G(x)), 1) + l1_weight * |G(x) - y|_1 [+ seg_weight * seg(logits, y)]``
where ``y`` is the mask in {-1, 1} and ``G(x) = tanh(logits)``. All losses use the stable
``binary_cross_entropy_with_logits`` and are computed in float32 even under bf16 autocast.

D sees ``G(x)`` itself (``train.critic_input = "tanh"``, pix2pix) or, with ``"sign"``, the hard
mask ``sign(G(x))`` in {-1, 1} like the real ones, with tanh's gradient passed straight through
to G: a trained critic told real from generated masks mostly by their soft values, not their
shape (docs/results.md), and a ±1 mask leaves it only the shape to judge.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from endoxai.config import TrainConfig


def adversarial_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE-with-logits of PatchGAN scores against an all-real or all-fake label."""
    scores = scores.float()
    label = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.binary_cross_entropy_with_logits(scores, label)


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) against {0, 1} masks, per image then averaged.

    ``eps`` (Laplace smoothing) keeps images with an empty mask finite and differentiable.
    """
    probs = torch.sigmoid(logits.float()).flatten(1)
    masks = masks.float().flatten(1)
    inter = (probs * masks).sum(1)
    dice = (2 * inter + eps) / (probs.sum(1) + masks.sum(1) + eps)
    return (1 - dice).mean()


def segmentation_loss(kind: str, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The optional extra term on the generator's logits: ``dice``, ``bce`` or ``dice+bce``."""
    terms = []
    if "dice" in kind:
        terms.append(soft_dice_loss(logits, masks))
    if "bce" in kind:
        terms.append(F.binary_cross_entropy_with_logits(logits.float(), masks.float()))
    return sum(terms)


def critic_view(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """What D is shown of ``fake`` = tanh(logits): ``fake`` itself (``tanh``), or (``sign``) its
    signs ±1 in the forward pass with the gradient of ``fake`` in the backward pass
    (straight-through)."""
    if kind == "tanh":
        return fake
    hard = torch.where(fake > 0, 1.0, -1.0).to(fake.dtype)
    return hard + (fake - fake.detach())  # exactly ±1 forward; d/d fake = 1 backward


def pixel_losses(logits: torch.Tensor, masks: torch.Tensor, cfg: TrainConfig,
                 fake: torch.Tensor | None = None) -> dict[str, tuple[float, torch.Tensor]]:
    """G's pixel terms as ``name: (weight, unweighted loss)``: ``l1`` (|G(x) - y|, ``y`` the {0, 1}
    ``masks`` mapped to {-1, 1}) and, unless ``seg_loss`` is none, ``seg``. ``fake``: G(x) =
    tanh(logits) when the caller already has it (one tanh node, so gradients sum as before)."""
    fake = torch.tanh(logits.float()) if fake is None else fake
    terms = {"l1": (cfg.l1_weight, F.l1_loss(fake, masks * 2 - 1))}
    if cfg.seg_loss != "none":
        terms["seg"] = (cfg.seg_weight, segmentation_loss(cfg.seg_loss, logits, masks))
    return terms


def discriminator_step(
    d: nn.Module,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    target: torch.Tensor,
    fake: torch.Tensor,
    autocast: AbstractContextManager = nullcontext(),
) -> dict[str, float]:
    """One D update on real ``(images, target)`` vs ``(images, fake)``; ``fake`` is detached here."""
    with autocast:
        loss_real = adversarial_loss(d(images, target), real=True)
        loss_fake = adversarial_loss(d(images, fake.detach()), real=False)
    loss = 0.5 * (loss_real + loss_fake)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return {"loss_d": loss.item(), "loss_d_real": loss_real.item(), "loss_d_fake": loss_fake.item()}


def generator_step(
    d: nn.Module,
    opt_g: torch.optim.Optimizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    logits: torch.Tensor,
    cfg: TrainConfig,
    autocast: AbstractContextManager = nullcontext(),
) -> dict[str, float]:
    """One G update from the already computed ``logits``; D's parameters get no gradient."""
    fake = torch.tanh(logits.float())
    d.requires_grad_(False)
    try:
        with autocast:
            scores = d(images, critic_view(fake, cfg.critic_input))
        loss_adv = adversarial_loss(scores, real=True)
    finally:
        d.requires_grad_(True)
    loss, logs = loss_adv, {"loss_g_adv": loss_adv.item()}
    for name, (weight, term) in pixel_losses(logits, masks, cfg, fake).items():
        loss = loss + weight * term
        logs[f"loss_g_{name}"] = term.item()
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    logs["loss_g"] = loss.item()
    return logs


def train_step(
    g: nn.Module,
    d: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    cfg: TrainConfig,
    autocast: AbstractContextManager = nullcontext(),
) -> dict[str, float]:
    """Generate once, update D on it (detached), then update G. ``masks`` are {0, 1} floats."""
    with autocast:
        logits = g.logits(images)
    fake = torch.tanh(logits.float())
    logs = discriminator_step(d, opt_d, images, masks * 2 - 1,
                              critic_view(fake, cfg.critic_input), autocast)
    logs.update(generator_step(d, opt_g, images, masks, logits, cfg, autocast))
    return logs
