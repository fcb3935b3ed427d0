"""benchmarks/common.py: a report's machine facts are those its run started with; split lists."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import common  # noqa: E402


def test_script_main_takes_the_machine_facts_before_the_run(tmp_path, monkeypatch):
    common.machine.cache_clear()
    monkeypatch.setattr(common.datetime, "datetime", _Clock)
    _Clock.now_value = "start"
    seen = {}

    def run(args):
        seen["cached"] = common.machine.cache_info().currsize
        _Clock.now_value = "later"  # e.g. an hour of training; commits may land meanwhile
        return "report: " + common.machine()["date"] + "\n"

    assert common.script_main("doc", lambda p: None, run, ["--output", str(tmp_path / "r.md")]) == 0
    assert seen["cached"] == 1
    assert (tmp_path / "r.md").read_text() == "report: start\n"
    common.machine.cache_clear()


class _Clock:
    now_value = ""

    @classmethod
    def now(cls):
        return cls

    @classmethod
    def isoformat(cls, timespec):
        return cls.now_value


def test_split_ids_keep_the_file_order_and_read_lists_like_endoxai(tmp_path):
    (tmp_path / "val.txt").write_text("c\n\na.jpg\nb\n", encoding="utf-8")
    assert common.split_ids(tmp_path, "val") == ["c", "a", "b"]  # blank skipped, stem of a.jpg
    assert common.split_ids(tmp_path, "val", 2) == ["c", "a"]


def test_appended_reports_are_separated_by_a_blank_line(tmp_path, capsys):
    out = tmp_path / "r.md"
    common.write_output("| a |\n", out, append=True)  # nothing to separate from yet
    common.write_output("| b |\n", out, append=True)
    assert out.read_text() == "| a |\n\n| b |\n"
    common.write_output("c\n", out)  # overwriting starts afresh
    assert out.read_text() == "c\n"
    assert capsys.readouterr().out.count("| a |") == 1
