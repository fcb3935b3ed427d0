"""benchmarks/inference_choices.py: the scoring of thresholded logit maps and the BatchNorm /
dropout modes leave the model as they found it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import common  # noqa: E402
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


def test_recalibrated_statistics_are_the_plain_average_without_dropout():
    torch.manual_seed(0)
    g = Generator().eval()
    x = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    cal = inference_choices.recalibrated(g, x, batch_size=2)
    # reference: the first BatchNorm (down2) sees down1's output; its statistics over the two
    # batches of 2, averaged (dropout acts only later in the decoder)
    bn = g.down2[1]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    with torch.no_grad():
        means, variances = [], []
        for batch in (x[:2], x[2:]):
            a = g.down2[0](g.down1(batch.float() / 127.5 - 1))
            means.append(a.mean(dim=(0, 2, 3)))
            variances.append(a.var(dim=(0, 2, 3), unbiased=True))
    cal_bn = cal.down2[1]
    torch.testing.assert_close(cal_bn.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cal_bn.running_var, torch.stack(variances).mean(0), rtol=1e-4, atol=1e-5)
    assert not cal.training and not any(m.training for m in cal.modules())
    for k, v in g.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k


@pytest.mark.slow
def test_script_scores_every_variant_on_real_images(tmp_path):
    if common.kvasir_seg() is None:
        pytest.skip("real Kvasir-SEG not found at ../shared/data/kvasir-seg")
    from endoxai.config import Config
    from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

    torch.manual_seed(0)
    ckpt = tmp_path / "g.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": Generator().state_dict()}, ckpt)
    out = tmp_path / "choices.md"
    assert inference_choices.main(["--checkpoint", str(ckpt), "--limit", "2", "--batch-size", "2",
                                   "--recalibration-images", "2", "--threads", "1",
                                   "--output", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    names = ["eval BN", "eval BN + flip TTA", "batch BN", "image BN", "pix2pix test mode",
             "eval BN, recalibrated"]
    body = [r.split(" | ")[0].lstrip("| ") for r in rows[1:]]
    assert body == [n for n in names for _ in inference_choices.THRESHOLDS]
