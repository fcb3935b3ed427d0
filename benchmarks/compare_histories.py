"""Which recipe is ahead at equal training? Training runs compared epoch by epoch.

Reads the ``history.csv`` of ``endoxai train`` (one per run, ``LABEL=PATH`` or just ``PATH``)
and, for one column (``--metric``, default the training-time validation Dice; ``PATH@COLUMN``
reads another one of that file), writes a table of the epochs every run has (optionally only
``--epochs A-B``), each run's mean over those epochs and its best epoch over its whole history.
Then, for the first run against each other one, on how many of the shared epochs the first is
ahead and its smallest and largest lead: the rule by which session 10 promoted a candidate to
``default`` (docs/RESULTS.md §1.5) — ahead at every shared epoch, not only at its best one, since
one run's epochs swing by about 0.1.

Example: ``python benchmarks/compare_histories.py
new=runs/lr1e-3/history.csv default=docs/results/kvasir-seg-dice100-cpu/history.csv``; a weight
average against its own trained weights (``train.ema_decay``): ``average=runs/ema/history.csv
trained=runs/ema/history.csv@val_dice_trained``.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import NamedTuple

from common import machine, script_main, table
from endoxai.errors import UserError
from endoxai.report import history


class Series(NamedTuple):
    """One run's column as given on the command line: ``LABEL=PATH[@COLUMN]``."""

    label: str
    path: Path
    column: str | None = None  # None: --metric

    def __str__(self) -> str:
        return f"{self.label}={self.path}" + (f"@{self.column}" if self.column else "")


def read_history(path: Path, metric: str) -> dict[int, float]:
    """{epoch: the metric} of one ``history.csv`` (rows without a value left out), read by the
    report's reader."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    rows = history.read_history(path)
    for column in ("epoch", metric):
        if rows and column not in rows[0]:
            raise ValueError(f"{path}: no column {column!r} (is it a history.csv of "
                             "`endoxai train`?)")
    return {int(row["epoch"]): row[metric] for row in rows if not math.isnan(row[metric])}


def shared_epochs(runs: dict[str, dict[int, float]], first: int | None = None,
                  last: int | None = None) -> list[int]:
    """The epochs every run has, within [first, last] where given, in order."""
    epochs = set.intersection(*(set(h) for h in runs.values()))
    return sorted(e for e in epochs
                  if (first is None or e >= first) and (last is None or e <= last))


def leads(a: dict[int, float], b: dict[int, float], epochs: list[int]) -> tuple[int, float, float]:
    """(epochs where ``a`` is above ``b``, smallest and largest a - b) over ``epochs``."""
    diffs = [a[e] - b[e] for e in epochs]
    return sum(d > 0 for d in diffs), min(diffs), max(diffs)


def run(args: argparse.Namespace) -> str:
    try:
        runs = {s.label: read_history(s.path, s.column or args.metric) for s in args.history}
    except (UserError, ValueError) as e:
        raise SystemExit(f"compare_histories: {e}") from None
    first, last = args.epochs or (None, None)
    epochs = shared_epochs(runs, first, last)
    if not epochs:
        raise SystemExit("compare_histories: the runs share no epoch"
                         + (f" in {first}-{last}" if args.epochs else ""))
    labels = list(runs)
    per_epoch = [[e, *(f"{runs[k][e]:.3f}" for k in labels)] for e in epochs]
    span = f"{epochs[0]}–{epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
    summary = [[k, f"{statistics.fmean(runs[k][e] for e in epochs):.3f}",
                "{1:.3f} (epoch {0})".format(*max(runs[k].items(), key=lambda item: item[1])),
                len(runs[k])] for k in labels]
    out = ["Command: `python benchmarks/compare_histories.py "
           + " ".join([str(s) for s in args.history] + ["--metric", args.metric]
                      + (["--epochs", f"{first}-{last}"] if args.epochs else [])) + "`", "",
           *[f"- {k}: {v}" for k, v in machine().items()], "",
           f"`{args.metric}`{_other_columns(args.history)} at the {len(epochs)} epochs all runs "
           f"have ({span}):", "",
           table(["epoch", *labels], per_epoch), "",
           table(["run", f"mean over epochs {span}", "best (whole history)", "epochs run"],
                 summary)]
    if len(labels) > 1:
        ahead = []
        for other in labels[1:]:
            n, low, high = leads(runs[labels[0]], runs[other], epochs)
            ahead.append([f"{labels[0]} vs {other}", f"{n} of {len(epochs)}",
                          f"{low:+.3f}", f"{high:+.3f}"])
        out += ["", table(["runs", "epochs ahead", "smallest lead", "largest lead"], ahead)]
    return "\n".join(out) + "\n"


def _other_columns(history: list[Series]) -> str:
    other = [f"{s.label}: `{s.column}`" for s in history if s.column]
    return f" ({', '.join(other)})" if other else ""


def _labelled(text: str) -> Series:
    label, sep, rest = text.rpartition("=")
    path, at, column = rest.rpartition("@")
    if not at or "/" in column:  # no @COLUMN (an @ inside a folder name is part of the path)
        path, column = rest, None
    path = Path(path)
    return Series(label if sep else path.parent.name, path, column)


def _epoch_range(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST, e.g. 1-10; got {text!r}") from None
    if not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"need 1 <= FIRST <= LAST; got {text!r}")
    return a, b


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("history", nargs="+", type=_labelled,
                   help="history.csv files of `endoxai train`, as LABEL=PATH or PATH (the label "
                        "is then the run folder's name), each optionally @COLUMN to read that "
                        "column instead of --metric; the first is compared with each other")
    p.add_argument("--metric", default="val_dice",
                   help="the history column to compare (default val_dice; e.g. fit_dice)")
    p.add_argument("--epochs", type=_epoch_range, help="only the epochs FIRST-LAST, e.g. 1-10")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
