"""What does a trained PatchGAN critic look at: the mask's shape, or only how hard its values are?

Late in training the critic wins outright (``loss_d`` below 0.01 in most of the last 30
epochs of the 80-epoch H200 run, docs/RESULTS.md §1.5). Real masks reach D as exactly ±1,
generated ones as ``tanh(logits)``, never exactly ±1 and soft at the edges, so a critic can
tell them apart without looking at any shape. This script feeds the critic of a training
checkpoint (``last.pt``: it holds D) the first ``--n-images`` validation images with:

- ``true mask (±1)``: what D learnt to call real;
- ``true mask, softened k``: ``tanh(k · (2m - 1))``, the true shape with every value at ±tanh(k);
- ``true shape, generated values``: the true mask's signs with the generated mask's magnitudes
  (``sign(2m - 1) · |G(x)|``): the right shape, G's softness;
- ``generated (tanh)``: G(x) as training gives it to D;
- ``generated, hardened``: ``sign(logits)``, G's shape with ±1 values.

Each row: D's mean probability of "real" over all patches and images, and the share of patches
it calls real (probability > 0.5). If the hardened generated masks score like the true ones and
the softened true masks like the generated ones, the critic judges softness, not shape. D runs as
in training (BatchNorm on the batch's own statistics, batches of ``--batch-size`` of one kind);
G runs in eval mode as ``predict`` does.

With ``--train-critic STEPS`` it then asks whether a critic *could* judge the shape: for each
``train.critic_input`` view (``tanh``, and ``sign``: G's masks hardened to ±1 like the real ones),
a fresh PatchGAN is trained for STEPS steps of ``--batch-size`` (training's own
``discriminator_step``, Adam 2e-4, β = (0.5, 0.999)) against the checkpoint's frozen G on the first
``--n-train`` training images, then scored on the validation images above: the true masks against
G's masks as that view shows them. A ``sign`` critic that still separates the two can only be
using the shape, which is the signal ``critic_input = "sign"`` would give G.

Example: ``python benchmarks/critic_probe.py --checkpoint runs/default80/last.pt``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import kvasir_split, machine, script_main, split_ids, table
from endoxai.config import CRITIC_INPUTS
from endoxai.data import load_arrays
from endoxai.data.preprocess import to_model_input
from endoxai.models import Discriminator, build_models
from endoxai.predict import predict_logits_batched
from endoxai.train.checkpoint import config_of, load_checkpoint
from endoxai.train.steps import critic_view, discriminator_step

SOFTNESS = (1.0, 2.0, 3.0, 5.0)


@torch.no_grad()
def critic_scores(d: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor,
                  batch_size: int) -> tuple[float, float]:
    """(mean probability of real, share of patches above 0.5) of ``d`` on (image, mask) pairs."""
    probs = []
    for idx in torch.arange(len(images)).split(batch_size):
        probs.append(torch.sigmoid(d(images[idx], masks[idx]).float()).flatten())
    p = torch.cat(probs)
    return p.mean().item(), (p > 0.5).float().mean().item()


def variants(truth: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The masks of the table, all in [-1, 1]; ``truth`` in {0, 1}."""
    signs, generated = truth * 2 - 1, torch.tanh(logits)
    out = {"true mask (±1)": signs}
    out.update({f"true mask, softened k={k:g} (±{torch.tanh(torch.tensor(k)).item():.3f})":
                torch.tanh(k * signs) for k in SOFTNESS})
    out["true shape, generated values"] = signs * generated.abs()
    out["generated (tanh)"] = generated
    out["generated, hardened (sign)"] = torch.where(logits > 0, 1.0, -1.0)
    return out


def train_critic(view: str, images: torch.Tensor, truth: torch.Tensor, logits: torch.Tensor,
                 steps: int, batch_size: int, seed: int = 0) -> Discriminator:
    """A fresh PatchGAN trained for ``steps`` steps to tell ``truth`` ({0, 1}) from the frozen
    generator's ``logits`` as ``critic_view(tanh(logits), view)`` shows them."""
    torch.manual_seed(seed)
    d = Discriminator(images.shape[1], truth.shape[1])
    opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    fake = critic_view(torch.tanh(logits), view)
    draw = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=draw)
        discriminator_step(d, opt, images[idx], truth[idx] * 2 - 1, fake[idx])
    return d


