"""Image(s) -> binary masks at each image's original size, written as 0/255 PNGs."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from endoxai.data.io import list_inputs, output_stems, read_image
from endoxai.data.preprocess import resize_image, to_model_input
from endoxai.data.splits import select_ids
from endoxai.errors import ItemError, UserError
from endoxai.fileio import (
    atomic_write_bytes,
    check_output_outside,
    file_ids,
    is_one_of,
    output_folder,
)
from endoxai.runtime import (
    AUTOCAST_DTYPES,
    autocast,
    prefetch,
    resolve_device,
    resolve_precision,
)
from endoxai.train.checkpoint import load_generator

log = logging.getLogger(__name__)

UPSAMPLING = ("bilinear", "nearest")


@dataclass
class PredictSummary:
    written: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per failed file


def prepare_for_inference(g: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``g`` in channels-last layout, with its (transposed) convolution weights and biases stored
    in the autocast dtype when ``precision`` is bf16 / fp16.

    Autocast would cast those weights on every forward (54 M parameters: about a tenth of a bf16
    forward on a 2-core CPU); stored once, the results are the same numbers, since autocast runs
    convolutions in that dtype anyway. BatchNorm keeps its float32 parameters. Modifies and
    returns ``g``, which then only runs under ``autocast(precision)``.
    """
    g = g.to(memory_format=torch.channels_last)
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is not None:
        for module in g.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.to(dtype)
    return g


FLIPS = ((), (3,), (2,), (2, 3))  # identity, horizontal, vertical, both: test-time augmentation


