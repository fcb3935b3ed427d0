"""Layer-wise relevance propagation (LRP) for models built from convolutions, BatchNorm and skips.

``explain(model, images, target=..., composite=...)`` returns an ``Explanation`` with the
relevance of the inputs and of every block; ``COMPOSITES`` holds the named rule sets (``lrp0``,
``paper``, ``epsilon-gamma-box`` (``DEFAULT_COMPOSITE``), ``zplus-epsilon-box``,
``alpha2-beta1``, ``alpha1-beta0``).
"""

from endoxai.explain.composites import (
    COMPOSITES,
    DEFAULT_COMPOSITE,
    Composite,
    get_composite,
    register_composite,
)
from endoxai.explain.explanation import Explainer, Explanation, explain
from endoxai.explain.propagate import UnsupportedLayerError
from endoxai.explain.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    GeneralizedGamma,
    Rule,
    WSquare,
    ZBox,
)
from endoxai.explain.targets import STARTS

__all__ = [
    "COMPOSITES",
    "DEFAULT_COMPOSITE",
    "STARTS",
    "AlphaBeta",
    "Composite",
    "Epsilon",
    "Explainer",
    "Explanation",
    "Flat",
    "Gamma",
    "GeneralizedGamma",
    "Rule",
    "UnsupportedLayerError",
    "WSquare",
    "ZBox",
    "explain",
    "get_composite",
    "register_composite",
]
