"""json_safe: NaN becomes null and numpy numbers plain ones, so every JSON file endoxai writes is
strict JSON."""

import json
import math

import numpy as np

from endoxai.fileio import json_safe


def test_json_safe_nan_numpy_and_nesting():
    value = {"a": math.nan, "b": [1.5, np.float32("nan"), (np.int64(3), np.float64(0.25))],
             "c": {"d": np.float32(2.0)}, "e": "text", "f": None, "g": True}
    safe = json_safe(value)
    assert safe == {"a": None, "b": [1.5, None, [3, 0.25]], "c": {"d": 2.0}, "e": "text",
                    "f": None, "g": True}
    assert type(safe["b"][2][0]) is int and type(safe["c"]["d"]) is float
    json.dumps(safe, allow_nan=False)  # strict JSON: raises on any NaN left
