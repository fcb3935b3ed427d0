"""The bundled model scores what docs/model-card.md says on the 120 Kvasir-SEG validation images.

The card is the single source of the numbers: this test reads them from its scores table and
re-measures them the way the card's commands do (``endoxai predict --precision fp32`` at each
image's original resolution, then ``endoxai evaluate``'s MedAI-official per-image means).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from endoxai.evaluate import evaluate_folders
from endoxai.predict import predict_files
from endoxai.weights import bundled_path

REPO = Path(__file__).resolve().parents[2]
MODEL_CARD = REPO / "docs" / "model-card.md"
TOLERANCE = 0.002  # what "the model card's numbers" may drift by (rounding to 3 places: 0.0005)
METRICS = {"Dice": "dice", "Jaccard": "jaccard", "precision": "precision", "recall": "recall"}
N_VALIDATION = 120


def card_scores(text: str) -> dict[str, float]:
    """{metric: value} from the rows ``| Dice | 0.812 | 0.56 |`` (first value column) of the
    card's section ``## Segmentation scores``; rows still holding a placeholder are left out."""
    section = re.search(r"^## Segmentation scores\n(.*?)(?=^## |\Z)", text,
                        re.MULTILINE | re.DOTALL)
    text = section.group(1) if section else ""
    scores = {}
    for label, key in METRICS.items():
        match = re.search(rf"^\|\s*{label}\s*\|\s*([^|]*?)\s*\|", text, re.MULTILINE)
        if match and re.fullmatch(r"\d+\.\d+", match.group(1)):
            scores[key] = float(match.group(1))
    return scores


def test_card_scores_are_read_from_the_table_only():
    text = ("## CPU\n| recall | 0.5 |\n## Segmentation scores\nDice 0.9 in a sentence\n"
            "| metric | bundled | paper |\n|---|---|---|\n| Dice | 0.812 | 0.56 |\n"
            "| Jaccard | **fill in** | 0.46 |\n| precision | 0.801 | 0.59 |\n## Speed\n"
            "| recall | 0.7 |\n")
    assert card_scores(text) == {"dice": 0.812, "precision": 0.801}
    card = MODEL_CARD.read_text()  # the card's scores table has a row for every metric
    section = card[card.index("## Segmentation scores"):]
    for label in METRICS:
        assert re.search(rf"^\|\s*{label}\s*\|", section, re.MULTILINE), label


@pytest.mark.slow
def test_the_bundled_model_scores_what_the_model_card_says(kvasir_seg, tmp_path):
    weights = bundled_path()
    if not weights.is_file():
        pytest.skip(f"no bundled model at {weights}")
    claimed = card_scores(MODEL_CARD.read_text())
    assert set(claimed) == set(METRICS.values()), (
        f"{MODEL_CARD} lacks measured values for {sorted(set(METRICS.values()) - set(claimed))}: "
        "fill its scores table with the numbers of its commands")
    ids = (kvasir_seg / "val.txt").read_text().split()
    assert len(ids) == N_VALIDATION
    summary = predict_files(weights, kvasir_seg / "images", tmp_path / "masks", precision="fp32",
                            device="cpu", progress=False, ids=ids)
    assert not summary.failures and len(summary.written) == N_VALIDATION
    result = evaluate_folders(tmp_path / "masks", kvasir_seg / "masks", progress=False, ids=ids)
    measured = result.summary["medai"]
    assert measured["n_images"] == N_VALIDATION
    for key, value in claimed.items():
        assert abs(measured[key] - value) <= TOLERANCE, (
            f"MedAI {key} {measured[key]:.4f} measured, {value} in {MODEL_CARD.name}")
