"""json_safe: NaN becomes null and numpy numbers plain ones, so every JSON file endoxai writes is
strict JSON; read_json: one clear error for a missing, unreadable or foreign file."""

import json
import math

import numpy as np
import pytest

from endoxai.errors import UserError
from endoxai.fileio import json_safe, read_json


def test_json_safe_nan_numpy_and_nesting():
    value = {"a": math.nan, "b": [1.5, np.float32("nan"), (np.int64(3), np.float64(0.25))],
             "c": {"d": np.float32(2.0)}, "e": "text", "f": None, "g": True}
    safe = json_safe(value)
    assert safe == {"a": None, "b": [1.5, None, [3, 0.25]], "c": {"d": 2.0}, "e": "text",
                    "f": None, "g": True}
    assert type(safe["b"][2][0]) is int and type(safe["c"]["d"]) is float
    json.dumps(safe, allow_nan=False)  # strict JSON: raises on any NaN left


def test_read_json_says_what_is_missing_unreadable_or_foreign(tmp_path):
    good = tmp_path / "r.json"
    good.write_text('{"a": 1, "b": null}')
    assert read_json(good, "results", ("a", "b")) == {"a": 1, "b": None}
    with pytest.raises(UserError, match="results not found: .*nope.json"):
        read_json(tmp_path / "nope.json", "results")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="bad.json: cannot read results"):
        read_json(tmp_path / "bad.json", "results")
    with pytest.raises(UserError, match=r"not a results.json \(needs a, c\)"):
        read_json(good, "results", ("a", "c"), "results.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"list.json: not a list.json \(needs a\)"):
        read_json(tmp_path / "list.json", "results", ("a",))
