"""Generator forward (inference) speed: fp32 vs bf16 vs ONNX Runtime, and the FLOP floor.

For each image size, one table with rows measured side by side (interleaved rounds, medians):

- ``fp32 NCHW``: ``Generator.logits`` under ``torch.no_grad`` in the default layout (the plain
  eager baseline); ``fp32 channels-last``; ``bf16 channels-last (autocast)``; ``bf16, weights
  stored bf16``: ``predict.prepare_for_inference`` (convolution weights cast once, then autocast:
  the same numbers, what ``endoxai predict`` runs by default on a CPU with native bf16); ``bf16 channels-last, compiled`` with
  ``--compile`` (torch.compile of the same module); ``onnxruntime fp32`` when onnxruntime is
  installed (the model is exported by ``endoxai.export`` first).
- FLOP floor: the generator's multiply-adds counted from its layers (2 FLOP each) divided by the
  machine's GEMM rate, measured in the same run with square ``torch.mm`` products in fp32 and
  bf16. "× floor" = time / floor (1.0 would be GEMM speed for every layer).

Example: ``python benchmarks/bench_forward.py --sizes 512 256 --repeats 7`` (``--width 16``: a
generator with a quarter of Table 1's channels in every layer)
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
from common import interleaved, load_average, machine, median, peak_rss, table, script_main
from torch import nn

from endoxai.models import Generator
from endoxai.predict import prepare_for_inference
from endoxai.runtime import autocast


def generator_flops(g: nn.Module, size: int) -> float:
    """FLOP (2 per multiply-add) of one ``g.logits`` on a size x size image, from its layers."""
    total = 0.0

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):  # every input pixel meets every kernel tap
            spatial = args[0].shape[-2] * args[0].shape[-1]
        else:  # every output pixel is one kernel-sized dot product
            spatial = out.shape[-2] * out.shape[-1]
        total += 2.0 * k * module.in_channels * module.out_channels * spatial / module.groups

    handles = [m.register_forward_hook(hook) for m in g.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            g.logits(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return total


def gemm_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n torch.mm in ``dtype`` (median of ``repeats`` after one warm-up)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    wall, _ = interleaved({"mm": lambda: torch.mm(a, b)}, repeats, 1, label=f"gemm {dtype}: ")
    return 2.0 * n ** 3 / median(wall["mm"])


def _forward(g: nn.Module, x: torch.Tensor, precision: str):
    return _forward_fn(g.logits, x, precision)


def _forward_fn(fn, x: torch.Tensor, precision: str):
    def run() -> torch.Tensor:
        with torch.no_grad(), autocast(precision, torch.device("cpu")):
            return fn(x)

    return run


def onnx_runner(g: Generator, size: int, workdir: Path):
    """A callable running ``g`` through ONNX Runtime on a fixed input, or None without ORT.

    The model goes the product's way: a checkpoint, ``export_onnx``, ``OnnxGenerator``.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from endoxai.config import Config
    from endoxai.export import OnnxGenerator, export_onnx
    from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

    ckpt = workdir / f"g{size}.pt"
    cfg = Config().override(data={"image_size": size}, model={"width": g.width})
    atomic_save({"format": FORMAT, "version": VERSION, "config": cfg.to_dict(),
                 "generator": g.state_dict()}, ckpt)
    session = OnnxGenerator(export_onnx(ckpt, workdir / f"g{size}.onnx"),
                            num_threads=torch.get_num_threads())
    x = (torch.rand(1, 3, size, size) * 2 - 1).numpy()
    return lambda: session.logits(x)


def run(args: argparse.Namespace) -> str:
    torch.manual_seed(args.seed)
    g = Generator(width=args.width).eval()
    g_cl = copy.deepcopy(g).to(memory_format=torch.channels_last)
    g_bf16 = prepare_for_inference(copy.deepcopy(g), "bf16")
    facts = machine()
    load_before = load_average()
    rates = {"fp32": gemm_rate(torch.float32), "bf16": gemm_rate(torch.bfloat16)}
    out = [f"Command: `python benchmarks/bench_forward.py {' '.join(sys.argv[1:])}`", ""]
    out += [f"- {k}: {v}" for k, v in facts.items()]
    out.append(f"- GEMM rate measured in this run (2048³ torch.mm): fp32 {rates['fp32'] / 1e9:.0f} "
               f"GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            flops = generator_flops(g, size)
            x = torch.rand(args.batch, 3, size, size) * 2 - 1
            x_cl = x.contiguous(memory_format=torch.channels_last)
            methods = {
                "fp32 NCHW (plain eager)": _forward(g, x, "fp32"),
                "fp32 channels-last": _forward(g_cl, x_cl, "fp32"),
                "bf16 channels-last (autocast)": _forward(g_cl, x_cl, "bf16"),
                "bf16, weights stored bf16 (predict's path)": _forward(g_bf16, x_cl, "bf16"),
            }
            if args.compile:
                compiled = torch.compile(g_cl.logits)
                methods["bf16 channels-last, torch.compile"] = _forward_fn(compiled, x_cl, "bf16")
            ort = onnx_runner(g, size, Path(tmp)) if args.onnx and args.batch == 1 else None
            if ort is not None:
                methods["onnxruntime fp32"] = ort
            wall, cpu = interleaved(methods, args.repeats, args.warmup, label=f"{size}px: ")
            memory = {name: peak_rss(fn) for name, fn in methods.items()}
            plain = median(wall["fp32 NCHW (plain eager)"])
            rows = []
            for name in methods:
                t = median(wall[name]) / args.batch
                floor = flops / rates["bf16" if "bf16" in name else "fp32"]
                peak, rise = memory[name]
                rows.append([name, f"{t:.4f}", f"{min(wall[name]) / args.batch:.4f}",
                             f"{median(cpu[name]) / args.batch:.3f}", f"{plain / args.batch / t:.2f}",
                             f"{floor:.4f}", f"{t / floor:.2f}", f"{peak:.0f} (+{rise:.0f})"])
            out += ["", f"Generator forward (width {args.width}), {size}×{size}, batch "
                    f"{args.batch}, {flops / 1e9:.1f} GFLOP per image:", ""]
            out.append(table(["method", "s / image (median)", "s / image (min)", "CPU s / image",
                              "speed-up vs plain", "floor s", "× floor", "peak RSS MiB (rise)"],
                             rows))
    out += ["", f"- medians of {args.repeats} interleaved rounds after {args.warmup} warm-up; "
            f"load average before / after: {load_before} / {load_average()}"]
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 256])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=64,
                   help="model.width of the random generator (default 64: Table 1)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false",
                   help="skip ONNX Runtime (otherwise timed when installed)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow start)")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