@torch.no_grad()
def predict_logits(g: torch.nn.Module, images: torch.Tensor, precision: str = "fp32",
                   tta: bool = False) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> float32 (N, 1, S, S) pre-tanh logits of the eval-mode generator.

    ``precision``: a resolved one (fp32 | bf16 | fp16, see ``runtime.resolve_precision``); the
    input goes in channels-last layout (oneDNN's fast layout on CPU, tensor cores on CUDA).
    ``tta``: average the logits of the image and its horizontal, vertical and double flips (each
    flipped back), 4x the compute.
    """
    device = next(g.parameters()).device
    x = to_model_input(images).to(device, memory_format=torch.channels_last)
    with autocast(precision, device):
        if not tta:
            return g.logits(x).float().cpu()
        total = torch.zeros((x.shape[0], 1, *x.shape[2:]), device=device)
        for dims in FLIPS:
            flipped = x.flip(dims) if dims else x
            out = g.logits(flipped).float()
            total += out.flip(dims) if dims else out
        return (total / len(FLIPS)).cpu()


def predict_logits_batched(g: torch.nn.Module, images: torch.Tensor, batch_size: int,
                           precision: str = "fp32") -> torch.Tensor:
    """``predict_logits`` of uint8 (N, 3, S, S) ``images``, ``batch_size`` at a time."""
    return torch.cat([predict_logits(g, images[i:i + batch_size], precision)
                      for i in range(0, len(images), batch_size)])


def logits_to_mask(logits: torch.Tensor, size: tuple[int, int], upsampling: str = "bilinear") -> np.ndarray:
    """(1, S, S) logits -> bool (H, W) mask at ``size`` = (H, W): ``logit > 0``.

    ``bilinear`` interpolates the logits and thresholds after (smooth edges); ``nearest``
    thresholds at model size and repeats pixels. Never min-max stretched: an all-negative
    output stays an empty mask.
    """
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLING)}; got {upsampling!r}")
    x = logits[None].float()
    if upsampling == "bilinear":
        return (F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0, 0] > 0).numpy()
    return F.interpolate((x > 0).float(), size=size, mode="nearest")[0, 0].bool().numpy()


def _batches(files: Sequence[Path], size: int, batch_size: int, failures: list[str]
             ) -> Iterator[tuple[list[Path], list[tuple[int, int]], torch.Tensor]]:
    paths, sizes, arrays = [], [], []
    for path in files:
        try:
            image = read_image(path)
        except ItemError as err:
            failures.append(str(err))
            log.error("error: %s", err)
            continue
        paths.append(path)
        sizes.append(image.shape[:2])
        arrays.append(torch.from_numpy(resize_image(image, size)).permute(2, 0, 1))
        if len(paths) == batch_size:
            yield paths, sizes, torch.stack(arrays)
            paths, sizes, arrays = [], [], []
    if paths:
        yield paths, sizes, torch.stack(arrays)


def predict_files(
    checkpoint: str | Path,
    inputs: str | Path,
    output_dir: str | Path,
    batch_size: int = 8,
    upsampling: str = "bilinear",
    precision: str = "auto",
    device: str = "auto",
    progress: bool = True,
    tta: bool = False,
    ids: list[str] | None = None,
    trained: bool = False,
) -> PredictSummary:
    """Write ``<output_dir>/<stem>.png`` (0/255, original size) for every readable input image.

    ``precision``: fp32, bf16, fp16 (CUDA only) or auto (bf16 on CPUs with native bf16 and on
    GPUs that have it, fp16 on older GPUs, else fp32). Decoding of the next batch runs in a
    background thread while the model computes, and the masks are resized and written by a
    second thread, so the generator is rarely idle. ``tta``: flip test-time augmentation (see
    ``predict_logits``). ``ids``: only the images with these stems (e.g. a split's ``val.txt``);
    UserError naming any id without an image. ``trained``: the trained weights of a checkpoint
    that keeps a moving average, not the average (``load_generator``).

    Unreadable files are skipped with a one-line error and listed in ``failures``. Two inputs
    with one stem (``a.jpg`` + ``a.png``) get ``a_jpg.png`` and ``a_png.png``. ``output_dir``
    must not be the input folder or inside it (UserError: a rerun would take the masks for new
    images); an input file is never overwritten (with a single input image in the output folder,
    an output that would replace it is skipped and listed in ``failures``). An output folder that
    this call created and left empty (every input failed, or an error) is removed again.
    """
    if batch_size < 1:
        raise UserError("batch size must be >= 1")
    if upsampling not in UPSAMPLING:
        raise UserError(f"upsampling must be one of {', '.join(UPSAMPLING)}; got {upsampling!r}")
    files = list_inputs(inputs)
    check_output_outside(output_dir, inputs)
    if ids is not None:
        wanted = select_ids({path.stem: path for path in files}, ids, f"the images in {inputs}")
        files = [path for path in files if path.stem in wanted]
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev, inference=True)
    g, cfg = load_generator(checkpoint, map_location=dev, trained=trained)
    g = prepare_for_inference(g, precision)
    log.info("predict: %d image(s) at %d px, precision %s on %s", len(files), cfg.data.image_size,
             precision, dev)
    stems = output_stems(files)
    inputs = file_ids(files)
    summary = PredictSummary()
    batches = _batches(files, cfg.data.image_size, batch_size, summary.failures)
    # Per-file errors are logged while the bar runs: logging_redirect_tqdm keeps them off its line.
    with output_folder(output_dir) as out, logging_redirect_tqdm(), \
            tqdm(total=len(files), desc="predict", unit="img", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="endoxai-write") as writer:
        pending = None
        for paths, sizes, images in prefetch(batches):
            logits = predict_logits(g, images, precision, tta)
            if pending is not None:
                pending.result()  # re-raises a write error; keeps at most one batch in flight
            pending = writer.submit(_write_masks, paths, sizes, logits, out, stems, inputs,
                                    upsampling, summary)
            bar.update(len(paths))
        if pending is not None:
            pending.result()
        bar.update(len(files) - bar.n)
    return summary


def _write_masks(paths: list[Path], sizes: list[tuple[int, int]], logits: torch.Tensor, out: Path,
                 stems: dict[Path, str], inputs, upsampling: str, summary: PredictSummary) -> None:
    """Resize each logit map to its image's size, threshold, write the PNG (the writer thread)."""
    for path, size, logit in zip(paths, sizes, logits):
        target = out / f"{stems[path]}.png"
        if is_one_of(target, inputs):
            summary.failures.append(f"{path}: output {target} would overwrite an input; skipped")
            log.error("error: %s", summary.failures[-1])
            continue
        mask = logits_to_mask(logit, size, upsampling)
        atomic_write_bytes(target, _png_bytes(mask))
        summary.written.append(target)


def _png_bytes(mask: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return buf.getvalue()
