"""Pooled and nnU-Net protocols, and the summary dict shape."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, precision_score, recall_score

from endoxai.metrics import Counts, confusion_counts, nnunet_scores, pooled_scores, summarize


def _three_images():
    """0: both empty. 1: tp 2, fp 4, fn 4, tn 10. 2: empty truth, 3 false positives."""
    pred = np.zeros((3, 4, 5), bool)
    truth = np.zeros((3, 4, 5), bool)
    truth[1, 0:2, 0:3] = True
    pred[1, 1:3, 1:4] = True
    pred[2, 0, :3] = True
    return pred, truth


def test_pooled_sums_counts_before_the_formulas():
    pred, truth = _three_images()
    # totals: tp 2, fp 4 + 3 = 7, fn 4, tn 20 + 10 + 17 = 47; 60 pixels
    s = pooled_scores(confusion_counts(pred, truth))
    assert s["accuracy"] == pytest.approx(49 / 60)
    assert s["jaccard"] == pytest.approx(2 / 13)
    assert s["dice"] == pytest.approx(4 / 15)
    assert s["f1"] == pytest.approx(4 / 15)
    assert s["recall"] == pytest.approx(2 / 6)
    assert s["precision"] == pytest.approx(2 / 9)
    assert all(isinstance(v, float) for v in s.values())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pooled_equals_sklearn_on_all_pixels_with_zero_division_0():
    rng = np.random.default_rng(3)
    pred = rng.random((6, 9, 11)) < 0.3
    truth = rng.random((6, 9, 11)) < 0.2
    truth[2] = False
    y_t, y_p = truth.reshape(-1), pred.reshape(-1)
    s = pooled_scores(confusion_counts(pred, truth))
    assert s["accuracy"] == pytest.approx(accuracy_score(y_t, y_p), abs=1e-12)
    assert s["jaccard"] == pytest.approx(jaccard_score(y_t, y_p, zero_division=0), abs=1e-12)
    assert s["dice"] == pytest.approx(f1_score(y_t, y_p, zero_division=0), abs=1e-12)
    assert s["recall"] == pytest.approx(recall_score(y_t, y_p, zero_division=0), abs=1e-12)
    assert s["precision"] == pytest.approx(precision_score(y_t, y_p, zero_division=0), abs=1e-12)


def test_pooled_zero_division_cases_are_zero():
    empty = np.zeros((2, 3, 3), bool)
    s = pooled_scores(confusion_counts(empty, empty))
    assert s == {"accuracy": 1.0, "jaccard": 0.0, "dice": 0.0, "f1": 0.0,
                 "recall": 0.0, "precision": 0.0}


def test_nnunet_is_nan_when_both_empty_and_zero_for_false_positives_on_empty_truth():
    pred, truth = _three_images()
    s = nnunet_scores(confusion_counts(pred, truth))
    assert math.isnan(s["dice"][0]) and math.isnan(s["jaccard"][0])
    assert s["dice"][1] == pytest.approx(4 / 12) and s["jaccard"][1] == pytest.approx(2 / 10)
    assert s["dice"][2] == 0.0 and s["jaccard"][2] == 0.0
    t = nnunet_scores(confusion_counts(torch.from_numpy(pred), torch.from_numpy(truth)))
    assert torch.isnan(t["dice"][0]) and t["dice"][2].item() == 0.0


def test_summary_shape_and_nan_ignored_in_the_nnunet_mean():
    pred, truth = _three_images()
    s = summarize(confusion_counts(pred, truth))
    assert list(s) == ["medai", "pooled", "nnunet"]
    six = ["accuracy", "jaccard", "dice", "f1", "recall", "precision", "n_images"]
    assert list(s["medai"]) == six and list(s["pooled"]) == six
    assert list(s["nnunet"]) == ["dice", "jaccard", "n_images"]
    assert s["medai"]["n_images"] == 3 and s["pooled"]["n_images"] == 3
    assert s["nnunet"]["n_images"] == 2
    assert s["nnunet"]["dice"] == pytest.approx((4 / 12 + 0.0) / 2)
    assert s["nnunet"]["jaccard"] == pytest.approx((2 / 10 + 0.0) / 2)
    # MedAI: image 0 -> 1, image 1 -> 4/12, image 2 -> inverted tp 17, fn 3 -> 34/37
    assert s["medai"]["dice"] == pytest.approx((1 + 4 / 12 + 34 / 37) / 3)
    for section in s.values():
        assert isinstance(section["n_images"], int)
        assert all(type(v) is float for k, v in section.items() if k != "n_images")


def test_summary_all_empty_has_nan_nnunet_means_and_no_defined_images():
    empty = np.zeros((2, 3, 3), bool)
    s = summarize(confusion_counts(empty, empty))
    assert s["nnunet"]["n_images"] == 0
    assert math.isnan(s["nnunet"]["dice"]) and math.isnan(s["nnunet"]["jaccard"])
    assert s["medai"]["dice"] == 1.0


def test_summary_of_torch_counts_equals_numpy():
    pred, truth = _three_images()
    a = summarize(confusion_counts(pred, truth))
    b = summarize(confusion_counts(torch.from_numpy(pred), torch.from_numpy(truth)))
    assert a == b
    with pytest.raises(ValueError, match="zero images"):
        summarize(Counts(*(np.zeros(0, np.int64) for _ in range(4))))
