"""Choosing a composite for a model: a grid of layer-dependent LRP composites, scored blind.

The grid combines one rule for the input layer (``down1``), one for the rest of the encoder
(``down2..downD``) and one for the decoder (``up1..upD``):

- input: ``box`` (z^B, the inputs' range [-1, 1]), ``flat``, ``w2`` (w²);
- encoder: ``gamma`` (generalised γ = 0.25), ``zplus`` (α1β0), ``eps`` (ε = 0.1);
- decoder: ``gamma`` (generalised γ = 0.25), ``eps0.01`` / ``eps0.1`` / ``eps1`` (ε in every
  decoder block), ``epsdepth`` (ε by depth: 1 in up1..up4, 0.1 in up5..up7, 0.01 in up8, the
  output layer), ``zplus``.

Every candidate and the references (the registered composites, gradient, gradient × input,
integrated gradients, random order) are scored on the same images with the region perturbation
of ``explain.faithfulness`` and with the sanity check's decoder-only randomisation
(``explain.sanity``). The rule that chooses, fixed in advance:

1. keep the candidates whose mean LeRF curve does not fall more than 10 % below the unperturbed
   score over the first half of the steps (``lerf_fall``: what they rank last does not matter;
   a *rise* is allowed, since removing the evidence a signed map ranks last, the evidence
   *against* the prediction, should raise the score; ``lerf_deviation``, which counts a rise
   too, is reported beside it);
2. of those, keep the ones whose maps change once the decoder is randomised, if any does: mean
   Spearman ρ of |R| below 0.5 beyond what the distance to the target predicts
   (``spearman_partial`` of ``explain.sanity``; the plain ρ of every method, a random network's
   included, stays high because relevance stays near its target);
3. choose the highest MoRF AOPC.

The images must not be the ones a result will be reported on: ``endoxai evaluate-explanations
--run RUN --search-composites`` uses the run's ``split.json`` validation ids, which for a run
trained with ``data.holdout`` are held-out *training* images.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from endoxai.errors import UserError
from endoxai.explain.composites import COMPOSITES, CONVOLUTIONS, Composite, NameMap
from endoxai.explain.faithfulness import FaithfulnessResult, FaithfulnessSettings
from endoxai.explain.faithfulness import evaluate_faithfulness
from endoxai.explain.methods import (
    GRADIENT,
    GRADIENT_X_INPUT,
    INTEGRATED_GRADIENTS,
    LRP_PREFIX,
    RANDOM,
)
from endoxai.explain.rules import AlphaBeta, Epsilon, Flat, GeneralizedGamma, WSquare, ZBox
from endoxai.explain.sanity import SanityResult, SanitySettings, evaluate_sanity
from endoxai.fileio import atomic_write_text, json_safe
from endoxai.formatting import fmt, fmt_interval

PREFIX = "search:"
JSON_NAME = "composite_search.json"
TABLE_NAME = "composite_search.md"
LERF_TOLERANCE = 0.10  # the LeRF curve may fall at most 10 % below f_0 over the first half
SANITY_LIMIT = 0.5  # partial Spearman ρ of |R| (given the distance to the target), decoder random
SANITY_STAGE = "decoder"

INPUT_RULES = {"box": ZBox(-1.0, 1.0), "flat": Flat(), "w2": WSquare()}
ENCODER_RULES: dict[str, NameMap] = {
    "gamma": (("down*", GeneralizedGamma(0.25)),),
    "zplus": (("down*", AlphaBeta(1.0, 0.0)),),
    "eps": (("down*", Epsilon(0.1)),),
}
DECODER_RULES: dict[str, NameMap] = {
    "gamma": (("up*", GeneralizedGamma(0.25)),),
    "eps0.01": (("up*", Epsilon(0.01)),),
    "eps0.1": (("up*", Epsilon(0.1)),),
    "eps1": (("up*", Epsilon(1.0)),),
    "epsdepth": (("up[1-4].*", Epsilon(1.0)), ("up[5-7].*", Epsilon(0.1)),
                 ("up8.*", Epsilon(0.01))),
    "zplus": (("up*", AlphaBeta(1.0, 0.0)),),
}
REFERENCES = (GRADIENT, GRADIENT_X_INPUT, INTEGRATED_GRADIENTS, RANDOM)


def candidate_name(input_rule: str, encoder: str, decoder: str) -> str:
    return f"{PREFIX}in-{input_rule}.enc-{encoder}.dec-{decoder}"


def candidates() -> dict[str, Composite]:
    """The grid (module docstring): name -> composite. The decoder and encoder rules are given by
    block name (``up*``, ``down*``), the input layer's by position (the first convolution)."""
    out = {}
    for (i, first), (e, enc), (d, dec) in itertools.product(
            INPUT_RULES.items(), ENCODER_RULES.items(), DECODER_RULES.items()):
        out[candidate_name(i, e, d)] = Composite(
            first_map=((CONVOLUTIONS, first),), name_map=dec + enc,
            layer_map=(((nn.Linear,), Epsilon(1e-6)),),
            description=f"input {i}, encoder {e}, decoder {d}",
            low_precision=True)
    return out


