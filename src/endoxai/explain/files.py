"""Explaining image files: read, resize, explain, write figures + arrays, report conservation.

This is the driver behind ``endoxai explain``. For every input image it writes, into the output
folder (``<stem>`` is the file name without its suffix; the full name with dots turned into
underscores when two inputs share a stem, compared case-insensitively):

- ``<stem>_explanation.png``: image | input relevance summed over RGB | predicted mask
  (paper Fig. 2);
- ``<stem>_layers.png``: the channel-summed relevance at the output of every generator block
  (down1..down8, up1..up8; paper Fig. 2c), each panel on its own symmetric colour scale;
- ``<stem>_flow.png``: the skip flow (``endoxai.explain.flow``), how much of the relevance entered
  each encoder level through its skip, continued deeper, or reached the bottleneck;
- ``<stem>.npz`` (see ``NPZ_KEYS``): the full input relevance (3, S, S) but only channel-summed
  layer maps, since the full relevance of all 16 blocks is ~65 MB of float32 per 512² image.

Images are resized (not cropped: the aspect ratio is not kept, as at training time) to the
checkpoint's ``data.image_size`` S; all maps, the mask and target coordinates are at that model
resolution, and the figures show the resized image next to them.

Conservation: ``conservation_table`` accounts for the relevance of all explained images
together (``endoxai.explain.conservation``): the output's total, what each block absorbed and why
(its rule; bias, batch-norm shift, ε), what the input kept, and the check that these add up.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from endoxai.data.io import list_inputs, output_stems, read_image
from endoxai.data.preprocess import resize_image, to_model_input
from endoxai.errors import ItemError, UserError
from endoxai.explain import COMPOSITES, DEFAULT_COMPOSITE, STARTS, Explainer
from endoxai.explain.composites import get_composite
from endoxai.explain.conservation import absorbers, format_conservation
from endoxai.explain.flow import FLOW_NPZ_KEYS, SkipFlow, format_flow_table
from endoxai.explain.targets import Target
from endoxai.fileio import (
    atomic_write_bytes,
    check_output_outside,
    file_ids,
    is_one_of,
    output_folder,
)
from endoxai.train.checkpoint import load_generator
from endoxai.viz.figures import explanation_figure, figure_png, layers_figure
from endoxai.viz.flow import flow_figure

logger = logging.getLogger(__name__)

TARGET_HELP = "mask | background | pixel:Y,X | box:Y0,X0,Y1,X1"
OUTPUT_SUFFIXES = ("_explanation.png", "_layers.png", "_flow.png", ".npz")  # appended to <stem>
LAYER_PREFIX = "layer_"
NPZ_KEYS = {
    "image": "uint8 (S, S, 3): the resized image the model saw",
    "input": "float32 (3, S, S): relevance of every input value",
    "input_map": "float32 (S, S): input relevance summed over colour channels (the heatmap)",
    "layer_<block>": "float32 (h, w): relevance at the block's output summed over its channels",
    "layer_names": "str (16,): block names in forward order, down1..down8, up1..up8",
    "layer_shapes": "int64 (16, 3): (C, h, w) of each block's full relevance",
    "output": "float32 (S, S): the starting relevance",
    "logits": "float32 (S, S): pre-tanh generator output",
    "mask": "bool (S, S): predicted foreground, logit > 0",
    "target_mask": "bool (S, S): the explained output positions",
    "source": "str: the input file",
    "target": "str: the target as on the command line (mask, pixel:Y,X, ...)",
    "composite": "str: the LRP composite",
    "start": "str: logit | ones",
    "precision": "str: what the relevance was computed in: fp32, or bf16 / fp16 (autocast)",
    **FLOW_NPZ_KEYS,
}

_INT = r"\s*(\d+)\s*"


def parse_target(text: str) -> Target:
    """Parse a command-line target: ``mask``, ``background``, ``pixel:Y,X``, ``box:Y0,X0,Y1,X1``.

    Coordinates are row, column at model resolution, >= 0. A box is half-open, rows y0..y1-1 and
    columns x0..x1-1, so y0 < y1 and x0 < x1. Returns ``"mask"``, ``"background"``,
    ``("pixel", y, x)`` or ``("box", y0, x0, y1, x1)``; raises UserError naming the valid forms.
    """
    kind, _, args = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind in ("mask", "background") and not args.strip():
        return kind
    counts = {"pixel": 2, "box": 4}
    if kind in counts:
        match = re.fullmatch(",".join([_INT] * counts[kind]), args)
        if match:
            values = tuple(int(v) for v in match.groups())
            if kind == "box" and not (values[0] < values[2] and values[1] < values[3]):
                raise UserError(
                    f"bad target {text!r}: a box needs Y0 < Y1 and X0 < X1 (rows Y0..Y1-1, "
                    "columns X0..X1-1)"
                )
            return (kind, *values)
        expected = "pixel:Y,X" if kind == "pixel" else "box:Y0,X0,Y1,X1"
        raise UserError(f"bad target {text!r}: expected {expected} with integers >= 0")
    raise UserError(f"bad target {text!r}: expected one of {TARGET_HELP}")


def format_target(target: Target) -> str:
    """Inverse of ``parse_target``: ``("pixel", 3, 4)`` -> ``"pixel:3,4"``."""
    if isinstance(target, str):
        return target
    if isinstance(target, tuple) and target and target[0] in ("pixel", "box"):
        return f"{target[0]}:{','.join(str(int(v)) for v in target[1:])}"
    return "custom"


def _check_target_fits(target: Target, size: int) -> None:
    if not isinstance(target, tuple):
        return
    coords = target[1:]
    limit = size - 1 if target[0] == "pixel" else size  # box corners are exclusive at the end
    if any(not 0 <= c <= limit for c in coords):
        raise UserError(
            f"target {format_target(target)} lies outside the {size}x{size} model input "
            f"(coordinates are at model resolution: 0..{limit})"
        )


@dataclass
class ExplainSummary:
    """What ``explain_files`` did: the images explained or failed, and per image the relevance
    ledger (``flows``) that the conservation and skip-flow tables sum."""

    output_dir: Path
    composite: str
    target: str
    start: str
    explained: list[str] = field(default_factory=list)  # input file names, in processing order
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, one-line reason)
    absorbed_by: dict[str, str] = field(default_factory=dict)  # block -> its rule and absorbers
    inputs: frozenset[tuple[int, int]] = field(default_factory=frozenset, repr=False)  # file_ids
    flows: list[SkipFlow] = field(default_factory=list, repr=False)  # one ledger per image


def explain_files(
    checkpoint: str | Path,
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    target: Target = "mask",
    composite: str = DEFAULT_COMPOSITE,
    start: str = "logit",
    batch_size: int = 1,
    progress: bool | None = None,
    precision: str = "fp32",
) -> ExplainSummary:
    """Explain every image in ``inputs`` (an image file, a folder of images, or a list of files)
    with the generator in ``checkpoint``; write figures and arrays to ``output_dir`` (module doc).

    ``target`` is a string as for ``parse_target`` or an already parsed target. An unreadable image
    is logged as one line naming the file and listed in ``summary.failed``; the others still run.
    ``output_dir`` must not be an input folder or inside it (UserError: a rerun would explain the
    figures as new images); an input file is never overwritten: an image whose outputs would
    replace an input (given as files) is skipped and listed in ``summary.failed``. An output
    folder that this call created and left empty is removed again.
    ``progress``: a tqdm bar over images; None = only for several images on a terminal.
    ``precision``: of the LRP pass, see ``Explainer`` (fp32 conserves relevance to rounding).
    Raises UserError for a missing input, an unknown composite or start, a bad target or batch size.
    """
    if isinstance(target, str):
        target = parse_target(target)
    if composite not in COMPOSITES:
        raise UserError(f"unknown composite {composite!r}; choose from {', '.join(COMPOSITES)}")
    if start not in STARTS:
        raise UserError(f"unknown start {start!r}; choose from {', '.join(STARTS)}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1; got {batch_size}")
    paths = _input_paths(inputs)
    if isinstance(inputs, (str, Path)):
        check_output_outside(output_dir, inputs)
    generator, config = load_generator(checkpoint)
    # prepared once (BN folding, rule weights)
    explainer = Explainer(generator, composite, precision)
    size = config.data.image_size
    _check_target_fits(target, size)
    output_dir = Path(output_dir)
    summary = ExplainSummary(output_dir, composite, format_target(target), start,
                             absorbed_by=absorbers(generator, get_composite(composite)))
    stems = output_stems(paths)
    summary.inputs = file_ids(paths)
    show = progress if progress is not None else (None if len(paths) > 1 else False)
    with output_folder(output_dir), logging_redirect_tqdm(), tqdm(
        total=len(paths), unit="image", desc="explain", disable=None if show is None else not show
    ) as bar:
        for first in range(0, len(paths), batch_size):
            batch = paths[first:first + batch_size]
            _explain_batch(explainer, batch, stems, size, target, summary)
            bar.update(len(batch))
    return summary


def _input_paths(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(inputs, (str, Path)):
        return list_inputs(Path(inputs))  # the same rules as `endoxai predict`
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input images given")
    return paths


def _explain_batch(
    explainer: Explainer,
    batch: list[Path],
    stems: dict[Path, str],
    size: int,
    target: Target,
    summary: ExplainSummary,
) -> None:
    loaded: list[tuple[Path, np.ndarray]] = []
    for path in batch:
        clash = next((o for o in _outputs(summary.output_dir / stems[path])
                      if is_one_of(o, summary.inputs)), None)
        if clash is not None:
            reason = f"{path}: output {clash} would overwrite an input; skipped"
            logger.error("%s", reason)
            summary.failed.append((str(path), reason))
            continue
        try:
            loaded.append((path, resize_image(read_image(path, name=str(path)), size)))
        except ItemError as err:
            logger.error("%s", err)
            summary.failed.append((str(path), str(err)))
    if not loaded:
        return
    images = torch.from_numpy(np.stack([image for _, image in loaded])).permute(0, 3, 1, 2)
    exp = explainer(to_model_input(images), target=target, layers=True, start=summary.start,
                    layer_inputs=True, sources=[str(path) for path, _ in loaded])
    flow = exp.flow
    for i, (path, image) in enumerate(loaded):
        arrays = _arrays(exp, i, image, path, summary)
        arrays.update(flow.arrays(i))
        summary.flows.append(flow.image(i))
        if not arrays["output"].any():
            logger.warning(
                "%s: the target is empty (e.g. no predicted foreground); all relevance is 0", path
            )
        _write_outputs(arrays, summary.output_dir / stems[path], _printable(path.name), target,
                       summary)
        summary.explained.append(str(path))


def _printable(name: str) -> str:
    """A file name that is not valid UTF-8 holds surrogates, which fonts cannot draw: show the
    undecodable bytes as ``\\xe9`` instead."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _outputs(base: Path) -> list[Path]:
    """The files written for one image: figure, layer grid, arrays."""
    return [base.with_name(base.name + suffix) for suffix in OUTPUT_SUFFIXES]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def _arrays(exp, i: int, image: np.ndarray, path: Path, summary: ExplainSummary) -> dict:
    relevance = _numpy(exp.input[i])
    logits = _numpy(exp.logits[i, 0])
    arrays = {
        "image": image,
        "input": relevance,
        "input_map": relevance.sum(axis=0),
        "output": _numpy(exp.output[i, 0]),
        "logits": logits,
        "mask": logits > 0,
        "target_mask": exp.target[i, 0].detach().cpu().numpy(),
        "layer_names": np.array(list(exp.layers)),
        "layer_shapes": np.array([tuple(r.shape[1:]) for r in exp.layers.values()], dtype=np.int64),
        "source": np.array(str(path)),
        "target": np.array(summary.target),
        "composite": np.array(summary.composite),
        "start": np.array(summary.start),
        "precision": np.array(exp.precision),
    }
    for name, r in exp.layers.items():
        arrays[LAYER_PREFIX + name] = _numpy(r[i].sum(dim=0))
    return arrays


