import os

import pytest
import torch

from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.models import Generator
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save, load_checkpoint, load_generator


def _ckpt(cfg: Config, g: Generator) -> dict:
    return {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "generator": g.state_dict()}


def test_round_trip_rebuilds_generator_from_config(tmp_path):
    torch.manual_seed(1)
    cfg = Config().override(model={"dropout": 0.3})
    g = Generator(dropout=0.3)
    atomic_save(_ckpt(cfg, g), tmp_path / "c.pt")
    g2, cfg2 = load_generator(tmp_path / "c.pt")
    assert cfg2 == cfg and not g2.training
    for (k, a), (_, b) in zip(g.state_dict().items(), g2.state_dict().items()):
        assert torch.equal(a, b), k


def test_atomic_save_leaves_no_temp_files_and_replaces(tmp_path):
    atomic_save({"a": torch.zeros(2)}, tmp_path / "x.pt")
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert os.listdir(tmp_path) == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.ones(2))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": _RunsCode()}, path)
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "not a readable checkpoint"),
        (b"hello, I am text", "not a readable checkpoint"),
    ],
)
def test_foreign_files(tmp_path, content, match):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        load_checkpoint(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save(_ckpt(Config(), Generator()), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_not_an_endoxai_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="not an endoxai checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        load_checkpoint("/nonexistent/c.pt")


def test_the_width_is_recorded_and_rebuilt_without_a_flag(tmp_path):
    torch.manual_seed(2)
    cfg = Config().override(model={"width": 16})
    atomic_save(_ckpt(cfg, Generator(width=16)), tmp_path / "w16.pt")
    assert load_checkpoint(tmp_path / "w16.pt")["config"]["model"]["width"] == 16
    g, cfg2 = load_generator(tmp_path / "w16.pt")
    assert cfg2.model.width == 16 and g.width == 16
    assert g.down1[0].out_channels == 16 and g.down8[0].out_channels == 128


def test_a_checkpoint_from_before_model_width_is_table_1(tmp_path):
    ckpt = _ckpt(Config(), Generator())
    del ckpt["config"]["model"]["width"]
    atomic_save(ckpt, tmp_path / "old.pt")
    g, cfg = load_generator(tmp_path / "old.pt")
    assert cfg.model.width == 64 and g.down1[0].out_channels == 64


def test_weights_of_another_width_are_refused(tmp_path):
    ckpt = _ckpt(Config().override(model={"width": 16}), Generator(width=8))
    atomic_save(ckpt, tmp_path / "c.pt")
    with pytest.raises(UserError, match=r"do not match its config \(model.width 16\): size "
                                        r"mismatch for down1.0.weight"):
        load_generator(tmp_path / "c.pt")


def test_weights_that_do_not_match_config(tmp_path):
    ckpt = _ckpt(Config(), Generator())
    ckpt["config"]["model"]["out_channels"] = 2
    atomic_save(ckpt, tmp_path / "c.pt")
    with pytest.raises(UserError, match="do not match"):
        load_generator(tmp_path / "c.pt")
