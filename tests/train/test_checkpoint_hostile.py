"""Untrusted checkpoint files: nothing in them runs, every failure is one clear line.

Extends test_checkpoint.py (which covers os.system via the zip format, empty/text/truncated files
and mismatched weights) with other ways to smuggle code and other broken or foreign files.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import zipfile

import pytest
import torch

from endoxai.cli import main
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.models import Generator
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, load_checkpoint, load_generator


class _Exec:
    """Unpickling this runs ``code`` with exec (a different global than os.system)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def _touch(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _legacy_format(path, obj) -> None:
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def _plain_pickle(path, obj) -> None:
    path.write_bytes(pickle.dumps(obj))


def _zip_format(path, obj) -> None:
    torch.save(obj, path)


@pytest.mark.parametrize("writer", [_legacy_format, _plain_pickle, _zip_format])
def test_no_serialisation_format_runs_code(tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    writer(path, {"format": FORMAT, "version": VERSION, "payload": _Exec(_touch(marker))})
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert "\n" not in str(info.value)
    assert "refused" in str(info.value) or "not a readable checkpoint" in str(info.value)


def test_refusal_names_what_the_file_asked_for(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Exec("pass")}, path)
    with pytest.raises(UserError, match=r"refused to load.*weights_only=True\); it asks for exec$"):
        load_checkpoint(path)


def test_a_whole_pickled_model_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # the class would be imported and rebuilt
    with pytest.raises(UserError, match="refused.*torch.nn.modules.linear.Linear"):
        load_checkpoint(path)


def test_cli_refuses_a_malicious_checkpoint_in_one_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    torch.save({"format": FORMAT, "x": _Exec(_touch(marker))}, tmp_path / "evil.pt")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"")
    code = main(["predict", "--checkpoint", str(tmp_path / "evil.pt"), "--input",
                 str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert len(err.strip().splitlines()) == 1 and "refused to load" in err


def _good(tmp_path) -> bytes:
    path = tmp_path / "good.pt"
    g = Generator()
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": g.state_dict()}, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
    return _good(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("cut", [1, 64, 4096, 0.5, -64, -1])
def test_truncated_anywhere_is_a_clear_error(tmp_path, good_bytes, cut):
    end = int(len(good_bytes) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "cut.pt"
    path.write_bytes(good_bytes[:end])
    with pytest.raises(UserError, match="not a readable checkpoint") as info:
        load_generator(path)
    assert "\n" not in str(info.value)


def test_random_bytes_behind_a_zip_signature(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_a_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(path)


def _state(**changes) -> dict:
    state = {"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
             "generator": {"w": torch.zeros(1)}}
    state.update(changes)
    return state


@pytest.mark.parametrize("changes, match", [
    ({"version": "2"}, "version '2' is not a number"),
    ({"version": VERSION + 1}, "newer than supported"),
    ({"format": "something-else"}, "not an endoxai checkpoint"),
])
def test_foreign_or_future_headers(tmp_path, changes, match):
    torch.save(_state(**changes), tmp_path / "c.pt")
    with pytest.raises(UserError, match=match):
        load_checkpoint(tmp_path / "c.pt")


def test_not_a_dict_at_all(tmp_path):
    torch.save([1, 2, 3], tmp_path / "c.pt")
    with pytest.raises(UserError, match="not an endoxai checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize("config, match", [
    ({**Config().to_dict(), "data": {"image_size": 300}}, "multiple of 256"),
    ({**Config().to_dict(), "extra": {}}, "unknown config key"),
    ({**Config().to_dict(), "train": {"epochs": "ten"}}, "train.epochs must be an integer"),
    ("not a table", "must be a table"),
])
def test_invalid_stored_config(tmp_path, config, match):
    torch.save(_state(config=config), tmp_path / "c.pt")
    with pytest.raises(UserError, match="invalid config stored in checkpoint.*" + match):
        load_generator(tmp_path / "c.pt")


@pytest.mark.parametrize("generator", [[1, 2], {"down1.0.weight": torch.zeros(3)}, "weights"])
def test_generator_entry_of_the_wrong_kind_or_shape(tmp_path, generator):
    torch.save(_state(generator=generator), tmp_path / "c.pt")
    with pytest.raises(UserError, match="generator weights do not match") as info:
        load_generator(tmp_path / "c.pt")
    assert "\n" not in str(info.value)


def test_a_folder_or_device_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint file"):
        load_checkpoint(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(UserError, match="not a checkpoint file"):
            load_checkpoint("/dev/null")


def test_bytes_written_by_an_unrelated_program(tmp_path):
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, buf)  # e.g. a Lightning file
    (tmp_path / "c.pt").write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="not an endoxai checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
