"""ONNX export of a trained generator's logits, and running an exported file with ONNX Runtime.

The exported graph maps ``image`` float32 (N, 3, S, S), RGB scaled to [-1, 1] (``uint8 / 127.5 - 1``
after a bilinear resize to S x S, as ``endoxai predict`` does), to ``logits`` float32 (N, 1, S, S),
the generator's pre-tanh scores: mask = logits > 0. S is the training size (``data.image_size``,
fixed in the graph); N is free unless ``batch`` fixes it. The file is self-contained (no external
data file) and carries the full endoxai config and S in its metadata (``metadata_props``).

Needs the optional dependencies ``onnx`` and ``onnxruntime`` (``pip install 'endoxai[onnx]'``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from endoxai import __version__
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_bytes, file_ids, is_one_of
from endoxai.models import GeneratorLogits

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
# Old opsets for old runtimes: ONNX Runtime reads opset 17 since 1.13 and 18 since 1.14. The graph
# uses only Conv, ConvTranspose, BatchNormalization, (Leaky)Relu and Concat, whose definitions
# last changed in opset 16. 18 is the oldest opset the dynamo exporter writes without conversion.
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
# Checked up front (torch reports a bad opset with a graph dump): PyTorch 2.13's TorchScript
# exporter writes up to 20, its dynamo exporter up to 23; 11 is the oldest opset tested here.
OPSETS = {"torchscript": range(11, 21), "dynamo": range(18, 24)}
INPUT_NAME, OUTPUT_NAME = "image", "logits"
META_PREFIX = "endoxai."
META_FORMAT_VERSION = "1"
# Parity of an export with the PyTorch model. fp32 logits from two implementations differ only
# by summation order (oneDNN vs MLAS kernels, BatchNorm folded into the weights): about
# eps_fp32 * sqrt(fan-in) ~ 6e-8 * 128 ~ 1e-5 relative per layer, observed ~1e-6 of max |logit|
# over the 16 layers. 1e-4 leaves two orders of magnitude of headroom, while export bugs (training-
# mode BatchNorm or dropout, a wrong skip order) change the logits by O(1) of their scale.
PARITY_REL_TOL = 1e-4
PARITY_MIN_MASK_AGREEMENT = 0.999  # sign flips can only happen where |logit| < the tiny |Δ|
EXTRA_HINT = "pip install 'endoxai[onnx]'"


def _require(module: str, hint: str = EXTRA_HINT) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UserError(f"ONNX support needs the {module} package: {hint}") from err


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    opset: int | None = None,
    batch: Literal["dynamic"] | int = "dynamic",
    exporter: str = "torchscript",
) -> Path:
    """Export the checkpoint's generator logits to a self-contained ONNX file; returns ``output``.

    ``image`` float32 (N, 3, S, S) in [-1, 1] -> ``logits`` float32 (N, 1, S, S), pre-tanh, with
    S = the checkpoint's ``data.image_size``. ``batch``: ``"dynamic"`` (any N) or a fixed N.
    ``opset``: None = DEFAULT_OPSET of the exporter. ``exporter``: ``torchscript`` (needs only
    ``onnx``; deprecated by PyTorch but reliable here) or ``dynamo`` (PyTorch's new exporter; also
    needs ``onnxscript``). The file is written atomically: a failed export leaves no file.
    Metadata (``endoxai.*`` keys): image_size, input, output, config (JSON), source, version.
    """
    from endoxai.train.checkpoint import load_generator

    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    if batch != "dynamic" and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be 'dynamic' or a positive int; got {batch!r}")
    onnx = _require("onnx")
    checkpoint, output = Path(checkpoint), Path(output)
    opset = DEFAULT_OPSET[exporter] if opset is None else opset
    if opset not in OPSETS[exporter]:
        allowed = OPSETS[exporter]
        raise UserError(f"opset {opset} is not supported by the {exporter} exporter: "
                        f"use {allowed.start}-{allowed.stop - 1}")
    g, cfg = load_generator(checkpoint)
    _check_output(output, checkpoint)  # before the slow export, not after it
    size = cfg.data.image_size
    example = torch.zeros(1 if batch == "dynamic" else batch, cfg.model.in_channels, size, size)
    model = GeneratorLogits(g).eval()  # the TorchScript exporter restores the wrapper's mode afterwards
    start = time.perf_counter()
    try:
        if exporter == "torchscript":
            proto = _export_torchscript(onnx, model, example, opset, batch == "dynamic")
        else:
            proto = _export_dynamo(model, example, opset, batch == "dynamic")
    except RuntimeError as err:  # includes torch.onnx.errors.OnnxExporterError
        other = EXPORTERS[1 - EXPORTERS.index(exporter)]
        raise UserError(f"ONNX export ({exporter}, opset {opset}) failed: {_first_line(err)} "
                        f"(the other exporter, {other}, may work)") from err
    meta = {
        "format_version": META_FORMAT_VERSION,
        "image_size": str(size),
        "input": f"{INPUT_NAME}: float32 (N, {cfg.model.in_channels}, {size}, {size}), RGB "
                 f"resized to {size}x{size} (bilinear), value = uint8 / 127.5 - 1, in [-1, 1]",
        "output": f"{OUTPUT_NAME}: float32 (N, {cfg.model.out_channels}, {size}, {size}), "
                  "pre-tanh scores; mask = logits > 0",
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "source": checkpoint.name,  # the name only: absolute paths would leak the user's folders
        "version": __version__,
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, value
    proto.doc_string = "endoxai pix2pix generator logits; see the endoxai.* metadata"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    atomic_write_bytes(output, data)
    log.info("exported %s (%s, opset %d, %.0f MB) in %.1f s", output, exporter, opset,
             len(data) / 2**20, time.perf_counter() - start)
    return output


def _check_output(output: Path, checkpoint: Path) -> None:
    if output.is_dir():
        raise UserError(f"cannot write {output}: it is a folder")
    if is_one_of(output, file_ids([checkpoint])):
        raise UserError(f"refusing to overwrite the checkpoint {checkpoint} with the ONNX file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {output}: {err.strerror or err}") from err
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {output}: no write permission in {output.parent}")


def _export_torchscript(onnx: ModuleType, model: nn.Module, example: torch.Tensor, opset: int,
                        dynamic_batch: bool) -> Any:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The size check in Generator.logits compares traced shapes (a TracerWarning); it holds for
        # the fixed S baked into the graph. The deprecation notice is about a future PyTorch.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*", category=DeprecationWarning)
        torch.onnx.export(
            model, (example,), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            if dynamic_batch else None,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    _require("onnxscript", "pip install onnxscript (needed by the dynamo exporter)")
    with _quiet_loggers("torch.onnx", "onnxscript", "onnx_ir"):
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, verbose=False,
            external_data=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic_batch else None,
        )
    return program.model_proto


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The dynamo exporter logs each optimisation pass (and absent torchvision ops) at INFO and
    WARNING; the CLI's INFO level would print them all. Errors still show."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class OnnxGenerator:
    """An exported generator run by ONNX Runtime on the CPU; build once, call ``logits`` often.

    ``num_threads``: intra-op threads (None = ONNX Runtime's default, one per physical core).
    Attributes: ``image_size`` (S), ``metadata`` (the file's ``metadata_props``), ``session``.
    """

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1 or None; got {num_threads}")
            options.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT's pybind errors derive from Exception only
            raise UserError(f"{path}: not a readable ONNX model: {_first_line(err)}") from err
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_shape = inp.name, tuple(inp.shape)
        self.output_name = self.session.get_outputs()[0].name
        declared = self.metadata.get(META_PREFIX + "image_size")
        self.image_size = int(declared) if declared else int(self.input_shape[-1])

    def logits(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """float32 (N, 3, S, S) in [-1, 1] -> float32 (N, 1, S, S) pre-tanh scores.

        Returns a torch tensor for a torch input and a numpy array for a numpy input.
        """
        as_torch = isinstance(x, torch.Tensor)
        array = x.detach().cpu().numpy() if as_torch else np.asarray(x)
        array = np.ascontiguousarray(array, dtype=np.float32)
        expected = self.input_shape
        if array.ndim != 4 or any(isinstance(e, int) and e != a
                                  for e, a in zip(expected, array.shape)):
            raise ValueError(f"expected input of shape {expected}; got {array.shape}")
        out = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(out) if as_torch else out


@dataclass(frozen=True)
class Parity:
    """How closely an ONNX export reproduces the PyTorch logits on the same inputs."""

    max_abs_diff: float  # max |Δ logit| over all pixels
    max_abs_logit: float  # scale of the PyTorch logits (max |logit|)
    mask_agreement: float  # fraction of pixels where (logit > 0) agrees
    pixels: int

    @property
    def ok(self) -> bool:
        return (self.max_abs_diff <= PARITY_REL_TOL * self.max_abs_logit
                and self.mask_agreement >= PARITY_MIN_MASK_AGREEMENT)

    def __str__(self) -> str:
        return (f"max |Δ logit| {self.max_abs_diff:.2e} (max |logit| {self.max_abs_logit:.3g}), "
                f"masks {100 * self.mask_agreement:.3f} % identical over {self.pixels} pixels")


def parity_inputs(size: int, n_random: int = 2, seed: int = 0) -> torch.Tensor:
    """(n_random + 1, 3, size, size) in [-1, 1]: uniform noise, then one image-like input (smooth
    colour gradients with a bright disc, like a polyp), closer to what the model was trained on."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(n_random, 3, size, size, generator=gen) * 2 - 1
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    image = torch.stack([0.5 * xx, 0.5 * yy - 0.2, -0.3 + 0.2 * xx * yy])
    disc = (xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.3**2
    image[:, disc] = torch.tensor([0.8, 0.1, -0.1])[:, None]
    image = image + 0.05 * torch.randn(3, size, size, generator=gen)
    return torch.cat([noise, image.clamp(-1, 1)[None]])


def check_parity(reference: str | Path | nn.Module, onnx_model: str | Path | OnnxGenerator,
                 n_random: int = 2, seed: int = 0, num_threads: int | None = None) -> Parity:
    """Compare an ONNX model with PyTorch fp32 logits on ``parity_inputs`` (n_random + 1 inputs).

    ``reference``: a checkpoint, or an eval-mode generator (anything with ``.logits``).
    ``onnx_model``: an exported file (run with ``num_threads``) or an OnnxGenerator.
    """
    from endoxai.train.checkpoint import load_generator

    runner = (onnx_model if isinstance(onnx_model, OnnxGenerator)
              else OnnxGenerator(onnx_model, num_threads))
    g = load_generator(reference)[0] if isinstance(reference, (str, Path)) else reference
    x = parity_inputs(runner.image_size, n_random, seed)
    fixed = runner.input_shape[0]
    if isinstance(fixed, int):  # a fixed-batch export: repeat inputs to fill whole batches
        target = -(-len(x) // fixed) * fixed
        x = x.repeat(-(-target // len(x)), 1, 1, 1)[:target]
    chunks = x.split(fixed) if isinstance(fixed, int) else (x,)
    with torch.no_grad():
        expected = g.logits(x)
    got = torch.cat([runner.logits(c) for c in chunks])
    return Parity(
        max_abs_diff=float((got - expected).abs().max()),
        max_abs_logit=float(expected.abs().max()),
        mask_agreement=float(((got > 0) == (expected > 0)).float().mean()),
        pixels=expected.numel(),
    )

