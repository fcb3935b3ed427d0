"""Numbers in tables and CSV cells: decimals, the em dash and ``nan`` for undefined values."""

import math

import numpy as np

from endoxai.formatting import fmt, fmt_csv, fmt_interval, fmt_pm


def test_fmt_decimals_and_undefined():
    assert fmt(0.12345) == "0.123" and fmt(2, 1) == "2.0" and fmt(-0.5, 2) == "-0.50"
    for undefined in (None, math.nan, np.float32("nan"), np.float64("nan")):
        assert fmt(undefined) == "—"


def test_fmt_pm_with_and_without_an_error():
    assert fmt_pm(0.5, 0.0123) == "0.500±0.012"
    assert fmt_pm(0.5, None) == "0.500"  # one image: no standard error
    assert fmt_pm(None, None) == "—"


def test_fmt_csv():
    assert fmt_csv(1 / 3) == "0.333333" and fmt_csv(1234567.0) == "1.23457e+06"
    assert fmt_csv(None) == "nan" and fmt_csv(math.nan) == "nan"


def test_fmt_interval_with_and_without_bounds():
    assert fmt_interval(0.8412, 0.8, 0.88) == "0.84 [0.80, 0.88]"
    assert fmt_interval(0.8412, 0.8, 0.88, mean_digits=3) == "0.841 [0.80, 0.88]"
    assert fmt_interval(0.8412, None, None) == "0.84"  # one image: no interval
    assert fmt_interval(None, None, None) == "—"
    assert fmt_interval(math.nan, 0.1, 0.2) == "— [0.10, 0.20]"
