import contextlib

import pytest
import torch

from endoxai import runtime
from endoxai.errors import UserError


def test_auto_precision_follows_cpu_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("bf16", cpu) == "bf16"


def test_autocast_contexts():
    cpu = torch.device("cpu")
    assert isinstance(runtime.autocast("fp32", cpu), contextlib.nullcontext)
    with runtime.autocast("bf16", cpu):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16


def test_devices():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError):
        runtime.resolve_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            runtime.resolve_device("cuda")
