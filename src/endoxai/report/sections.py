"""The report's sections, in page order: each turns ``ReportNumbers`` into an HTML fragment.

To add a section: compute what it shows in ``report.numbers`` (a field of ``ReportNumbers``, or
of ``GalleryEntry`` for something per gallery image), write a function ``(numbers, pictures) ->
str`` here that escapes every text with ``esc`` and writes its PNGs through ``pictures``, and list
it in ``SECTIONS``. Give its ``<h2>`` an ``id`` so the page can be linked to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np

from endoxai import __version__
from endoxai.explain.methods import RANDOM
from endoxai.explain.sanity_files import KEY_STAGE
from endoxai.formatting import fmt, fmt_interval, fmt_pm
from endoxai.report.history import best_epoch, training_curves_figure
from endoxai.report.numbers import GalleryEntry, ReportNumbers
from endoxai.report.page import (
    METRIC_COLUMNS,
    GalleryItem,
    Panel,
    esc,
    gallery_card,
    image,
    swatch,
    table,
)
from endoxai.report.pictures import Pictures
from endoxai.viz import error_overlay, heatmap_rgb, overlay_heatmap, overlay_mask
from endoxai.viz.faithfulness import faithfulness_figure
from endoxai.viz.flow import flow_figure
from endoxai.viz.sanity import sanity_figure
from endoxai.viz.overlays import FN_COLOUR, FP_COLOUR, TP_COLOUR

# Table 2 of Ahmed & Ali (2021): their results on the MedAI 2021 challenge *test* set.
PAPER_TABLE2 = {
    "polyp": {"accuracy": 0.84, "jaccard": 0.46, "dice": 0.56, "recall": 0.64, "precision": 0.59},
    "instrument": {"accuracy": 0.96, "jaccard": 0.70, "dice": 0.80, "recall": 0.80,
                   "precision": 0.80},
}
TASK_OF_LAYOUT = {"kvasir-seg": "polyp", "kvasir-instrument": "instrument"}
TRUTH_COLOUR = TP_COLOUR  # the colour of what is truly there, as in the prediction's overlay
LAYER_MIN_PX = 64  # deep blocks (down8 is 1x1 at 256²) are enlarged by repeating pixels


def report_title(numbers: ReportNumbers) -> str:
    """The run folder's name, or the model file's without a run."""
    if numbers.run_dir is not None:
        return numbers.run_dir.resolve().name
    return numbers.checkpoint.name


def header(numbers: ReportNumbers, pictures: Pictures) -> str:
    run_dir, config, history = numbers.run_dir, numbers.config, numbers.history
    best = best_epoch(history)
    trained = f"{len(history)} of {config.train.epochs} epochs in history.csv" if history else \
        "no history.csv"
    if run_dir is None:
        source = [("model", str(numbers.checkpoint.resolve()))]
    else:
        source = [("run", str(run_dir.resolve())),
                  ("checkpoint", f"best.pt (epoch {best}, the highest validation Dice; {trained})"
                   if best is not None else f"best.pt ({trained})")]
    listed = "split.json" if run_dir is not None else "the dataset's validation list"
    failures = numbers.failures
    facts = [
        *source,
        ("data", f"{numbers.dataset} ({numbers.layout}); {len(numbers.stems)} validation images "
         f"from {listed}" + (f", {len(failures)} unreadable and skipped" if failures else "")),
        ("model input", f"{config.data.image_size}×{config.data.image_size}, mask = logit > 0"),
        ("explanations", f"LRP composite {numbers.composite}, target = predicted mask, "
         "start = logits"),
        ("generated", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by endoxai {__version__}"),
    ]
    rows = [[esc(k), esc(v)] for k, v in facts]
    skipped = ""
    if failures:
        skipped = "<p class=\"bad\">Skipped: " + "; ".join(esc(f) for f in failures) + "</p>"
    return (f"<h1>endoxai report — {esc(report_title(numbers))}</h1>"
            "<p class=\"sub\">Segmentation with a pix2pix GAN, explained with layer-wise relevance "
            "propagation. Static page: no server, no network.</p>"
            + table(["", ""], rows, table_id="table-run", text_columns=(0, 1)) + skipped
            + f"<details><summary>config.toml</summary><pre>{esc(config.to_toml())}</pre>"
              "</details>")


def metrics(numbers: ReportNumbers, pictures: Pictures) -> str:
    task = TASK_OF_LAYOUT.get(numbers.layout)
    scores_of = numbers.metrics
    n = scores_of["medai"]["n_images"]
    rows, classes = [], []
    for key, label in (("medai", f"this run — MedAI protocol, mean of {n} images"),
                       ("pooled", "this run — pooled over all pixels")):
        rows.append([esc(label)] + [fmt(scores_of[key][k]) for k, _ in METRIC_COLUMNS])
        classes.append("ours")
    for name, scores in PAPER_TABLE2.items():
        rows.append([esc(f"paper, Table 2 — {name} (MedAI test set)")]
                    + [fmt(scores[k], 2) for k, _ in METRIC_COLUMNS])
        classes.append("relevant" if name == task else "")
    return ("<h2 id=\"metrics\">Segmentation metrics</h2>"
            + table(["", *(label for _, label in METRIC_COLUMNS)], rows, classes,
                    table_id="table-metrics")
            + "<p class=\"note\">This run: the validation split of <code>split.json</code>, scored "
              "at each image's original resolution (the mask is the logit upsampled bilinearly, "
              "then > 0, as <code>endoxai predict</code> writes it) with the official MedAI 2021 "
              "evaluator's protocol: per-image scores, both masks inverted when the ground truth "
              "is empty, then the mean. Pooled: counts summed over all pixels first. The paper's "
              "numbers (Ahmed &amp; Ali 2021, Table 2) were measured by the challenge organisers "
              "on the MedAI 2021 <em>test</em> set, which is not public: the comparison is "
              "indicative, not like for like."
            + (f" The highlighted row is the {esc(task)} task of this dataset." if task else "")
            + "</p>")


def training_curves(numbers: ReportNumbers, pictures: Pictures) -> str:
    head = "<h2 id=\"training\">Training curves</h2>"
    if not numbers.history:
        return head + "<p class=\"note\">No <code>history.csv</code> in the run folder.</p>"
    train = numbers.config.train
    src = pictures.figure("training_curves", training_curves_figure(
        numbers.history, train.l1_weight, train.seg_weight))
    return (head + "<figure>" + image(src, "training curves: generator and discriminator losses "
                                      "and validation scores per epoch", "plot") + "</figure>"
            + "<p class=\"note\">Epoch means of the training losses; validation scores at model "
              "resolution after each epoch (the numbers training used to pick best.pt).</p>")


def gallery(numbers: ReportNumbers, pictures: Pictures) -> str:
    items = [_gallery_item(entry, numbers, pictures) for entry in numbers.gallery]
    head = (f"<h2 id=\"gallery\">Gallery: the {len(items)} validation images with the lowest "
            f"Dice (of {len(numbers.stems)})</h2>")
    legend = ("<p class=\"note\">Prediction:" + swatch(TP_COLOUR, "true positive")
              + swatch(FP_COLOUR, "false positive") + swatch(FN_COLOUR, "false negative")
              + ". Relevance (LRP, composite " + esc(numbers.composite) + "): red = evidence for "
              "the predicted foreground, blue = against, white = 0; every map on its own "
              "symmetric scale ±max|R|. Small maps: relevance at the output of each generator "
              "block, summed over its channels (down1..down8 encoder, up1..up8 decoder). Panels "
              "are at model resolution; scores at the original resolution.</p>")
    if not items:
        return head + "<p class=\"note\">Gallery disabled (--max-images 0).</p>"
    return head + legend + "\n".join(gallery_card(item) for item in items)


def _anchor(entry: GalleryEntry) -> str:
    return f"g{entry.rank:03d}"


def _gallery_item(entry: GalleryEntry, numbers: ReportNumbers,
                  pictures: Pictures) -> GalleryItem:
    stem, base, picture = entry.stem, _anchor(entry), entry.image
    src = {key: pictures.array(f"{base}_{key}", array) for key, array in {
        "image": picture,
        "truth": overlay_mask(picture, entry.truth, TRUTH_COLOUR, alpha=0.45),
        "prediction": error_overlay(picture, entry.pred, entry.truth),
        "relevance": heatmap_rgb(entry.relevance),
        "overlay": overlay_heatmap(picture, entry.relevance),
    }.items()}
    empty = "" if entry.pred.any() else " (empty prediction: nothing to explain)"
    panels = [
        Panel(src["image"], "image (model input)", f"{stem}: image"),
        Panel(src["truth"], "ground truth", f"{stem}: ground truth"),
        Panel(src["prediction"], "prediction: TP / FP / FN", f"{stem}: prediction errors"),
        Panel(src["relevance"], f"input relevance, ΣR = {entry.relevance.sum():.3g}{esc(empty)}",
              f"{stem}: input relevance"),
        Panel(src["overlay"], "relevance over the image", f"{stem}: relevance overlay"),
    ]
    layers = []
    for name, ((channels, h, w), layer_map) in entry.layers.items():
        layer_src = pictures.array(f"{base}_layer_{name}", _enlarge(heatmap_rgb(layer_map)))
        layers.append(Panel(layer_src, f"{esc(name)} {channels}×{h}×{w}<br>ΣR "
                            f"{layer_map.sum():.3g}", f"{stem}: relevance at {name}"))
    scores = {k: float(v[entry.index]) for k, v in numbers.per_image.items()}
    return GalleryItem(entry.rank, base, stem, scores, float(entry.truth.mean()),
                       float(entry.pred.mean()), panels, layers)


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(LAYER_MIN_PX / max(rgb.shape[:2])))
    return rgb.repeat(factor, 0).repeat(factor, 1) if factor > 1 else rgb


def per_image(numbers: ReportNumbers, pictures: Pictures) -> str:
    anchors = {entry.stem: _anchor(entry) for entry in numbers.gallery}
    scores = numbers.per_image
    rows = []
    for rank, i in enumerate(numbers.order, start=1):
        stem = numbers.stems[i]
        name = (f'<a href="#{esc(anchors[stem])}">{esc(stem)}</a>' if stem in anchors
                else esc(stem))
        rows.append([str(rank), name, fmt(scores["dice"][i])]
                    + [fmt(scores[k][i]) for k, _ in METRIC_COLUMNS if k != "dice"]
                    + [f"{100 * numbers.truth_share[i]:.1f}",
                       f"{100 * numbers.pred_share[i]:.1f}"])
    header_row = ["rank", "image", "Dice", *(label for k, label in METRIC_COLUMNS if k != "dice"),
                  "truth %", "predicted %"]
    return ("<h2 id=\"per-image\">Every validation image, worst Dice first</h2>"
            + table(header_row, rows, table_id="table-per-image", text_columns=(1,))
            + "<p class=\"note\">MedAI per-image scores at the original resolution; foreground "
              "shares at model resolution.</p>")


def faithfulness(numbers: ReportNumbers, pictures: Pictures) -> str:
    head = "<h2 id=\"faithfulness\">Do the explanations tell the truth?</h2>"
    faith, path = numbers.faithfulness, numbers.faithfulness_path
    if faith is None:
        return head + ("<p class=\"note\">No faithfulness results: run <code>endoxai "
                       "evaluate-explanations --run RUN</code> (writes RUN/faithfulness, which "
                       "this report picks up) or pass <code>--faithfulness DIR</code>.</p>")
    summary, settings = faith["summary"], faith["settings"]
    src = pictures.figure("faithfulness_curves",
                          faithfulness_figure(summary, faith["fractions"], floor=RANDOM))
    rows = []
    for method, s in summary.items():
        rows.append([esc(method), str(s.get("n_images", "")),
                     fmt_pm(s.get("aopc_morf"), s.get("aopc_morf_sem")),
                     fmt_pm(s.get("aopc_lerf"), s.get("aopc_lerf_sem")), fmt(s.get("abpc")),
                     _interval(s, "aopc_dice_morf"), _interval(s, "aopc_dice_lerf"),
                     fmt(s.get("mass_accuracy")), fmt(s.get("pointing_game")),
                     fmt(s.get("seconds"), 1)])
    n = len(faith.get("images", []))
    described = (f"{n} validation image(s), {settings.get('patch')} px patches, "
                 f"{settings.get('steps')} steps up to {100 * settings.get('fraction', 0):.0f}% "
                 f"of the image, baseline {settings.get('baseline')}, integrated gradients with "
                 f"{settings.get('ig_steps')} steps")
    return (head + "<p class=\"note\">Region perturbation (Samek et al. 2017): patches are "
            "replaced by the baseline in the order each method ranks them, and the explained score "
            "(Σ logit over the originally predicted mask) is tracked; curves show it as the mean "
            "logit over those pixels. AOPC = its mean drop over the steps, in logits: higher for "
            "MoRF (most relevant first) and lower for LeRF (least relevant first) is better, "
            "negative = the perturbation raised the score; ABPC = AOPC MoRF − AOPC LeRF. Dice "
            "AOPC: the same perturbations scored by the Dice of the perturbed prediction against "
            "the unperturbed one, i.e. the mean share of the predicted region lost (with its 95 % "
            "bootstrap interval over the images). Mass "
            "accuracy: share of the positive relevance inside the ground truth; pointing game: is "
            f"the most relevant pixel inside it. {esc(described)}; from "
            f"<code>{esc(path)}</code>.</p>"
            + table(["method", "images", "AOPC MoRF ↑", "AOPC LeRF ↓", "ABPC ↑",
                     "Dice AOPC MoRF ↑", "Dice AOPC LeRF ↓", "mass accuracy ↑",
                     "pointing game ↑", "seconds / image"], rows,
                    table_id="table-faithfulness")
            + "<figure>" + image(src, "mean MoRF and LeRF perturbation curves per method", "plot")
            + "</figure>")


def _interval(summary: dict, key: str) -> str:
    """``mean [low, high]`` of a summarised score, the mean alone without an interval."""
    return fmt_interval(summary.get(key), summary.get(key + "_low"), summary.get(key + "_high"),
                        mean_digits=3)


def skip_flow(numbers: ReportNumbers, pictures: Pictures) -> str:
    head = "<h2 id=\"skip-flow\">Where the relevance crosses the U-Net</h2>"
    flow = numbers.gallery_flow()
    if flow is None:
        return head + "<p class=\"note\">No gallery images, or a model without U-Net skips.</p>"
    summed = flow.summed()
    shares = {key: value[0] for key, value in summed.shares().items()}
    depth = summed.depth
    rows = []
    for k in range(1, depth):
        rows.append([f"down{k}", f"up{depth + 1 - k}", _percent(shares["skip"][k - 1]),
                     _percent(shares["deeper"][k - 1]),
                     _percent(shares["absorbed_decoder"][depth - k])])
    rows.append(["bottleneck", "up1", _percent(shares["bottleneck"]), "",
                 _percent(shares["absorbed_decoder"][0])])
    src = pictures.figure("skip_flow", flow_figure(flow))
    return (head + "<p class=\"note\">LRP splits the relevance arriving at each decoder "
            "concatenation exactly between the skip from the mirrored encoder block and the "
            "upsampled path from deeper in the decoder. Shares of the output relevance, summed "
            f"over the {len(numbers.gallery)} gallery images (composite "
            f"{esc(numbers.composite)}): what enters each encoder level through its skip, what "
            "continues deeper, and what the decoder block reading it absorbed (bias, "
            f"stabiliser). The input keeps {_percent(shares['input'])} of the output's relevance "
            f"(the encoder absorbed {_percent(shares['absorbed_encoder'].sum())}).</p>"
            + table(["encoder level", "read by", "enters through the skip",
                     "continues deeper", "absorbed by the reader"], rows,
                    table_id="table-skip-flow", text_columns=(0, 1))
            + "<figure>" + image(src, "skip flow: share of relevance through each skip", "plot")
            + "</figure>")


def _spread(stats: dict) -> str:
    """``mean [low, high]`` of a ``mean_interval`` record."""
    return fmt_interval(stats.get("mean"), stats.get("low"), stats.get("high"))


def _percent(share) -> str:
    value = float(share)
    return "—" if math.isnan(value) else f"{100 * value:.1f} %"


def sanity(numbers: ReportNumbers, pictures: Pictures) -> str:
    head = "<h2 id=\"sanity\">Do the explanations depend on the weights?</h2>"
    checks, path = numbers.sanity, numbers.sanity_path
    if checks is None:
        return head + ("<p class=\"note\">No sanity-check results: run <code>endoxai "
                       "evaluate-explanations --run RUN --sanity</code> (writes "
                       "RUN/faithfulness/sanity.json, which this report picks up).</p>")
    summary, stages = checks["summary"], checks["stages"]
    columns = [s["name"] for s in stages if s["kind"] != "cascade"]
    cascade = [s["name"] for s in stages if s["kind"] == "cascade"]
    columns += cascade[-1:]
    labels = [f"{c} only" if c not in cascade else f"all blocks (to {c})" for c in columns]
    methods = list(next(iter(summary.values()))) if summary else []
    partial = KEY_STAGE in summary
    rows = [[esc(m)] + [_spread(summary[c][m]["spearman"]) for c in columns]
            + ([_spread(summary[KEY_STAGE][m].get("spearman_partial", {}))] if partial else [])
            for m in methods]
    src = pictures.figure("sanity", sanity_figure(summary, stages))
    return (head + "<p class=\"note\">Randomisation sanity checks (Adebayo et al. 2018): the "
            "generator's blocks are randomised from the output inward (up8, then up7, ... down1) "
            "and the encoder, decoder and skip-reading weights on their own, and each method's "
            "map is compared with the trained model's: Spearman rank correlation of |R| (table; "
            "mean and 95 % bootstrap interval over "
            f"{len(checks.get('names', []))} image(s)) and SSIM (figure). 1 = unchanged; a map "
            "that stays near 1 did not depend on the randomised weights. A U-Net's relevance "
            "stays near its target whatever the weights, so the last column takes out what the "
            "distance to the target alone predicts (partial ρ). From "
            f"<code>{esc(path)}</code>.</p>"
            + table(["method", *(f"ρ, {label}" for label in labels)]
                    + (["ρ beyond distance, decoder only"] if partial else []), rows,
                    table_id="table-sanity")
            + "<figure>" + image(src, "similarity to the trained model's maps vs randomised "
                                 "depth", "plot") + "</figure>")


Section = Callable[[ReportNumbers, Pictures], str]
SECTIONS: tuple[Section, ...] = (header, metrics, training_curves, gallery, per_image,
                                 faithfulness, sanity, skip_flow)
