"""Where and in which precision to run: device choice, autocast for fp32 / bf16 / fp16, and a
background prefetcher that overlaps decoding with compute."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

from endoxai.errors import UserError

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA GPU is available")
    return device


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device, inference: bool = False) -> str:
    """``auto`` -> ``bf16`` where the hardware runs it natively, else ``fp32``; for inference on a
    CUDA GPU without bf16, ``fp16`` (training in fp16 would need loss scaling, so it stays fp32).

    ``fp16`` is accepted on CUDA only (CPUs have no fast fp16 path): UserError elsewhere.
    """
    if precision == "fp16" and device.type != "cuda":
        raise UserError("fp16 autocast is for CUDA GPUs; on a CPU use bf16 (or auto)")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16" if inference else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def resolve_lrp_precision(precision: str, device: torch.device) -> str:
    """The precision of an LRP pass: ``auto`` -> ``fp32``; bf16 / fp16 as asked
    (``resolve_precision``'s rules: fp16 on CUDA only).

    ``auto`` would pick bf16 only where it was measured both faster and safe, and it was not:
    on a 2-core Intel Xeon with AMX and AVX512-BF16 a bf16 pass took 1.3-1.5x as long as fp32 at
    256² (width 16 and width 64; benchmarks/bench_lrp_precision.py, docs/results.md), and on a
    CPU without native bf16 the emulated pass gave NaN maps. GPUs are unmeasured.
    """
    if precision == "auto":
        return "fp32"
    return resolve_precision(precision, device, inference=True)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # fp32: no autocast


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for the resolved precision (fp32: a no-op context)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` while a background thread already produces the next ``depth`` of them.

    For decoding (PIL releases the GIL) overlapped with model compute. An exception raised by
    ``items`` is re-raised here, at the position where it happened. Closing the returned
    generator early (break, Ctrl-C) stops the thread after the item it is producing.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
        except BaseException as err:  # handed to the consumer, raised there
            buffer.put((_DONE, err))
            return
        buffer.put((_DONE, None))

    worker = threading.Thread(target=produce, name="endoxai-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = buffer.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
