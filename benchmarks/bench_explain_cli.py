"""What a user waits for: ``endoxai explain IMAGE`` as a whole process, with the bundled model.

Each round runs, as separate processes and in rotating order (``common.interleaved``):

- ``python``: the interpreter alone (``python -c pass``), the floor of any command;
- ``endoxai --version``: start-up, parsing and every command module's imports (torch included);
- ``endoxai explain``: the whole command on one image: start-up, loading and checking the model
  (SHA-256), reading and resizing the image, the LRP pass, the figures and the .npz.

The differences between the rows say where the time goes. The goal for the bundled model at 256²
is under 2 s wall for the whole explain process on a 2-core CPU. ``--explain-threads 1`` adds the explain
row again with ``OMP_NUM_THREADS=1`` (torch's intra-op threads): on a machine where another
process holds a core, two threads wait for each other at every operation. Besides the wall time
each row gives the child's CPU time (user + system), which a shared machine inflates far less.

Example: ``python benchmarks/bench_explain_cli.py --image ../shared/data/kvasir-seg/images/
cju0s690hkp960855tjuaqvv0.jpg --repeats 5`` (default image: the first of kvasir-seg/val.txt, or a
synthetic 256² image when the data folder is absent; default model: the bundled one).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import interleaved, kvasir_seg, load_average, machine, median, script_main, split_ids
from common import table as md_table
from PIL import Image


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", type=Path,
                   help="image to explain (default: the first Kvasir-SEG validation image)")
    p.add_argument("--checkpoint", type=Path,
                   help="model for explain's --checkpoint (default: none, the bundled model)")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: the data folder's)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed rounds first: they fill the OS file cache (default 1)")
    p.add_argument("--explain-threads", type=int, nargs="*", default=[], metavar="N",
                   help="also time explain with OMP_NUM_THREADS=N, one row per N (default: none)")


def default_image(data: Path | None, folder: Path) -> Path:
    kvasir = kvasir_seg(data)
    if kvasir is not None:
        return kvasir / "images" / f"{split_ids(kvasir, 'val', 1)[0]}.jpg"
    path = folder / "synthetic.png"  # the model's size: no resizing cost hidden in the number
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _runner(command: list[str], cpu: list[float], env: dict[str, str] | None = None):
    """Run ``command``; append its CPU seconds (user + system) to ``cpu``."""
    def run() -> None:
        before = _children_cpu()
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=None if env is None else {**os.environ, **env})
        cpu.append(_children_cpu() - before)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): "
                             f"{done.stderr.strip()[-500:]}")
    return run


def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image or default_image(args.data, Path(tmp))
        explain = [sys.executable, "-m", "endoxai", "-q", "explain", "--input", str(image),
                   "--output", str(Path(tmp) / "explained")]
        if args.checkpoint:
            explain += ["--checkpoint", str(args.checkpoint)]
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "endoxai --version": ([sys.executable, "-m", "endoxai", "--version"], None),
            "endoxai explain IMAGE": (explain, None),
        }
        for n in args.explain_threads:
            commands[f"endoxai explain IMAGE, OMP_NUM_THREADS={n}"] = (
                explain, {"OMP_NUM_THREADS": str(n)})
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        load_before = load_average()
        wall, _ = interleaved({k: _runner(c, cpu[k], env) for k, (c, env) in commands.items()},
                              args.repeats, args.warmup)
        load_after = load_average()
        size = Image.open(image).size
    facts = machine()
    rows = [[name, f"{median(wall[name]):.2f}", f"{min(wall[name]):.2f}",
             f"{max(wall[name]):.2f}", f"{median(cpu[name][args.warmup:]):.2f}"]
            for name in commands]
    model = str(args.checkpoint) if args.checkpoint else "the bundled model (endoxai.weights)"
    return "\n".join([
        "## `endoxai explain IMAGE`, whole process",
        "",
        f"- command: `{' '.join(sys.argv)}`",
        f"- CPU: {facts['cpu']}; torch {facts['torch']}; Python {facts['python']}",
        f"- commit: {facts['commit']}; date: {facts['date']}",
        f"- load average before / after: {load_before} / {load_after} (a shared machine slows "
        "every row alike: compare rows, not runs)",
        f"- image: {image.name} ({size[0]}x{size[1]}); model: {model}",
        f"- {args.repeats} timed rounds after {args.warmup} warm-up, rows interleaved",
        "",
        md_table(["process", "median wall s", "min s", "max s", "median CPU s"], rows),
        "",
        "Wall time of each process as a user sees it (start to exit; measured by the parent); "
        "CPU time: the child's user + system seconds (getrusage), all its threads together.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
