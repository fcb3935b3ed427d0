"""The page is its sections in order: a section added to SECTIONS appears where it is listed,
with its pictures beside the page; numbers built by hand, no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import endoxai.report.render as render
from endoxai.config import Config
from endoxai.report.numbers import ReportNumbers
from endoxai.report.page import esc
from endoxai.report.pictures import Pictures
from endoxai.report.sections import per_image


def _numbers(tmp_path: Path) -> ReportNumbers:
    dice = np.array([0.9, 0.2])
    return ReportNumbers(
        run_dir=None, checkpoint=tmp_path / "model.pt", config=Config(), dataset="somewhere",
        layout="folder", composite="epsilon-gamma-box", stems=["a<b", "c"], failures=[],
        metrics={}, per_image={k: dice for k in ("dice", "jaccard", "accuracy", "recall",
                                                 "precision")},
        order=np.argsort(dice), truth_share=np.array([0.1, 0.2]),
        pred_share=np.array([0.3, 0.4]), gallery=[], history=[])


def test_a_listed_section_appears_in_order_with_its_picture(tmp_path, monkeypatch):
    def extra(numbers, pictures):
        src = pictures.array("extra", np.zeros((4, 4, 3), dtype=np.uint8))
        return f'<h2 id="extra">{esc(numbers.stems[0])}</h2><img src="{esc(src)}">'

    monkeypatch.setattr(render, "SECTIONS", (extra, per_image))
    path = render.render_page(_numbers(tmp_path), Pictures(tmp_path / "out"))
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "index.html"
    assert html.index('id="extra"') < html.index('id="per-image"')
    assert "a&lt;b" in html and "<b" not in html.replace("<body", "")  # escaped
    assert (tmp_path / "out" / "img" / "extra.png").read_bytes()[:4] == b"\x89PNG"
    # worst Dice first: "c" (0.2) is rank 1
    assert html.index(">c<") < html.index("a&lt;b</td>")
