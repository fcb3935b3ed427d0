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


def test_inference_auto_and_fp16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu, inference=True) == "fp32"
    with pytest.raises(UserError, match="CUDA"):
        runtime.resolve_precision("fp16", cpu, inference=True)


def test_prefetch_keeps_order_and_runs_ahead():
    import threading
    import time

    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    it = runtime.prefetch(items(), depth=2)
    assert next(it) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 3 and time.monotonic() < deadline:  # the producer runs ahead by 2
        time.sleep(0.01)
    assert produced[:3] == [0, 1, 2]
    assert list(it) == [1, 2, 3, 4]
    assert not any(t.name == "endoxai-prefetch" for t in threading.enumerate())


def test_prefetch_reraises_in_order_and_stops_early():
    import threading

    def failing():
        yield 1
        raise ValueError("bad item")

    it = runtime.prefetch(failing())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad item"):
        next(it)

    it = runtime.prefetch(iter(range(10_000)))
    assert next(it) == 0
    it.close()  # early stop: the producer thread must end, not block on the full buffer
    assert not any(t.name == "endoxai-prefetch" and t.is_alive() for t in threading.enumerate())


def test_lrp_auto_precision_is_fp32(monkeypatch):
    # measured (benchmarks/bench_lrp_precision.py): bf16 LRP was slower than fp32 on a CPU
    # with AMX and AVX512-BF16, so auto keeps LRP in fp32 even there; explicit choices stay
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_lrp_precision("auto", cpu) == "fp32"
    assert runtime.resolve_lrp_precision("bf16", cpu) == "bf16"
    assert runtime.resolve_lrp_precision("fp32", cpu) == "fp32"
    with pytest.raises(UserError, match="fp16 autocast is for CUDA"):
        runtime.resolve_lrp_precision("fp16", cpu)
