"""What every benchmark script shares: interleaved timing, peak RSS, machine facts, tables, data.

Timing rule: the methods compared in one table run in the same process, in
rounds that interleave them (the order rotates every round), so a busy machine slows all of them
alike; tables give medians over the rounds after the warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# the data folder, as for the tests: $ENDOXAI_DATA, else ../shared/data beside the repository
SHARED_DATA = Path(os.environ.get("ENDOXAI_DATA") or REPO.parent / "shared" / "data")


def interleaved(
    methods: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, label: str = ""
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall seconds, process CPU seconds) per method, ``repeats`` timed rounds after ``warmup``."""
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for round_ in range(warmup + repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            methods[name]()
            if round_ >= warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        print(f"{label}round {round_ + 1}/{warmup + repeats} done", file=sys.stderr)
    return wall, cpu


def median(values: list[float]) -> float:
    return statistics.median(values)


def _rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_rss(fn: Callable[[], object]) -> tuple[float, float]:
    """(peak RSS, rise over the RSS before) in MiB during one call of fn (Linux only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    except OSError:
        return float("nan"), float("nan")
    before = _rss_kib("VmRSS")
    fn()
    peak = _rss_kib("VmHWM")
    return peak / 1024, (peak - before) / 1024


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@functools.cache
def machine() -> dict[str, str]:
    """CPU model, torch version and threads, Python, git commit (+dirty), date.

    Computed once per process, and ``script_main`` computes it before the run: a report names
    the commit and date its run *started* with, even when later commits land during a long run."""
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        pass
    commit = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=REPO, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=REPO, check=True).stdout
        commit += " (+ uncommitted changes)" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        pass
    facts = {
        "cpu": f"{model}, {os.cpu_count()} logical CPUs",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} threads",
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def kvasir_seg(data: Path | None = None) -> Path | None:
    """The Kvasir-SEG folder (``--data``, else kvasir-seg in the data folder), or None if absent."""
    path = Path(data) if data else SHARED_DATA / "kvasir-seg"
    return path if (path / "images").is_dir() else None


def kvasir_split(data: Path | None, split: str, limit: int | None = None):
    """(folder, DatasetIndex, the first ``limit`` ids of ``<split>.txt``) of Kvasir-SEG, or None
    when the dataset is absent (the caller then reports the section as skipped)."""
    from endoxai.data import find_dataset

    folder = kvasir_seg(data)
    if folder is None:
        return None
    return folder, find_dataset(folder), split_ids(folder, split, limit)


def split_ids(folder: Path, split: str, limit: int | None = None) -> list[str]:
    """The first ``limit`` ids of ``<folder>/<split>.txt``, in the file's order, read by endoxai's
    own list reader (blank lines skipped, file names taken by their stem)."""
    from endoxai.data.splits import read_id_file

    return read_id_file(folder / f"{split}.txt")[:limit]


def write_output(report: str, output: Path | None, append: bool = False) -> None:
    print(report)
    if output:
        # an appended report starts after a blank line, so that it does not run into the last
        # table of the one before (markdown would read its first line as a table row)
        gap = "\n" if append and Path(output).is_file() and Path(output).stat().st_size else ""
        with Path(output).open("a" if append else "w", encoding="utf-8") as f:
            f.write(gap + report)


def script_main(
    doc: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], str],
    argv: list[str] | None = None,
) -> int:
    """The ``main`` of a benchmark script: its own options plus ``--threads``, ``--output`` and
    ``--append``; prints the markdown report ``run(args)`` returns and writes it to --output."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch default")
    p.add_argument("--output", type=Path, help="also write the report (markdown) to this file")
    p.add_argument("--append", action="store_true", help="append to --output, not overwrite")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine()  # the facts (commit, date) as the run starts
    write_output(run(args), args.output, args.append)
    return 0
