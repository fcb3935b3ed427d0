import pytest

from endoxai.config import TrainConfig
from endoxai.train.schedule import lr_factor


def test_constant():
    cfg = TrainConfig(epochs=5)
    assert [lr_factor(e, cfg) for e in range(5)] == [1.0] * 5


def test_linear_decay_over_last_epochs():
    cfg = TrainConfig(epochs=6, lr_schedule="linear", decay_fraction=0.5)
    assert [lr_factor(e, cfg) for e in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]


def test_linear_decay_over_all_epochs():
    cfg = TrainConfig(epochs=4, lr_schedule="linear", decay_fraction=1.0)
    factors = [lr_factor(e, cfg) for e in range(4)]
    assert factors == pytest.approx([0.8, 0.6, 0.4, 0.2])
