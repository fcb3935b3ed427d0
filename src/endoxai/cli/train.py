"""``endoxai train``: fit the pix2pix GAN on a dataset folder or archive."""

from __future__ import annotations

import argparse
import re
import shutil
import textwrap
from importlib import resources
from pathlib import Path

from endoxai.config import PRECISIONS, load_config, recipe_names


DESCRIPTION = """\
Train the pix2pix GAN on a Kvasir-SEG / Kvasir-Instrument / images+masks folder or official
archive. Validation Dice is computed every epoch; best.pt keeps the best epoch. Continue a run
with: endoxai train --resume --out RUN (its config and dataset are stored in RUN).
Data-parallel on N processes: torchrun --nproc_per_node=N -m endoxai train ... (--batch-size is
then the global batch, split evenly over the processes).
"""
WIDTH = 100  # columns of the recipe list
_DURATION = re.compile(r"\b\d[\d.]*\s*(?:s|min|h)\b")  # "84 min", "5.5 h"


def recipes_help() -> str:
    """The shipped recipes, each with what its file says: epochs, input size and width from its
    settings, and the sentence of its header comment that gives the time on a CPU."""
    lines = ["recipes (--config NAME), read from their files:"]
    for name in recipe_names():
        cfg = load_config(name)
        text = (f"{cfg.train.epochs} epochs at {cfg.data.image_size}x{cfg.data.image_size}, "
                f"width {cfg.model.width}. {_cpu_sentence(name)}")
        lines += textwrap.wrap(text, WIDTH, initial_indent=f"  {name:<9} ",
                               subsequent_indent=" " * 12)
    lines.append("Times on other machines and what each recipe reached: docs/guides/training.md")
    return "\n".join(lines)


def _cpu_sentence(name: str) -> str:
    """The first sentence of the recipe file's header comment that gives a time on a CPU."""
    header = []
    text = (resources.files("endoxai") / "recipes" / f"{name}.toml").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    sentences = re.split(r"(?<=[.;])\s+(?=[A-Z(`]|on |On )", " ".join(header))
    found = next((s.strip() for s in sentences if "CPU" in s and _DURATION.search(s)), "")
    if not found:
        return "Time on a CPU: not stated in the recipe file."
    found = found[0].upper() + found[1:]
    return found if found.endswith(".") else found.rstrip(";") + "."


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the GAN (writes last.pt, best.pt, history.csv, TensorBoard logs)",
        description=DESCRIPTION + "\n" + recipes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", help="dataset folder or archive (.zip / .tar.gz); with --resume only "
                   "to point at a dataset that has moved (default: the one in RUN/split.json)")
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
    from endoxai.train.loop import fit
    from endoxai.train.resume import resume_config

    # How often to save is no part of the recipe: unlike the recipe options it may change on resume.
    data: dict = {}
    train: dict = {"save_every": args.save_every}
    if args.resume:
        overrides = [n for n in ("config", "image_size", "batch_size", "lr", "seed", "precision")
                     if getattr(args, n) is not None]
        if overrides:
            raise UserError(f"--resume uses the run's stored config; drop --{overrides[0].replace('_', '-')}")
        cfg = resume_config(args.out, args.epochs)
        dataset = args.data if args.data is not None else _recorded_dataset(Path(args.out))
    else:
        if args.data is None:
            raise UserError("--data is required: the dataset folder or archive to train on "
                            "(only --resume finds it in the run folder)")
        dataset = args.data
        cfg = load_config(args.config)
        data["image_size"] = args.image_size
        train.update(epochs=args.epochs, batch_size=args.batch_size, lr_g=args.lr, lr_d=args.lr,
                     seed=args.seed, precision=args.precision)
    try:
        cfg = cfg.override(data=data, train=train)
    except ValueError as err:
        raise UserError(f"invalid option: {err}") from err
    run_dir = Path(args.out)
    fresh = not run_dir.exists()
    try:
        result = fit(cfg, dataset, run_dir, resume=args.resume, device=args.device,
                     progress=not (args.no_progress or args.quiet), stop_after=args.stop_after)
    except BaseException:
        if fresh and is_main_process():
            _remove_unfinished(run_dir)
        raise
    if is_main_process():  # under torchrun every process returns the same result
        print(f"trained {result.epochs_done} epochs; best validation Dice "
              f"{result.best_dice:.4f} (epoch {result.best_epoch}); "
              f"checkpoints in {result.run_dir}")
    return 0


def _remove_unfinished(run_dir: Path) -> None:
    """Remove the run folder a failed first call created, unless it holds a checkpoint: what is
    left (split.json, config.toml, logs) would only get in the way of the next try, e.g. a
    split.json of the wrong dataset."""
    if run_dir.is_dir() and not any(run_dir.glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)


def _recorded_dataset(run_dir: Path) -> Path:
    """The dataset a run trained on, from its split.json (UserError saying to pass --data)."""
    from endoxai.data.run_split import dataset_from_split
    from endoxai.data.splits import SPLIT_FILE
    from endoxai.errors import UserError

    split_file = run_dir / SPLIT_FILE
    if not split_file.is_file():
        raise UserError(f"{split_file} not found, so the run's dataset is unknown: pass --data")
    return dataset_from_split(split_file)
