"""``endoxai train``: fit the pix2pix GAN on a dataset folder or archive."""

from __future__ import annotations

import argparse

from endoxai.config import PRECISIONS, load_config, recipe_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the GAN (writes last.pt, best.pt, history.csv, TensorBoard logs)",
        description="Train the pix2pix GAN on a Kvasir-SEG / Kvasir-Instrument / images+masks folder "
        "or official archive. Validation Dice is computed every epoch; best.pt keeps the best epoch."
        " Data-parallel on N processes: torchrun --nproc_per_node=N -m endoxai train ... "
        "(--batch-size is then the global batch, split evenly over the processes).",
    )
    p.add_argument("--data", required=True, help="dataset folder or archive (.zip / .tar.gz)")
    p.add_argument("--out", required=True, help="run folder to create (or to continue with --resume)")
    p.add_argument("--config", default=None,
                   help=f"recipe name ({', '.join(recipe_names())}) or a .toml file (default: default)")
    p.add_argument("--image-size", type=int, help="model input size, a multiple of 256")
    p.add_argument("--epochs", type=int, help="number of epochs (with --resume: extend the run)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate of both G and D")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fp32, bf16 autocast, or auto (bf16 where the hardware supports it natively)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N; under torchrun cuda means "
                   "cuda:LOCAL_RANK")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.pt (its stored config is used)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N epochs of this call; continue later with --resume")
    p.add_argument("--save-every", type=int, metavar="N",
                   help="write last.pt every N epochs (default 1; also after the last epoch and "
                   "on SIGINT/SIGTERM; best.pt on every new best): for GPUs whose epochs take "
                   "seconds; a crash or kill -9 can then lose up to N - 1 epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.errors import UserError
    from endoxai.train.distributed import is_main_process
    from endoxai.train.loop import fit, resume_config

    # How often to save is no part of the recipe: unlike the recipe options it may change on resume.
    data: dict = {}
    train: dict = {"save_every": args.save_every}
    if args.resume:
        overrides = [n for n in ("config", "image_size", "batch_size", "lr", "seed", "precision")
                     if getattr(args, n) is not None]
        if overrides:
            raise UserError(f"--resume uses the run's stored config; drop --{overrides[0].replace('_', '-')}")
        cfg = resume_config(args.out, args.epochs)
    else:
        cfg = load_config(args.config)
        data["image_size"] = args.image_size
        train.update(epochs=args.epochs, batch_size=args.batch_size, lr_g=args.lr, lr_d=args.lr,
                     seed=args.seed, precision=args.precision)
    try:
        cfg = cfg.override(data=data, train=train)
    except ValueError as err:
        raise UserError(f"invalid option: {err}") from err
    result = fit(cfg, args.data, args.out, resume=args.resume, device=args.device,
                 progress=not args.no_progress, stop_after=args.stop_after)
    if is_main_process():  # under torchrun every process returns the same result
        print(f"trained {result.epochs_done} epochs; best validation Dice "
              f"{result.best_dice:.4f} (epoch {result.best_epoch}); "
              f"checkpoints in {result.run_dir}")
    return 0
