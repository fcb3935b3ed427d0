"""Static HTML report of a training run: metrics next to the paper, curves, gallery, faithfulness.

``build_report(run_dir, output_dir)`` writes ``output_dir/index.html`` and its images in
``output_dir/img/``; the page needs no server, no network and no JavaScript.
"""

from endoxai.report.build import ReportSummary, build_report
from endoxai.report.sections import PAPER_TABLE2

__all__ = ["PAPER_TABLE2", "ReportSummary", "build_report"]
