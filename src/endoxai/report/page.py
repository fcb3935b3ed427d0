"""The HTML of the report: plain strings with inline CSS, no JavaScript, no external resources.

Everything shown comes in as plain values (numbers, strings, relative image paths); all text is
escaped here, so file names and ids cannot break the page.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from endoxai.formatting import fmt

METRIC_COLUMNS = (("accuracy", "Accuracy"), ("jaccard", "Jaccard"), ("dice", "Dice"),
                  ("recall", "Recall"), ("precision", "Precision"))

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d1d1f; background: #fafafa; line-height: 1.45; }
main { max-width: 1400px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { margin-top: 2.4rem; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6rem 0 1rem; background: #fff; font-size: .92rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f3; } tr.ours td { font-weight: 600; } tr.relevant td { background: #fffbe6; }
td.text, th.text { text-align: left; }
.note { color: #555; font-size: .9rem; max-width: 60rem; }
figure { margin: 0; }
img.plot { max-width: 100%; background: #fff; border: 1px solid #ddd; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem;
        margin: 1rem 0; }
.card h3 { margin: 0 0 .4rem; font-size: 1.05rem; } .card h3 code { font-size: .95rem; }
.scores { color: #333; font-size: .9rem; margin-bottom: .5rem; }
.panels { display: flex; flex-wrap: wrap; gap: .6rem; }
.panels figure { width: 208px; }
.panels img { width: 208px; height: 208px; border: 1px solid #ddd; }
figcaption { font-size: .8rem; color: #444; text-align: center; }
.layers { display: grid; grid-template-columns: repeat(8, 84px); gap: .35rem; margin-top: .6rem; }
.layers img { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #eee; }
.layers figcaption { font-size: .7rem; }
.swatch { display: inline-block; width: .9em; height: .9em; vertical-align: -.1em;
          border: 1px solid #999; margin: 0 .2em 0 .6em; }
.bad { color: #b00020; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Panel:
    src: str  # path relative to the page
    caption: str
    alt: str


@dataclass
class GalleryItem:
    rank: int  # 1 = lowest Dice
    anchor: str
    stem: str
    scores: Mapping[str, float]
    truth_share: float  # foreground share of the ground truth, model resolution
    pred_share: float
    panels: list[Panel]
    layers: list[Panel] = field(default_factory=list)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = (),
          table_id: str = "", text_columns: Sequence[int] = ()) -> str:
    """An HTML table; cells must already be escaped (use ``esc``)."""
    def cell(tag: str, i: int, value: str) -> str:
        cls = ' class="text"' if i in text_columns else ""
        return f"<{tag}{cls}>{value}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if r < len(row_classes) and row_classes[r] else ""
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    attr = f' id="{esc(table_id)}"' if table_id else ""
    return (f"<table{attr}><thead><tr>{head}</tr></thead><tbody>" + "".join(body)
            + "</tbody></table>")


def image(src: str, alt: str, cls: str = "", width: int | None = None,
          height: int | None = None) -> str:
    size = (f' width="{width}"' if width else "") + (f' height="{height}"' if height else "")
    cls = f' class="{cls}"' if cls else ""
    return f'<img src="{esc(src)}" alt="{esc(alt)}"{size}{cls}>'


def figure(panel: Panel, cls: str = "") -> str:
    return (f"<figure>{image(panel.src, panel.alt, cls)}"
            f"<figcaption>{panel.caption}</figcaption></figure>")


def swatch(rgb: tuple[int, int, int], label: str) -> str:
    r, g, b = rgb
    return f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>{esc(label)}'


def gallery_card(item: GalleryItem) -> str:
    s = item.scores
    scores = " · ".join(f"{label} {fmt(s.get(key))}" for key, label in METRIC_COLUMNS)
    shares = (f"ground truth {100 * item.truth_share:.1f}% of the image, prediction "
              f"{100 * item.pred_share:.1f}%")
    layers = ""
    if item.layers:
        layers = ('<div class="layers">' + "".join(figure(p) for p in item.layers) + "</div>")
    return (f'<section class="card" id="{esc(item.anchor)}">'
            f"<h3>#{item.rank} <code>{esc(item.stem)}</code></h3>"
            f'<div class="scores">{scores}<br>{esc(shares)}</div>'
            f'<div class="panels">{"".join(figure(p) for p in item.panels)}</div>{layers}'
            "</section>")


def page(title: str, sections: Sequence[str]) -> str:
    """The whole document: no scripts, no external style sheets, fonts or images."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # an empty icon, so no browser asks the file system for a favicon
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            "<body><main>" + "\n".join(sections) + "</main></body></html>\n")
