"""How numbers read in tables and reports: fixed decimals, an em dash when undefined, mean±error."""

from __future__ import annotations

import math


def fmt(value: float | None, digits: int = 3) -> str:
    """A score for a table cell: ``digits`` decimals, an em dash when None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def fmt_pm(mean: float | None, sem: float | None, digits: int = 3) -> str:
    """``mean±sem`` (standard error), or the mean alone when there is no error (one image)."""
    return fmt(mean, digits) + ("" if sem is None else f"±{sem:.{digits}f}")
