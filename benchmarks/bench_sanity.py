"""What `evaluate-explanations --sanity` costs: the randomisation sanity checks on N images.

One run of ``endoxai.explain.sanity.evaluate_sanity`` with its default settings (every method
with a map, the 16-stage cascade and the three independent randomisations, IG with 8 steps) on
the first N images with a non-empty prediction, timed as a whole (wall and process CPU), with the
time of each method's attribution passes summed over all randomised models of the same run. The
goal is under 5 minutes for 24 images at 256² on a 2-core CPU.

Images: with ``--run``, the run's ``split.json`` validation ids (held-out training images when
the run was trained with ``data.holdout``); otherwise the validation list of ``--data`` (default:
the data folder's Kvasir-SEG). Only the time is reported, no similarity.

Example: ``python benchmarks/bench_sanity.py --run runs/w16 --n-images 24`` (default model
without ``--run`` / ``--checkpoint``: the bundled one).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from common import kvasir_seg, load_average, machine, script_main
from common import table as md_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, help="a run folder: its best.pt and split.json")
    source.add_argument("--checkpoint", type=Path,
                        help="a model file (default: the bundled model)")
    p.add_argument("--data", type=Path, help="dataset folder (default: the data folder's "
                                             "Kvasir-SEG, or the one in the run's split.json)")
    p.add_argument("--n-images", type=int, default=24, help="images (default 24)")


def run(args: argparse.Namespace) -> str:
    from endoxai.explain import sanity
    from endoxai.explain.faithfulness_files import choose_images
    from endoxai.weights import resolve_model

    if args.run:
        checkpoint, split_file, data = args.run / "best.pt", args.run / "split.json", args.data
    else:
        checkpoint, split_file = resolve_model(args.checkpoint, None), None
        data = args.data or kvasir_seg(None)
        if data is None:
            raise SystemExit("no dataset: give --data or --run")
    chosen = choose_images(checkpoint, data, split_file, args.n_images, progress=False)
    settings = sanity.SanitySettings()
    spent: dict[str, float] = defaultdict(float)
    timed = sanity.relevance_maps

    def timing(model, images, target, method, *rest, **kw):
        t0 = time.perf_counter()
        try:
            return timed(model, images, target, method, *rest, **kw)
        finally:
            spent[method] += time.perf_counter() - t0

    sanity.relevance_maps = timing  # every map of the run below passes through here
    load_before = load_average()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = sanity.evaluate_sanity(chosen.model, chosen.images, chosen.names, settings,
                                        progress=False)
    finally:
        sanity.relevance_maps = timed
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load_after = load_average()
    facts = machine()
    models = 1 + len({sanity.Stage(**s).key for s in result.stages})  # trained + randomised
    n = len(result.names)
    size = "×".join(str(s) for s in result.settings["image_size"])
    rows = [[method, f"{seconds:.1f}", f"{100 * seconds / wall:.0f} %",
             f"{seconds / (models * n):.3f}"] for method, seconds in spent.items()]
    rows.append(["all (the whole check)", f"{wall:.1f}", "100 %", f"{wall / (models * n):.3f}"])
    model = str(args.run or checkpoint)
    goal = "met" if wall < 300 and n >= 24 else "not met" if n >= 24 else "n/a (fewer images)"
    return "\n".join([
        "## Randomisation sanity checks (`evaluate-explanations --sanity`), cost",
        "",
        f"- command: `{' '.join(sys.argv)}`",
        f"- CPU: {facts['cpu']}; torch {facts['torch']}; Python {facts['python']}",
        f"- commit: {facts['commit']}; date: {facts['date']}",
        f"- load average before / after: {load_before} / {load_after}",
        f"- model: {model} (width {getattr(chosen.model, 'width', '?')}); {n} image(s) at {size}; "
        f"{models} models (trained + {models - 1} randomised), {len(settings.methods)} methods, "
        f"IG {settings.ig_steps} steps",
        "",
        md_table(["method", "seconds (all models)", "share of wall", "s per model per image"],
                 rows),
        "",
        f"Whole check: {wall:.1f} s wall ({wall / 60:.1f} min), {cpu:.1f} s process CPU; goal "
        f"(24 images at 256² under 5 min): {goal}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
