"""Names and defaults the parsers show, repeated here from the torch-backed modules that own them.

``endoxai --version`` and ``endoxai COMMAND --help`` answer without importing torch or
matplotlib (together about 1.5 s on a 2-core CPU), so the parsers cannot import the modules that
define these values. Each is repeated here once; tests/cli/test_choices.py compares every one
with its owner, so the two cannot drift apart.
"""

from __future__ import annotations

# endoxai.explain.composites.COMPOSITES, in registration order
COMPOSITES = ("lrp0", "paper", "epsilon-gamma-box", "zplus-epsilon-box", "alpha2-beta1",
              "alpha1-beta0")
DEFAULT_COMPOSITE = "epsilon-gamma-box"  # endoxai.explain.composites.DEFAULT_COMPOSITE
STARTS = ("logit", "ones")  # endoxai.explain.targets.STARTS
TARGET_HELP = "mask | background | pixel:Y,X | box:Y0,X0,Y1,X1"  # endoxai.explain.files

UPSAMPLING = ("bilinear", "nearest")  # endoxai.predict.UPSAMPLING
DATASETS = ("kvasir-instrument", "kvasir-seg")  # endoxai.data.download.DATASETS, sorted

# endoxai.export
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
PARITY_REL_TOL = 1e-4
PARITY_MIN_MASK_AGREEMENT = 0.999

# endoxai.explain.perturbation, methods and sanity
PERTURBATION_STEPS = 16  # perturbation.DEFAULT_STEPS
PERTURBATION_FRACTION = 0.125  # perturbation.DEFAULT_FRACTION
BASELINES = ("noise", "blur", "mean", "black")  # perturbation.BASELINES
IG_STEPS = 24  # methods.IG_STEPS
SANITY_IG_STEPS = 8  # sanity.SANITY_IG_STEPS
LRP_PREFIX = "lrp:"  # methods.LRP_PREFIX
OTHER_METHODS = ("gradient", "gradient-x-input", "integrated-gradients", "random")


def method_names() -> list[str]:
    """``endoxai.explain.methods.method_names()`` for the registered composites."""
    return [LRP_PREFIX + name for name in COMPOSITES] + list(OTHER_METHODS)
