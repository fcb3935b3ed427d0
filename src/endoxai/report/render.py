"""The report's HTML from its numbers: the page is its sections (``sections.SECTIONS``) in order.

A section is a function ``(numbers, pictures) -> str``: an HTML fragment with every text escaped
(``page.esc``), its PNGs written through ``pictures``.
"""

from __future__ import annotations

from pathlib import Path

from endoxai.fileio import atomic_write_text
from endoxai.report.numbers import ReportNumbers
from endoxai.report.page import page
from endoxai.report.pictures import Pictures
from endoxai.report.sections import SECTIONS, report_title

PAGE_NAME = "index.html"


def render_page(numbers: ReportNumbers, pictures: Pictures) -> Path:
    """Write the page of ``numbers`` beside the folder of ``pictures``; returns its path."""
    pictures.make_folder()
    path = pictures.folder.parent / PAGE_NAME
    atomic_write_text(path, page(f"endoxai report — {report_title(numbers)}",
                                 [section(numbers, pictures) for section in SECTIONS]))
    return path
