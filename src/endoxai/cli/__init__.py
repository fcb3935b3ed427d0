"""The ``endoxai`` command: a thin parser per subcommand, each calling one API function.

Exit codes: 0 success; 1 the command ran but some items failed (each named on stderr; for
``data check``: the dataset has fatal problems); 2 usage or user error (bad path, bad config,
unreadable checkpoint, a dataset that fails the check, a diverged training); 130 interrupted by
SIGINT (Ctrl-C) and 143 by SIGTERM (``train`` first saves a resumable checkpoint).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

from endoxai import __version__
from endoxai.errors import Interrupted, UserError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USER_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130; SIGTERM gives 128 + 15 = 143
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141: the reader of stdout stopped (as a shell says)

# Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` (args -> int).
COMMAND_MODULES = (
    "train", "predict", "evaluate", "explain", "evaluate_explanations", "report", "data", "export",
    "view",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="endoxai",
        description="Explainable segmentation of endoscopy images: pix2pix GAN + LRP.",
    )
    parser.add_argument("--version", action="version", version=f"endoxai {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"endoxai.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _tolerate_odd_names()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        handlers=[handler], force=True)
    if args.quiet and hasattr(args, "no_progress"):
        args.no_progress = True  # -q: only warnings and errors, so no progress bars either
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        # log lines printed while a bar runs go above it instead of through it
        with _sigterm_interrupts(), logging_redirect_tqdm():
            return int(args.func(args) or 0)
    except UserError as err:
        if args.debug:
            raise
        _finish_bars()
        print(f"endoxai {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # whoever read stdout stopped (`endoxai evaluate ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as err:  # Ctrl-C, or Interrupted (SIGINT / SIGTERM)
        if args.debug:
            raise
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        _finish_bars()
        print(f"endoxai {args.command}: {_one_line(err) or 'interrupted'}", file=sys.stderr)
        return 128 + signum


def _finish_bars() -> None:
    """Close the progress bars an error left open, so that its message starts on a line of its
    own instead of after a half-drawn bar."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        with contextlib.suppress(Exception):
            bar.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted like Ctrl-C raises KeyboardInterrupt, so that cleanup runs
    (atomic writes remove their temp file) and the exit code is 143 (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tolerate_odd_names() -> None:
    """File names that are not valid UTF-8 must not crash printing: escape what cannot be shown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")


class _OneLineFormatter(logging.Formatter):
    """The message only, with newlines (e.g. inside a file name) escaped: one event, one line."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage().replace("\r", "\\r").replace("\n", "\\n")


def _one_line(err: BaseException) -> str:
    """Messages are one line (file names with a newline in them are shown escaped)."""
    return str(err).replace("\r", "\\r").replace("\n", "\\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
