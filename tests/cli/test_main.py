"""endoxai.cli.main: an error or a log line never lands on a progress bar's line; -q hides bars."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from tqdm import tqdm

import endoxai.cli.evaluate
from endoxai.cli import main
from endoxai.errors import UserError


def _command_with_an_open_bar(raise_error: BaseException | None, log: bool = False):
    def run(args):
        bar = tqdm(total=10, desc="work", file=sys.stderr)  # as a loop's bar when the body raises
        bar.update(3)
        if log:
            logging.getLogger("endoxai.somewhere").warning("skipped: a.jpg cannot be read")
            bar.update(1)
        if raise_error is not None:
            raise raise_error
        bar.close()
        return 0

    return run


@pytest.mark.parametrize("error, code, message", [
    (UserError("disk full"), 2, "endoxai evaluate: error: disk full"),
    (KeyboardInterrupt(), 130, "endoxai evaluate: interrupted"),
])
def test_an_error_starts_on_its_own_line_after_an_open_bar(monkeypatch, capsys, error, code,
                                                           message):
    monkeypatch.setattr(endoxai.cli.evaluate, "_run", _command_with_an_open_bar(error))
    assert main(["evaluate", "--pred", "p", "--truth", "t"]) == code
    err = capsys.readouterr().err
    assert message + "\n" in err
    assert err.split(message)[0].endswith("\n")  # the bar's line was finished first


def test_a_log_line_goes_above_a_running_bar(monkeypatch, capsys):
    monkeypatch.setattr(endoxai.cli.evaluate, "_run", _command_with_an_open_bar(None, log=True))
    assert main(["evaluate", "--pred", "p", "--truth", "t"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.split("\n") if "skipped: a.jpg" in x)
    # what a terminal shows of the line (after the last carriage return) is the message alone,
    # not the message appended to the bar's text
    assert line.split("\r")[-1] == "skipped: a.jpg cannot be read"


def test_quiet_turns_progress_off_for_commands_with_no_progress(monkeypatch):
    import endoxai.cli.predict

    seen = {}

    def run(args):
        seen["no_progress"] = args.no_progress
        return 0

    monkeypatch.setattr(endoxai.cli.predict, "run", run)
    assert main(["-q", "predict", "--input", "x", "--output", "y"]) == 0
    assert seen["no_progress"] is True
    assert main(["predict", "--input", "x", "--output", "y"]) == 0
    assert seen["no_progress"] is False


HEAVY = ("torch", "matplotlib")  # about 1.5 s of imports together on a 2-core CPU


def test_version_and_every_help_start_without_torch_or_matplotlib():
    # A fresh interpreter: this test process has long imported both.
    code = """
import contextlib, io, sys
from endoxai.cli import build_parser, main
sub = next(a for a in build_parser()._actions if a.dest == "command")
for argv in [["--version"]] + [[name, "--help"] for name in sub.choices] + [["data", "check",
        "--help"]]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
print(len(sub.choices), " ".join(m for m in %r if m in sys.modules))
""" % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    commands, _, heavy = done.stdout.strip().partition(" ")
    assert int(commands) >= 9  # every command's parser was built and asked for its help
    assert heavy == "", f"imported while parsing: {heavy}"
