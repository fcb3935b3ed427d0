"""benchmarks/inference_choices.py: the scoring of thresholded logit maps and the BatchNorm /
dropout modes leave the model as they found it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import inference_choices  # noqa: E402

from endoxai.models import Generator  # noqa: E402


def test_score_thresholds_against_hand_counts():
    truth = np.zeros((30, 40), dtype=bool)
    truth[:, :20] = True  # left half, at the original size
    logits = torch.full((1, 16, 16), -5.0)
    logits[:, :, :8] = 5.0  # left half, at model size
    scores = inference_choices.score([logits], [truth], thresholds=(-10.0, 0.0, 10.0))
    assert scores[0.0]["medai"]["dice"] == pytest.approx(1.0)
    # threshold above every logit: empty prediction of a non-empty truth
    assert scores[10.0]["medai"]["dice"] == 0.0 and scores[10.0]["medai"]["recall"] == 0.0
    # threshold below every logit: everything foreground, precision = the truth's share
    assert scores[-10.0]["medai"]["precision"] == pytest.approx(0.5)
    assert scores[-10.0]["medai"]["dice"] == pytest.approx(2 * 0.5 / 1.5)


def test_logits_in_mode_restores_the_model():
    torch.manual_seed(0)
    g = Generator().eval()
    x = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    eval_logits = inference_choices.logits_in_mode(g, x, batch_stats=False, dropout=False)
    batch = inference_choices.logits_in_mode(g, x, batch_stats=True, dropout=False)
    noisy = inference_choices.logits_in_mode(g, x, batch_stats=True, dropout=True)
    with torch.no_grad():
        reference = g.logits(x.float() / 127.5 - 1)
    torch.testing.assert_close(eval_logits, reference)
    assert not torch.allclose(batch, eval_logits)  # fresh init: running stats are 0 / 1
    assert not torch.allclose(noisy, batch)  # dropout changed something
    assert not any(m.training for m in g.modules())
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]), k
