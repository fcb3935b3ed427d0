"""The ``endoxai`` command: a thin parser per subcommand, each calling one API function.

Exit codes: 0 success; 1 the command ran but some items failed (each named on stderr);
2 usage or user error (bad path, bad config, unreadable input); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from endoxai import __version__
from endoxai.errors import UserError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` (args -> int).
COMMAND_MODULES = (
    "train", "predict", "evaluate", "explain", "evaluate_explanations", "report", "data",
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
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        if args.debug:
            raise
        print(f"endoxai {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"endoxai {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