def _write_outputs(
    arrays: dict, base: Path, name: str, target: Target, summary: ExplainSummary
) -> None:
    title = (f"{name} · target {summary.target} · composite {summary.composite} · start "
             f"{summary.start} · {arrays['precision']}")
    fig = explanation_figure(arrays["image"], arrays["input_map"], arrays["mask"], title=title,
                             target=target)
    figure, grid, flow, npz = _outputs(base)
    atomic_write_bytes(figure, figure_png(fig))
    names = [str(n) for n in arrays["layer_names"]]
    maps = {n: arrays[LAYER_PREFIX + n] for n in names}
    shapes = {n: tuple(s) for n, s in zip(names, arrays["layer_shapes"])}
    fig = layers_figure(
        maps, shapes, title=f"Relevance at each block's output, summed over channels — {title}"
    )
    atomic_write_bytes(grid, figure_png(fig, dpi=100))
    fig = flow_figure(SkipFlow.from_arrays(arrays), title=f"Skip flow — {title}")
    atomic_write_bytes(flow, figure_png(fig, dpi=100))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(npz, buffer.getvalue())


def conservation_table(summary: ExplainSummary) -> str:
    """Where the relevance went, over all explained images (``explain.conservation``): the
    output's total, what each block absorbed and why (its rule; bias, batch-norm shift, ε), what
    the input kept, and the check that these add up. Empty if nothing was explained."""
    if not summary.flows:
        return ""
    n = len(summary.flows)
    title = (f"Where the relevance goes, composite {summary.composite}, target {summary.target}, "
             f"start {summary.start}; " + (f"summed over {n} images" if n > 1 else "1 image"))
    return format_conservation(SkipFlow.concat(summary.flows), summary.absorbed_by, title)


def flow_table(summary: ExplainSummary) -> str:
    """The skip-flow ledger (``endoxai.explain.flow.format_flow_table``) summed over all explained
    images; empty if none was explained."""
    if not summary.flows:
        return ""
    n = len(summary.flows)
    return format_flow_table(
        SkipFlow.concat(summary.flows),
        title=f"Skip flow, composite {summary.composite}, target {summary.target}; "
              + (f"summed over {n} images" if n > 1 else "1 image") + " (shares of the output)")
