"""endoxai.cli.choices: every name and default the parsers show equals the one its module uses."""

from __future__ import annotations

import pytest

from endoxai import export, predict
from endoxai.cli import choices
from endoxai.data.download import DATASETS
from endoxai.explain import composites, files, methods, perturbation, sanity, targets


@pytest.mark.parametrize("shown, owner", [
    (choices.COMPOSITES, tuple(composites.COMPOSITES)),
    (choices.DEFAULT_COMPOSITE, composites.DEFAULT_COMPOSITE),
    (choices.STARTS, targets.STARTS),
    (choices.TARGET_HELP, files.TARGET_HELP),
    (choices.UPSAMPLING, predict.UPSAMPLING),
    (choices.DATASETS, tuple(sorted(DATASETS))),
    (choices.EXPORTERS, export.EXPORTERS),
    (choices.DEFAULT_OPSET, export.DEFAULT_OPSET),
    (choices.PARITY_REL_TOL, export.PARITY_REL_TOL),
    (choices.PARITY_MIN_MASK_AGREEMENT, export.PARITY_MIN_MASK_AGREEMENT),
    (choices.PERTURBATION_STEPS, perturbation.DEFAULT_STEPS),
    (choices.PERTURBATION_FRACTION, perturbation.DEFAULT_FRACTION),
    (choices.BASELINES, perturbation.BASELINES),
    (choices.IG_STEPS, methods.IG_STEPS),
    (choices.SANITY_IG_STEPS, sanity.SANITY_IG_STEPS),
    (choices.method_names(), methods.method_names()),
], ids=lambda v: "" if not isinstance(v, str) else v[:20])
def test_the_parsers_show_what_the_modules_use(shown, owner):
    assert shown == owner
