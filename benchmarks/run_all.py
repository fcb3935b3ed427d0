"""The whole benchmark suite in one command: one markdown report of every section's tables.

Sections (each script runs in its own process, one after the other, so that peak RSS is per
section and one section's memory does not weigh on the next):

1. ``bench_forward.py``: generator forward at 512² and 256², fp32 vs bf16 vs ONNX Runtime, × FLOP floor
2. ``bench_masks.py``: bf16 vs fp32 masks on the 120 Kvasir-SEG validation images (needs --checkpoint)
3. ``bench_lrp.py``: LRP (endoxai epsilon-gamma-box fp32 / bf16 and paper) vs Zennit vs a
   layer-by-layer reference
4. ``bench_train.py``: training images/s at 256² and 512², fp32 vs bf16, and the loss curve
5. ``bench_data.py``: decode (first epoch) vs cached epochs; preparing all 1000 pairs
6. ``bench_explain_cli.py``: ``endoxai explain IMAGE`` as a whole process (--checkpoint's model,
   else the bundled one; skipped when neither is there)

The report is printed and, with ``--output``, written to that file; docs/results.md quotes
its tables with the command, commit, CPU and date the report's header gives. ``--quick`` runs
tiny settings (a smoke test of the scripts, numbers meaningless).

Example: ``python benchmarks/run_all.py --checkpoint RUN/best.pt --output runs/benchmarks.md``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine

HERE = Path(__file__).resolve().parent

FULL = {
    "forward": ["--sizes", "512", "256", "--repeats", "7", "--warmup", "2", "--compile"],
    "masks": [],
    "lrp": ["--size", "512", "--batch", "1", "--repeats", "5", "--bf16", "--prepared"],
    "train": ["--sizes", "256", "512", "--steps", "4", "--curve-steps", "30"],
    "data": [],
    "explain_cli": ["--repeats", "5"],
}
QUICK = {
    "forward": ["--sizes", "256", "--repeats", "1", "--warmup", "0"],
    "masks": ["--limit", "4"],
    "lrp": ["--size", "256", "--repeats", "1", "--warmup", "0", "--methods", "epsilon-gamma-box"],
    "train": ["--sizes", "256", "--batch", "2", "--steps", "1", "--warmup", "0",
              "--curve-steps", "3", "--synthetic"],
    "data": ["--sizes", "256", "--repeats", "1", "--limit", "16"],
    "explain_cli": ["--repeats", "1", "--warmup", "0"],
}
TITLES = {
    "forward": "1. Generator forward: fp32 vs bf16 vs ONNX Runtime, and the FLOP floor",
    "masks": "2. bf16 vs fp32 masks on the 120 Kvasir-SEG validation images",
    "lrp": "3. LRP: endoxai vs Zennit vs a layer-by-layer reference",
    "train": "4. Training throughput and the bf16 loss curve",
    "data": "5. Data: decoding vs cached epochs",
    "explain_cli": "6. `endoxai explain IMAGE`, whole process",
}


def section(name: str, extra: list[str], threads: int) -> str:
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *extra]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"section {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path,
                   help="trained checkpoint for sections 2 (skipped without it) and 6 "
                   "(default there: the bundled model)")
    p.add_argument("--sections", nargs="+", choices=list(FULL), default=list(FULL))
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke test")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch default")
    p.add_argument("--output", type=Path, help="also write the report (markdown) to this file")
    args = p.parse_args(argv)
    settings = QUICK if args.quick else FULL
    parts = [f"Command: `python benchmarks/run_all.py {' '.join(sys.argv[1:])}`", ""]
    parts += [f"- {k}: {v}" for k, v in machine().items()]
    for name in args.sections:
        extra = list(settings[name])
        if name == "masks":
            if args.checkpoint is None:
                parts += ["", f"### {TITLES[name]}", "", "Skipped: no --checkpoint given."]
                continue
            extra += ["--checkpoint", str(args.checkpoint)]
        if name == "explain_cli":
            from endoxai.weights import bundled_path

            if args.checkpoint is not None:
                extra += ["--checkpoint", str(args.checkpoint)]
            elif not bundled_path().is_file():
                parts += ["", f"### {TITLES[name]}", "",
                          "Skipped: no --checkpoint given and no bundled model installed."]
                continue
        parts += ["", f"### {TITLES[name]}", "", section(name, extra, args.threads).strip()]
    report = "\n".join(parts) + "\n"
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
