"""MedAI 2021 protocol: hand-computed cases, a real JPEG mask, and agreement with scikit-learn."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, precision_score, recall_score

from endoxai.data.io import read_mask
from endoxai.metrics import MEDAI_KEYS, confusion_counts, medai_scores, summarize

H, W = 4, 5  # 20 pixels


def _scores(pred, target):
    return {k: float(v) for k, v in medai_scores(confusion_counts(pred, target)).items()}


def _mask(*cells):
    m = np.zeros((H, W), bool)
    for r, c in cells:
        m[r, c] = True
    return m


def test_empty_truth_and_empty_prediction_score_one_everywhere():
    assert _scores(_mask(), _mask()) == {k: 1.0 for k in MEDAI_KEYS}


def test_empty_truth_with_false_positives_is_scored_on_inverted_masks():
    # Inverted: truth is 20 foreground pixels, prediction 17 of them -> tp 17, fn 3, fp 0, tn 0.
    s = _scores(_mask((0, 0), (1, 1), (2, 2)), _mask())
    assert s["accuracy"] == pytest.approx(17 / 20)
    assert s["jaccard"] == pytest.approx(17 / 20)
    assert s["recall"] == pytest.approx(17 / 20)
    assert s["dice"] == pytest.approx(34 / 37)
    assert s["f1"] == pytest.approx(34 / 37)
    assert s["precision"] == 1.0


def test_empty_truth_with_everything_predicted_scores_zero():
    s = _scores(np.ones((H, W), bool), _mask())
    assert s == {k: 0.0 for k in MEDAI_KEYS}


def test_empty_prediction_on_nonempty_truth_gives_precision_zero():
    truth = np.zeros((H, W), bool)
    truth[:2, :3] = True  # 6 pixels
    s = _scores(_mask(), truth)
    assert s["precision"] == 0.0 and s["dice"] == 0.0 and s["f1"] == 0.0
    assert s["jaccard"] == 0.0 and s["recall"] == 0.0
    assert s["accuracy"] == pytest.approx(14 / 20)


def test_both_all_foreground_score_one():
    full = np.ones((H, W), bool)
    assert _scores(full, full) == {k: 1.0 for k in MEDAI_KEYS}


def test_partial_overlap_by_hand():
    truth = np.zeros((H, W), bool)
    truth[0:2, 0:3] = True
    pred = np.zeros((H, W), bool)
    pred[1:3, 1:4] = True  # overlap: row 1, columns 1-2 -> tp 2, fp 4, fn 4, tn 10
    s = _scores(pred, truth)
    assert s["accuracy"] == pytest.approx(12 / 20)
    assert s["jaccard"] == pytest.approx(2 / 10)
    assert s["dice"] == pytest.approx(4 / 12)
    assert s["recall"] == pytest.approx(2 / 6)
    assert s["precision"] == pytest.approx(2 / 6)


def test_zero_pixel_mask_is_rejected():
    with pytest.raises(ValueError, match="no pixels"):
        medai_scores(confusion_counts(np.zeros((0, 3), bool), np.zeros((0, 3), bool)))


def test_jpeg_noisy_mask_read_from_a_real_jpeg_scores_one(tmp_path):
    truth = np.zeros((64, 80), np.uint8)
    truth[10:40, 15:60] = 255
    truth[45:60, 5:20] = 255
    Image.fromarray(truth).save(tmp_path / "truth.png")
    Image.fromarray(truth).save(tmp_path / "pred.jpg", quality=60)
    grey = np.asarray(Image.open(tmp_path / "pred.jpg").convert("L"))
    noisy = (grey != 0) & (grey != 255)
    assert noisy.any(), "the JPEG should not reproduce 0/255 exactly, or this test proves nothing"
    assert ((grey > 0) & (truth == 0)).any(), "a '> 0' threshold would add false positives"
    s = _scores(read_mask(tmp_path / "pred.jpg"), read_mask(tmp_path / "truth.png"))
    assert s == {k: 1.0 for k in MEDAI_KEYS}


def _sklearn_medai(pred, target):
    """The official evaluator's arithmetic, written with scikit-learn on flat 0/1 vectors."""
    y_true = target.reshape(-1).astype(np.uint8)
    y_pred = pred.reshape(-1).astype(np.uint8)
    if y_true.max() == 0:
        y_true, y_pred = 1 - y_true, 1 - y_pred
    f1 = f1_score(y_true, y_pred, average="binary")
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "jaccard": jaccard_score(y_true, y_pred, average="binary"),
        "dice": f1,
        "f1": f1,
        "recall": recall_score(y_true, y_pred, average="binary"),
        "precision": precision_score(y_true, y_pred, average="binary", zero_division=0),
    }


def _random_cases(rng, n=20, shape=(13, 17)):
    preds, targets = [], []
    for i in range(n):
        target = rng.random(shape) < rng.uniform(0.05, 0.6)
        pred = rng.random(shape) < rng.uniform(0.05, 0.6)
        if i % 5 == 0:  # empty truth: 4 cases, with empty / sparse / full / random predictions
            target[:] = False
            pred = [np.zeros(shape, bool), rng.random(shape) < 0.02,
                    np.ones(shape, bool), pred][i // 5]
        if i == 7:
            pred[:] = False  # nothing predicted on a non-empty truth: precision 0/0
        if i == 9:
            pred = target.copy()
        preds.append(pred)
        targets.append(target)
    return np.stack(preds), np.stack(targets)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_agrees_with_sklearn_on_random_masks_numpy_and_torch():
    preds, targets = _random_cases(np.random.default_rng(42))
    assert (~targets.reshape(20, -1).any(1)).sum() == 4
    expected = [_sklearn_medai(p, t) for p, t in zip(preds, targets)]
    ours_np = medai_scores(confusion_counts(preds, targets))
    ours_t = medai_scores(confusion_counts(torch.from_numpy(preds), torch.from_numpy(targets)))
    for k in MEDAI_KEYS:
        want = np.array([e[k] for e in expected])
        np.testing.assert_allclose(ours_np[k], want, rtol=0, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(ours_t[k].numpy(), want, rtol=0, atol=1e-6, err_msg=k)
    summary = summarize(confusion_counts(preds, targets))["medai"]
    assert summary["n_images"] == 20
    for k in MEDAI_KEYS:
        assert summary[k] == pytest.approx(np.mean([e[k] for e in expected]), abs=1e-12)
