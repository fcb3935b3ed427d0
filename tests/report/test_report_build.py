"""`endoxai report` without a browser: the page's structure, its images, its numbers (checked
against `endoxai predict` + `endoxai evaluate` on the same images), history reading, errors."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from endoxai.cli import main
from endoxai.report import PAPER_TABLE2, build_report
from endoxai.report.history import best_epoch, read_history, training_curves_figure

# Tests using the built report are slow: the session fixture explains 3 images with a 54 M
# parameter generator (about 10 s once).
slow = pytest.mark.slow

class PageParser(HTMLParser):
    """Collects img sources, table rows per table id, gallery card ids, links and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.cards: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "table":
            self._table = a.get("id", "")
            self.rows[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "section" and "card" in a.get("class", ""):
            self.cards.append(a["id"])
        elif tag in ("a", "link") and "href" in a:
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def parsed(built_report) -> PageParser:
    parser = PageParser()
    parser.feed((built_report.out / "index.html").read_text(encoding="utf-8"))
    return parser


@slow
def test_page_is_self_contained(built_report, parsed):
    text = (built_report.out / "index.html").read_text(encoding="utf-8")
    assert "script" not in parsed.tags and "iframe" not in parsed.tags
    assert not re.search(r"(https?:)?//[a-z]", text.replace("http://www.w3.org", ""))
    for href in parsed.links:
        assert href.startswith(("#", "data:")), href
    assert parsed.images
    for src in parsed.images:
        path = built_report.out / src
        assert not Path(src).is_absolute() and path.is_file(), src
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@slow
def test_tables_have_the_expected_rows(built_report, parsed):
    val = built_report.run.val  # the run's validation ids, as the fixture wrote them
    metrics = parsed.rows["table-metrics"]
    assert [row[0] for row in metrics] == [
        f"this run — MedAI protocol, mean of {len(val)} images",
        "this run — pooled over all pixels",
        "paper, Table 2 — polyp (MedAI test set)",
        "paper, Table 2 — instrument (MedAI test set)"]
    assert metrics[2][1:] == ["0.84", "0.46", "0.56", "0.64", "0.59"]
    assert metrics[3][1:] == ["0.96", "0.70", "0.80", "0.80", "0.80"]
    per_image = parsed.rows["table-per-image"]
    assert len(per_image) == len(val) and sorted(r[1] for r in per_image) == sorted(val)
    dice = [float(r[2]) for r in per_image]
    assert dice == sorted(dice)  # worst first
    assert [r[0] for r in parsed.rows["table-faithfulness"]] == list(built_report.run.faith_methods)
    assert [r[0] for r in parsed.rows["table-sanity"]] == list(built_report.run.sanity_methods)


@slow
def test_sanity_and_skip_flow_sections(built_report, parsed):
    from endoxai.explain.sanity_files import read_sanity
    from endoxai.report.numbers import compute_numbers

    assert built_report.summary.sanity == built_report.run.run / "faithfulness" / "sanity.json"
    checks = read_sanity(built_report.summary.sanity)
    sanity_rows = parsed.rows["table-sanity"]
    decoder = checks["summary"]["decoder"]["gradient"]["spearman"]
    assert sanity_rows[0][2].startswith(f"{decoder['mean']:.2f} [{decoder['low']:.2f}, ")
    # The skip-flow table: one row per encoder level plus the bottleneck; the shares of what
    # enters the skips, the bottleneck and every decoder block's absorption add up to 100 %.
    flow_rows = parsed.rows["table-skip-flow"]
    assert [r[0] for r in flow_rows] == [f"down{k}" for k in range(1, 8)] + ["bottleneck"]
    assert [r[1] for r in flow_rows] == [f"up{j}" for j in range(8, 0, -1)]
    total = sum(float(r[2].rstrip(" %")) + float(r[4].rstrip(" %")) for r in flow_rows)
    assert total == pytest.approx(100, abs=0.1 * len(flow_rows))
    # the rows show the gallery images' ledgers summed: recomputed here without the page
    numbers = compute_numbers(built_report.run.run / "best.pt", None,
                              built_report.run.run / "split.json",
                              max_images=built_report.run.gallery, batch_size=2, progress=False)
    shares = numbers.gallery_flow().summed().shares()
    assert flow_rows[0][2] == f"{100 * float(shares['skip'][0, 0]):.1f} %"
    assert flow_rows[-1][2] == f"{100 * float(shares['bottleneck'][0]):.1f} %"

@slow
def test_gallery_is_the_worst_images_with_all_panels(built_report, parsed):
    gallery = built_report.run.gallery  # the --max-images the report was built with
    assert parsed.cards == [f"g{k:03d}" for k in range(1, gallery + 1)]
    per_image = parsed.rows["table-per-image"]
    # the gallery shows the first rows of the worst-first table, and links to them
    for k, row in enumerate(per_image[:gallery], start=1):
        assert f"#g{k:03d}" in parsed.links
    html = (built_report.out / "index.html").read_text(encoding="utf-8")
    for stem in (r[1] for r in per_image[:gallery]):
        assert f"<code>{stem}</code>" in html
    layer_images = [s for s in parsed.images if "_layer_" in s]
    assert len(layer_images) == gallery * 16
    assert len([s for s in parsed.images if s.endswith("_prediction.png")]) == gallery
    assert built_report.summary.n_gallery == gallery
    assert built_report.summary.n_images == len(built_report.run.val)


@slow
def test_metrics_match_predict_then_evaluate(built_report, tmp_path):
    """The report's numbers equal `endoxai predict` + `endoxai evaluate` on the same images."""
    from endoxai.evaluate import evaluate_folders
    from endoxai.predict import predict_files

    run, data = built_report.run.run, built_report.run.data
    images = tmp_path / "val_images"
    truth = tmp_path / "val_masks"
    images.mkdir()
    truth.mkdir()
    for stem in built_report.run.val:
        (images / f"{stem}.jpg").write_bytes((data / "images" / f"{stem}.jpg").read_bytes())
        (truth / f"{stem}.png").write_bytes((data / "masks" / f"{stem}.png").read_bytes())
    predict_files(run / "best.pt", images, tmp_path / "pred", device="cpu", progress=False)
    expected = evaluate_folders(tmp_path / "pred", truth, progress=False).summary
    got = built_report.summary.metrics
    for protocol in ("medai", "pooled"):
        for key in ("accuracy", "jaccard", "dice", "recall", "precision"):
            assert got[protocol][key] == pytest.approx(expected[protocol][key], abs=1e-9)


def test_paper_table():
    assert PAPER_TABLE2["polyp"] == {"accuracy": 0.84, "jaccard": 0.46, "dice": 0.56,
                                     "recall": 0.64, "precision": 0.59}
    assert set(PAPER_TABLE2["instrument"].values()) == {0.96, 0.70, 0.80}


def test_history_reading_and_best_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss_g,val_dice\n1,3.0,0.2\n2,2.5,0.5\n3,,0.5\n")
    rows = read_history(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and math.isnan(rows[2]["loss_g"])
    assert best_epoch(rows) == 2  # the first of equal scores, as training keeps best.pt
    assert read_history(tmp_path / "missing.csv") == [] and best_epoch([]) is None
    fig = training_curves_figure(rows)
    assert len(fig.axes) == 3 and fig.axes[0].get_lines()
    assert _curves(fig.axes[2]) == ["dice"]


def _curves(ax) -> list[str]:
    """Labels of the plotted series (matplotlib names unlabelled artists such as the best-epoch
    marker "_child<n>")."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


@pytest.mark.parametrize(("column", "label"), [
    ("fit_dice", "dice, training images"),  # train.fit_images
    ("val_dice_trained", "dice, trained weights"),  # train.ema_decay: val_dice is the average's
])
def test_training_curves_draw_a_second_dice_beside_the_validation_dice(tmp_path, column, label):
    # the first epoch's cell is empty, as in a run whose resume added the column
    path = tmp_path / "history.csv"
    path.write_text(f"epoch,loss_g,val_dice,{column}\n1,3.0,0.2,\n2,2.5,0.5,0.7\n")
    fig = training_curves_figure(read_history(path))
    lines = {line.get_label(): line for line in fig.axes[2].get_lines()}
    assert _curves(fig.axes[2]) == ["dice", label]
    values = lines[label].get_ydata()
    assert np.isnan(values[0]) and values[1] == 0.7


@slow
def test_report_without_faithfulness_or_history(built_report, tmp_path):
    run = built_report.run.run
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("best.pt", "split.json"):
        (bare / name).symlink_to(run / name)
    summary = build_report(bare, tmp_path / "out", max_images=0, progress=False)
    html = summary.path.read_text(encoding="utf-8")
    assert summary.faithfulness is None and summary.n_gallery == 0
    assert "No faithfulness results" in html and "No <code>history.csv</code>" in html


@slow
def test_cli(built_report, tmp_path, capsys):
    run = built_report.run.run
    rc = main(["report", "--run", str(run), "--output", str(tmp_path / "r"), "--max-images", "1",
               "--faithfulness", str(run / "faithfulness" / "faithfulness.json")])
    assert rc == 0
    assert "1 of 4 validation images" in capsys.readouterr().out
    assert (tmp_path / "r" / "index.html").is_file()


@slow
@pytest.mark.parametrize("args, message", [
    (["--run", "{tmp}/nope"], "run folder not found"),
    (["--run", "{tmp}"], "split.json not found"),
    (["--run", "{run}", "--faithfulness", "{tmp}/none"], "faithfulness results not found"),
    (["--run", "{run}", "--max-images", "-1"], "--max-images must be >= 0"),
    (["--run", "{run}", "--data", "{tmp}/nodata"], "not found"),
])
def test_cli_user_errors(built_report, tmp_path, capsys, args, message):
    run = built_report.run.run
    args = [a.format(tmp=tmp_path, run=run) for a in args]
    rc = main(["report", *args, "--output", str(tmp_path / "out")])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "index.html").exists()


@slow
def test_faithfulness_json_in_run_is_picked_up(built_report):
    assert built_report.summary.faithfulness == (
        built_report.run.run / "faithfulness" / "faithfulness.json")
    data = json.loads(built_report.summary.faithfulness.read_text())
    assert list(data["summary"]) == list(built_report.run.faith_methods)
    assert np.isfinite(data["summary"]["gradient"]["aopc_morf"])
