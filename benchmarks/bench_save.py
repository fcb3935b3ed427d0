"""What writing a checkpoint costs: training's whole state (``last.pt``) against the model part
that ``best.pt`` keeps (``train.checkpoint.MODEL_KEYS``), side by side in one run.

The state is built the way training builds it, for the Table-1 models: both generators of a run
with weight averaging (the average and the trained weights), the discriminator, both Adam
optimisers with their moment buffers, the RNG states and a short history. Each file is written
with training's own ``atomic_save`` (serialize, write to a temporary file, rename) into
``--folder`` (a tmpfs such as /dev/shm measures serialization and copying, a disk adds its own
speed), interleaved, and the files are removed afterwards.

Example: ``python benchmarks/bench_save.py --folder /dev/shm --repeats 3``
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
from common import interleaved, machine, median, script_main, table

from endoxai.config import Config
from endoxai.models import build_models
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, model_part


def training_state(cfg: Config) -> dict:
    """A full training checkpoint of fresh models, with every buffer a real one has."""
    g, d = build_models(cfg.model)
    optimisers = {}
    for name, model in (("opt_g", g), ("opt_d", d)):
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr_g)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # creates the two moment buffers of every parameter
        optimisers[name] = opt.state_dict()
    return {
        "format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "epoch": 1,
        "generator": g.state_dict(), "generator_train": copy.deepcopy(g.state_dict()),
        "ema_updates": 110, "discriminator": d.state_dict(), **optimisers,
        "rng": {"torch": torch.get_rng_state(), "data": torch.Generator().get_state()},
        "best_dice": 0.5, "best_epoch": 1, "history": [{"epoch": 1, "val_dice": 0.5}],
    }


def run(args: argparse.Namespace) -> str:
    state = training_state(Config())
    files = {"last.pt (training state)": state,
             "best.pt (MODEL_KEYS)": model_part(state)}
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        paths = {name: Path(folder) / f"{i}.pt" for i, name in enumerate(files)}
        wall, _ = interleaved({name: (lambda n=name: atomic_save(files[n], paths[n]))
                               for name in files}, args.repeats, args.warmup)
        sizes = {name: paths[name].stat().st_size / 1e6 for name in files}
    first = next(iter(files))
    rows = [[name, f"{sizes[name]:.0f}", f"{median(wall[name]):.2f}",
             f"{min(wall[name]):.2f}–{max(wall[name]):.2f}",
             f"{median(wall[first]) / median(wall[name]):.2f}"] for name in files]
    out = [f"Command: `python benchmarks/bench_save.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += ["", f"Checkpoint writes (`atomic_save`) into {args.folder}, Table-1 models with weight "
            f"averaging; medians of {args.repeats} interleaved rounds after {args.warmup} warm-up:",
            "", table(["file", "MB", "s (median)", "s (range)", "speed-up vs last.pt"], rows)]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the files are written (default: the temporary folder)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