def fresh_critics(args, data: Path, index, g, size: int, val_images, val_truth, val_logits
                  ) -> list[str]:
    """The report's second part: one fresh critic per view (see the module docstring)."""
    stems = split_ids(data, "train", args.n_train)
    arrays = load_arrays(index, stems, size, progress=False)
    images = to_model_input(arrays.images)
    logits = predict_logits_batched(g, arrays.images, args.batch_size)
    rows = []
    for view in CRITIC_INPUTS:
        d = train_critic(view, images, arrays.masks.float(), logits, args.train_critic,
                         args.batch_size)
        true_mean, true_share = critic_scores(d, val_images, val_truth * 2 - 1, args.batch_size)
        shown = critic_view(torch.tanh(val_logits), view)
        fake_mean, fake_share = critic_scores(d, val_images, shown, args.batch_size)
        rows.append([view, f"{true_mean:.3f}", f"{true_share:.3f}", f"{fake_mean:.3f}",
                     f"{fake_share:.3f}"])
    return ["", f"Fresh critics: {args.train_critic} steps of {args.batch_size} on the first "
            f"{len(stems)} training images against the frozen G, scored on the validation images "
            "above:", "",
            table(["critic_input", "true masks: mean P(real)", "patches called real",
                   "G's masks as shown: mean P(real)", "patches called real"], rows)]


def run(args: argparse.Namespace) -> str:
    found = kvasir_split(args.data, "val", args.n_images)
    if found is None:
        return "critic probe: skipped (Kvasir-SEG not found; pass --data)\n"
    data, index, stems = found
    ckpt = load_checkpoint(args.checkpoint)
    if "discriminator" not in ckpt:
        raise SystemExit(f"{args.checkpoint}: no discriminator (use a training checkpoint)")
    cfg = config_of(ckpt, args.checkpoint)
    g, d = build_models(cfg.model)
    g.load_state_dict(ckpt["generator"])
    d.load_state_dict(ckpt["discriminator"])
    g.eval()
    d.train()  # as in training: BatchNorm on each batch's statistics (running ones not reused)
    arrays = load_arrays(index, stems, cfg.data.image_size, progress=False)
    images = to_model_input(arrays.images)
    logits = predict_logits_batched(g, arrays.images, args.batch_size)
    rows = []
    for name, masks in variants(arrays.masks.float(), logits).items():
        mean, share = critic_scores(d, images, masks, args.batch_size)
        rows.append([name, f"{mean:.3f}", f"{share:.3f}"])
    generated = torch.tanh(logits).abs()
    out = [f"Command: `python benchmarks/critic_probe.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += [f"- checkpoint: {args.checkpoint} (epoch {ckpt.get('epoch', '?')}, "
            f"{cfg.data.image_size}²); the first {len(stems)} validation images of {data}",
            f"- generated masks: mean |G(x)| {generated.mean().item():.3f}, share of pixels with "
            f"|G(x)| < 0.99: {(generated < 0.99).float().mean().item():.3f}", ""]
    out.append(table(["mask given to the critic", "mean P(real)", "patches called real"], rows))
    if args.train_critic:
        out += fresh_critics(args, data, index, g, cfg.data.image_size, images,
                             arrays.masks.float(), logits)
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="a training checkpoint (last.pt)")
    p.add_argument("--data", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--n-images", type=int, default=32, help="first N validation images")
    p.add_argument("--batch-size", type=int, default=8, help="as in training (default 8)")
    p.add_argument("--train-critic", type=int, default=0, metavar="STEPS",
                   help="also train a fresh critic per critic_input view for STEPS steps")
    p.add_argument("--n-train", type=int, default=64,
                   help="first N training images for --train-critic (default 64)")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
