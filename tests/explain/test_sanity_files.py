"""Sanity-check files and `endoxai evaluate-explanations --sanity` on a width-8 generator."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from endoxai.cli import main
from endoxai.errors import UserError
from endoxai.explain.sanity_files import format_sanity_table, read_sanity


@pytest.fixture
def tiny_run(tmp_path, pair_folder):
    from endoxai.config import Config, ModelConfig
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION

    torch.manual_seed(0)
    run = tmp_path / "tiny"
    run.mkdir()
    generator = Generator(width=8)
    with torch.no_grad():
        generator.up8[0].bias.fill_(1.0)  # every pixel predicted: nothing is skipped
    torch.save({"format": FORMAT, "version": VERSION,
                "config": Config(model=ModelConfig(width=8)).to_dict(),
                "generator": generator.state_dict()}, run / "best.pt")
    (run / "split.json").write_text(json.dumps({
        "dataset": str(pair_folder), "train": ["case0", "case1", "case2", "case3"],
        "val": ["case4", "case5"]}))
    return run


def test_cli_sanity_only(tiny_run, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "checks"
    rc = main(["evaluate-explanations", "--run", str(tiny_run), "--output", str(out),
               "--n-images", "2", "--methods", "lrp:epsilon-gamma-box,gradient,random",
               "--sanity-only", "--no-progress", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert not (out / "faithfulness.json").exists()  # --sanity-only: no region perturbation
    data = read_sanity(out)
    assert data["names"] == ["case4", "case5"]
    assert data["settings"]["methods"] == ["lrp:epsilon-gamma-box", "gradient"]  # no random
    assert data["settings"]["ig_steps"] == 8
    assert [s["name"] for s in data["stages"]][:2] == ["up8", "up7"] and len(data["stages"]) == 19
    stats = data["summary"]["decoder"]["gradient"]["spearman"]
    values = data["similarity"]["decoder"]["gradient"]["spearman"]
    assert stats["n"] == 2 and stats["mean"] == pytest.approx(sum(values) / 2)
    with (out / "sanity_per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 19 * 2 * 2
    assert float(rows[0]["spearman"]) == pytest.approx(
        data["similarity"][rows[0]["stage"]][rows[0]["method"]]["spearman"][0], rel=1e-5)
    assert (out / "sanity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = captured.out.splitlines()
    assert table[0].startswith("Randomisation sanity check on 2 image(s)")
    assert "ρ encoder only" in table[1] and "ρ all to down1" in table[1]
    row = next(line for line in table if line.startswith("gradient "))
    assert f"{stats['mean']:.2f} [{stats['low']:.2f}, {stats['high']:.2f}]" in row
    assert format_sanity_table(data).splitlines()[2:] == table[2:4]


def test_cli_sanity_after_the_perturbation(tiny_run, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "both"
    rc = main(["-q", "evaluate-explanations", "--run", str(tiny_run), "--output", str(out),
               "--n-images", "1", "--steps", "2", "--methods", "gradient", "--ig-steps", "3",
               "--sanity", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "faithfulness.json").is_file() and (out / "sanity.json").is_file()
    assert "AOPC MoRF" in captured.out and "Randomisation sanity check" in captured.out
    assert read_sanity(out)["settings"]["ig_steps"] == 3  # an explicit --ig-steps counts for both


def test_cli_data_random_adds_the_data_stage(tiny_run, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "data"
    args = ["evaluate-explanations", "--run", str(tiny_run), "--output", str(out), "--n-images",
            "1", "--methods", "gradient", "--device", "cpu", "--no-progress",
            "--data-random", str(tiny_run / "best.pt")]
    assert main(args) == 2  # without --sanity
    assert "add --sanity" in capsys.readouterr().err
    assert main(args + ["--sanity-only"]) == 0
    data = read_sanity(out)
    assert data["stages"][-1] == {"name": "data", "kind": "data", "blocks": [],
                                  "skips_only": False}
    assert data["settings"]["data_random"] == str(tiny_run / "best.pt")
    # the run compared with itself: nothing changed
    assert data["similarity"]["data"]["gradient"]["spearman"] == pytest.approx([1.0])
    assert "data" in capsys.readouterr().out.splitlines()[1]  # a column of the printed table
    # a run folder stands for its best.pt, as --checkpoint does; a missing path is one line
    folder = args[:-1] + [str(tiny_run)]
    assert main(folder + ["--sanity-only", "--output", str(tmp_path / "folder")]) == 0
    assert read_sanity(tmp_path / "folder")["similarity"]["data"]["gradient"]["spearman"] == \
        pytest.approx([1.0])
    capsys.readouterr()
    assert main(args[:-1] + [str(tmp_path / "nowhere.pt"), "--sanity-only"]) == 2
    assert "not found" in capsys.readouterr().err


def test_read_sanity_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_sanity(tmp_path)
    (tmp_path / "sanity.json").write_text("{}")
    with pytest.raises(UserError, match="not a sanity.json"):
        read_sanity(tmp_path)