@contextmanager
def registered(composites: Mapping[str, Composite]) -> Iterator[None]:
    """Add ``composites`` to the registry for the duration of the block (so that the evaluation
    code, which names methods ``lrp:<composite>``, can run them); removed again afterwards."""
    clash = sorted(set(composites) & set(COMPOSITES))
    if clash:
        raise ValueError(f"composite name(s) already registered: {', '.join(clash)}")
    COMPOSITES.update(composites)
    try:
        yield
    finally:
        for name in composites:
            COMPOSITES.pop(name, None)


def lerf_fall(curve: Sequence[float]) -> float:
    """The largest fall of a mean LeRF curve below its first point over its first half, as a
    share of that point: ``max(0, max_{k <= K/2} (c_0 - c_k)) / |c_0|``; NaN if ``c_0`` is 0."""
    c = np.asarray(curve, dtype=np.float64)
    if c.size == 0 or c[0] == 0:
        return math.nan
    half = c[: c.size // 2 + 1]
    return float(max(0.0, np.max(c[0] - half)) / abs(c[0]))


def lerf_deviation(curve: Sequence[float]) -> float:
    """How far a mean LeRF curve strays from its first point over its first half, as a share of
    that point: ``max_{k <= K/2} |c_k - c_0| / |c_0|`` (a rise counts as much as a fall: a flat
    curve says what was ranked last did not matter either way); NaN if ``c_0`` is 0."""
    c = np.asarray(curve, dtype=np.float64)
    if c.size == 0 or c[0] == 0:
        return math.nan
    half = c[: c.size // 2 + 1]
    return float(np.max(np.abs(half - c[0])) / abs(c[0]))


def search_composites(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor | None,
    names: Sequence[str],
    settings: FaithfulnessSettings | None = None,
    grid: Mapping[str, Composite] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score ``grid`` (default: ``candidates()``) and the references on ``images`` and choose
    (module docstring). ``settings``: the region perturbation's (its ``methods`` are replaced).
    Returns a JSON-ready dict: ``rows`` (one per method, best MoRF AOPC first), ``chosen`` (a
    candidate's name, or None), ``rule`` (how it was chosen), ``settings`` and ``names``."""
    grid = dict(candidates() if grid is None else grid)
    references = [LRP_PREFIX + name for name in COMPOSITES] + list(REFERENCES)
    methods = [LRP_PREFIX + name for name in grid] + references
    with registered(grid):
        settings = replace(settings or FaithfulnessSettings(), methods=tuple(methods))
        faith = evaluate_faithfulness(model, images, masks, names, settings, progress)
        checks = evaluate_sanity(
            model, images, names,
            SanitySettings(methods=tuple(m for m in methods if m != RANDOM), cascade=False,
                           independent=(SANITY_STAGE,), batch_size=settings.batch_size,
                           seed=settings.seed),
            progress)
    rows = _rows(faith, checks, grid)
    chosen, rule = choose(rows)
    return {"rows": rows, "chosen": chosen, "rule": rule,
            "settings": {**faith.settings, "sanity_stage": SANITY_STAGE,
                         "lerf_tolerance": LERF_TOLERANCE, "sanity_limit": SANITY_LIMIT},
            "names": [image["name"] for image in faith.images], "skipped": faith.skipped}


def _rows(faith: FaithfulnessResult, checks: SanityResult,
          grid: Mapping[str, Composite]) -> list[dict[str, Any]]:
    summary = faith.summary()
    sanity = checks.summary().get(SANITY_STAGE, {})
    gradient = summary[GRADIENT]["aopc_morf"]
    per_image = {m: [image["methods"][m]["aopc_morf"] for image in faith.images]
                 for m in summary}
    rows = []
    for method, s in summary.items():
        composite = method[len(LRP_PREFIX):] if method.startswith(LRP_PREFIX) else None
        rho = sanity.get(method, {}).get("spearman", {})
        partial = sanity.get(method, {}).get("spearman_partial", {})
        rows.append({
            "method": method,
            "candidate": composite in grid,
            "description": _description(composite, grid),
            "aopc_morf": s["aopc_morf"], "aopc_morf_sem": s["aopc_morf_sem"],
            "aopc_lerf": s["aopc_lerf"], "abpc": s["abpc"],
            "morf_vs_gradient": (s["aopc_morf"] / gradient if gradient else None),
            "better_than_gradient": int(sum(a > b for a, b in zip(per_image[method],
                                                                   per_image[GRADIENT]))),
            "lerf_fall": lerf_fall(s["curve_lerf"]),
            "lerf_deviation": lerf_deviation(s["curve_lerf"]),
            "rho_decoder": rho.get("mean"), "rho_decoder_low": rho.get("low"),
            "rho_decoder_high": rho.get("high"),
            "partial_rho_decoder": partial.get("mean"),
            "partial_rho_decoder_low": partial.get("low"),
            "partial_rho_decoder_high": partial.get("high"),
            "mass_accuracy": s["mass_accuracy"],
        })
    rows.sort(key=lambda r: -(r["aopc_morf"] if r["aopc_morf"] is not None else -math.inf))
    return rows


def _description(composite: str | None, grid: Mapping[str, Composite]) -> str:
    found = None if composite is None else grid.get(composite) or COMPOSITES.get(composite)
    return found.description if found is not None else ""


def choose(rows: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The chosen candidate's method name (``lrp:search:...``) and the rule that chose it."""
    pool = [r for r in rows if r["candidate"] and r["aopc_morf"] is not None]
    flat = [r for r in pool if r["lerf_fall"] is not None and r["lerf_fall"] <= LERF_TOLERANCE]
    if not flat:
        return None, f"every candidate's LeRF curve falls more than {LERF_TOLERANCE:.0%} below f_0"
    sane = [r for r in flat if r.get("partial_rho_decoder") is not None
            and r["partial_rho_decoder"] < SANITY_LIMIT]
    if sane:
        best = max(sane, key=lambda r: r["aopc_morf"])
        return best["method"], (f"highest MoRF AOPC of the {len(sane)} candidate(s) whose LeRF "
                                f"curve stays high and partial ρ(decoder) < {SANITY_LIMIT}")
    best = max(flat, key=lambda r: r["aopc_morf"])
    return best["method"], (f"highest MoRF AOPC of the {len(flat)} candidate(s) whose LeRF curve "
                            f"stays high; none had partial ρ(decoder) < {SANITY_LIMIT}")


def format_search_table(result: Mapping[str, Any], limit: int | None = None) -> str:
    """Markdown table of the rows (best MoRF AOPC first; ``limit`` rows at most, the references
    always shown) and the choice."""
    rows = list(result["rows"])
    shown = [r for r in rows if not r["candidate"]]
    candidates_ = [r for r in rows if r["candidate"]]
    shown += candidates_[:limit] if limit else candidates_
    shown.sort(key=lambda r: -(r["aopc_morf"] if r["aopc_morf"] is not None else -math.inf))
    lines = ["| method | MoRF AOPC ↑ | × gradient | > gradient on | LeRF AOPC | LeRF fall / off "
             "f_0, first half | ρ(\\|R\\|), decoder randomised | the same, beyond distance ↓ |",
             "|---|---|---|---|---|---|---|---|"]
    n = len(result["names"])
    for r in shown:
        name = f"**{r['method']}**" if r["method"] == result["chosen"] else r["method"]
        rho, partial = (_interval(r, key) for key in ("rho_decoder", "partial_rho_decoder"))
        lines.append(f"| {name} | {fmt(r['aopc_morf'], 2)} ± {fmt(r['aopc_morf_sem'], 2)} | "
                     f"{fmt(r['morf_vs_gradient'], 2)} | {r['better_than_gradient']}/{n} | "
                     f"{fmt(r['aopc_lerf'], 2)} | {_percent(r['lerf_fall'])} / "
                     f"{_percent(r['lerf_deviation'])} | {rho} | {partial} |")
    lines.append("")
    lines.append(f"Chosen: {result['chosen'] or 'none'} ({result['rule']}).")
    return "\n".join(lines)


def _interval(row: Mapping[str, Any], key: str) -> str:
    return fmt_interval(row.get(key), row.get(key + "_low"), row.get(key + "_high"))


def _percent(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.0f} %"


def search_composites_files(
    checkpoint: str | Path,
    data: str | Path | None,
    output_dir: str | Path,
    split_file: str | Path | None = None,
    n_images: int = 16,
    settings: FaithfulnessSettings | None = None,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, Any], dict[str, Path]]:
    """``search_composites`` for the generator in ``checkpoint`` on the images ``choose_images``
    picks; writes ``composite_search.json`` (everything, with the checkpoint, dataset, split file
    and image ids) and ``composite_search.md`` (the table) into ``output_dir``."""
    from endoxai.explain.faithfulness_files import choose_images

    chosen = choose_images(checkpoint, data, split_file, n_images, progress, device)
    try:
        result = search_composites(chosen.model, chosen.images, chosen.masks, chosen.names,
                                   settings, progress=progress)
    except ValueError as err:
        raise UserError(str(err)) from err
    result["skipped"] = chosen.skipped + result["skipped"]
    result["settings"].update(checkpoint=str(checkpoint), dataset=chosen.dataset,
                              split_file=None if split_file is None else str(split_file))
    out = Path(output_dir)
    paths = {"json": out / JSON_NAME, "md": out / TABLE_NAME}
    atomic_write_text(paths["json"], json.dumps(json_safe(result), indent=1) + "\n")
    atomic_write_text(paths["md"], format_search_table(result) + "\n")
    return result, paths
