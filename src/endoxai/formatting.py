"""How numbers read in tables, reports and CSV files: fixed decimals, an em dash when undefined,
mean±error, mean [low, high]; ``nan`` in CSV."""

from __future__ import annotations

import math


def fmt(value: float | None, digits: int = 3) -> str:
    """A score for a table cell: ``digits`` decimals, an em dash when None or NaN."""
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def fmt_pm(mean: float | None, sem: float | None, digits: int = 3) -> str:
    """``mean±sem`` (standard error), or the mean alone when there is no error (one image)."""
    return fmt(mean, digits) + ("" if sem is None else f"±{sem:.{digits}f}")


def fmt_interval(mean: float | None, low: float | None, high: float | None, digits: int = 2,
                 mean_digits: int | None = None) -> str:
    """``mean [low, high]`` (a confidence interval), or the mean alone when there is no interval
    (one image); ``mean_digits`` decimals for the mean (default ``digits``)."""
    head = fmt(mean, digits if mean_digits is None else mean_digits)
    if low is None:
        return head
    return f"{head} [{fmt(low, digits)}, {fmt(high, digits)}]"


def fmt_csv(value: float | None) -> str:
    """A number for a CSV cell: 6 significant digits, ``nan`` when None or NaN (what spreadsheets
    and pandas read back as missing)."""
    return "nan" if value is None or math.isnan(value) else f"{value:.6g}"
