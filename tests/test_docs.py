"""Every `endoxai ...` command line in the README and the guides parses with today's CLI, and
every local link in them (and in docs/results.md) points at a file that exists.

Shell code blocks (```bash / ```sh / ```console / ``` without a language) are read line by line:
`\\` continuations are joined, `NAME=value` assignments earlier in the block are substituted for
`$NAME` / `${NAME}` (an unknown variable stays as its bare name), and the command ends at the
first `|`, `;`, `&&`, `>` or comment. A line runs endoxai when its command word is `endoxai`
(after environment assignments), or `python -m endoxai` / `torchrun ... -m endoxai`. Its
arguments go through `endoxai.cli.build_parser()`; an argparse error fails the test named by
file and line. Nothing is executed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from endoxai.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs" / "guides").glob("*.md"))]


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every shell code block, continuations joined."""
    out: list[tuple[int, str]] = []
    in_block, shell, pending, start = False, False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            in_block, shell = (not in_block), (not in_block and fence.group(1) in SHELL_LANGUAGES)
            pending = ""
            continue
        if not (in_block and shell):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def endoxai_argv(tokens: list[str]) -> list[str] | None:
    """The arguments after the `endoxai` command word, or None when the line runs no endoxai."""
    words = list(tokens)
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)  # OMP_NUM_THREADS=1 endoxai ...
    if not words:
        return None
    if words[0] == "endoxai":
        return words[1:]
    if words[0] in {"python", "python3", "torchrun"} or words[0].endswith("/python"):
        for i in range(len(words) - 1):
            if words[i] == "-m" and words[i + 1] == "endoxai":
                return words[i + 2:]
    return None


def commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every endoxai command line in the document's shell blocks."""
    found = []
    variables: dict[str, str] = {}
    for number, line in shell_lines(path.read_text(encoding="utf-8")):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = []
        for token in lexer:
            if token and set(token) <= set(";&|<>"):
                break  # the command ends at a pipe, a list operator or a redirection
            tokens.append(VARIABLE.sub(lambda m: variables.get(m[1] or m[2], m[1] or m[2]), token))
        if tokens and all(ASSIGNMENT.match(t) for t in tokens):
            for t in tokens:  # DATA=... on its own line: remembered for the lines below
                name, value = t.split("=", 1)
                variables[name] = value
            continue
        argv = endoxai_argv(tokens)
        if argv is not None:
            found.append((number, argv))
    return found


def parse_error(argv: list[str]) -> str | None:
    """None when `endoxai ARGV` parses (or asks for --help / --version), else argparse's message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue() else str(exit_)
    return None


CASES = [
    pytest.param(argv, id=f"{path.relative_to(REPO)}:{number}")
    for path in documents()
    for number, argv in commands(path)
]


@pytest.mark.parametrize("argv", CASES)
def test_documented_command_parses(argv):
    error = parse_error(argv)
    if error:
        pytest.fail(f"endoxai {shlex.join(argv)}\n  {error}")


def test_the_documents_hold_commands_for_every_subcommand():
    """The extraction finds the commands (an empty CASES would pass everything above)."""
    documented = {argv[0] for argv in (c.values[0] for c in CASES) if argv}
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    subcommands = set(action.choices)
    missing = subcommands - documented
    assert not missing, f"commands no README/guide code block shows: {sorted(missing)}"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # [text](target) and ![alt](target)


@pytest.mark.parametrize("path", [*documents(), REPO / "docs" / "results.md"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_local_links_resolve(path):
    targets = [m[1] for m in LINK.finditer(path.read_text(encoding="utf-8"))]
    missing = [t for t in targets if "://" not in t and not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(REPO)} links to missing files: {missing}"


def test_extraction_joins_continuations_substitutes_variables_and_stops_at_pipes(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text `endoxai prose --ignored`\n"
        "```python\nendoxai.load_model()\n```\n"
        "```bash\n"
        "D=../data   # where the data is\n"
        "endoxai evaluate --pred p \\\n"
        "    --truth $D/masks --output ${D}/m.json | head   # a comment\n"
        "OMP_NUM_THREADS=1 endoxai data check $D\n"
        "torchrun --nproc_per_node=2 -m endoxai train --data $D --out r\n"
        "pip install endoxai\n"
        "```\n",
        encoding="utf-8",
    )
    assert commands(doc) == [
        (7, ["evaluate", "--pred", "p", "--truth", "../data/masks", "--output", "../data/m.json"]),
        (9, ["data", "check", "../data"]),
        (10, ["train", "--data", "../data", "--out", "r"]),
    ]
    assert parse_error(["evaluate", "--pred", "p", "--truth", "t"]) is None
    assert "unrecognized arguments: --no-such-flag" in parse_error(
        ["evaluate", "--pred", "p", "--truth", "t", "--no-such-flag"])
