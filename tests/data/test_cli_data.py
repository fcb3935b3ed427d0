"""`endoxai data info|download` through the subcommand's own parser."""

import argparse
import hashlib

import pytest

from endoxai.cli import data as data_cli
from endoxai.errors import UserError


def run(argv):
    parser = argparse.ArgumentParser(prog="endoxai")
    parser.add_argument("-q", "--quiet", action="store_true")
    data_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_prints_layout_pairs_unpaired_and_split(tmp_path, synth, capsys):
    files = {k: v for k, v in synth.pair_files(10, "kvasir-seg").items() if not k.endswith(".txt")}
    files["masks/stray.jpg"] = files["masks/id000.jpg"]
    synth.write_files(tmp_path, files)
    assert run(["data", "info", str(tmp_path), "--val-fraction", "0.3", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "layout:    kvasir-seg" in out
    assert "pairs:     10" in out
    assert "unpaired:  1" in out and any(line.endswith("stray.jpg") for line in out)
    assert "split:     seeded (val_fraction 0.3, seed 1): 7 train / 3 val" in out


def test_info_on_official_archive(tmp_path, synth, capsys):
    archive = tmp_path / "kvasir-instrument.tar.gz"
    archive.write_bytes(synth.tar_bytes(synth.instrument_members(5)))
    assert run(["data", "info", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "layout:    kvasir-instrument" in out
    assert "official (train.txt, test.txt): 4 train / 1 val" in out


def test_info_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        run(["data", "info", str(tmp_path / "missing")])
    with pytest.raises(SystemExit):  # argparse: fraction out of range
        run(["data", "info", str(tmp_path), "--val-fraction", "1.5"])


def test_download_prints_path_and_sha256(tmp_path, synth, capsys, monkeypatch):
    # The network part is covered in test_download.py; here a file:// URL feeds the CLI.
    data = synth.zip_bytes(synth.instrument_members(2))
    source = tmp_path / "kvasir-instrument.zip"
    source.write_bytes(data)
    dest = tmp_path / "dest"
    assert run(["-q", "data", "download", "kvasir-instrument", "--dest", str(dest),
                "--url", source.as_uri()]) == 0
    out = capsys.readouterr().out
    assert str(dest / "kvasir-instrument.zip") in out
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in out
