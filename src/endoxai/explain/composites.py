"""Composites: which LRP rule each layer gets, and the registry of named composites."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from torch import nn

from endoxai.explain.rules import AlphaBeta, Epsilon, Gamma, GeneralizedGamma, Rule, ZBox

LINEAR_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)  # the layers a rule applies to
CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)

LayerMap = tuple[tuple[tuple[type[nn.Module], ...], Rule], ...]
NameMap = tuple[tuple[str, Rule], ...]  # (fnmatch pattern on the layer name, rule)


@dataclass(frozen=True)
class Composite:
    """Maps every linear layer of a model to a rule; in each map the first matching entry wins.

    ``first_map`` applies only to the first layer, in ``model.named_modules()`` order, that matches
    one of its entries (Zennit's ``SpecialFirstLayerMapComposite``: for a network registered in
    forward order that is the input layer). ``name_map`` gives rules by layer name: shell-style
    patterns (``fnmatch``) such as ``"up*"`` or ``"down[2-4].*"``, matched against the layer's
    name in the model and, so that a wrapped model matches too, against its dotted suffixes.
    ``layer_map`` covers the layers neither of them matched.

    ``low_precision``: the rules' denominators stay away from zero (z⁺ / z⁻ taken apart, or a box
    bound), so bf16 rounding changes relevance only slightly. LRP-0 and the plain γ rule divide by
    sums that can pass through zero, where rounding is amplified without bound: run them in fp32
    (``precision="auto"`` is fp32 for every composite, ``runtime.resolve_lrp_precision``).
    """

    layer_map: LayerMap
    first_map: LayerMap = ()
    description: str = ""
    low_precision: bool = False
    name_map: NameMap = ()

    def assign(self, layers: Iterable[tuple[str, nn.Module]]) -> dict[str, Rule]:
        """Rule for each ``(name, layer)`` in the given order; KeyError names an unmatched layer."""
        rules: dict[str, Rule] = {}
        first_done = not self.first_map
        for name, layer in layers:
            rule = None
            if not first_done:
                rule = _match(self.first_map, layer)
                first_done = rule is not None
            rule = rule or _match_name(self.name_map, name) or _match(self.layer_map, layer)
            if rule is None:
                raise KeyError(f"composite has no rule for layer {name!r} ({type(layer).__name__})")
            rules[name] = rule
        return rules


def _match(layer_map: LayerMap, layer: nn.Module) -> Rule | None:
    return next((rule for types, rule in layer_map if isinstance(layer, types)), None)


def _match_name(name_map: NameMap, name: str) -> Rule | None:
    parts = name.split(".")
    suffixes = [".".join(parts[i:]) for i in range(len(parts))]
    return next((rule for pattern, rule in name_map
                 if any(fnmatchcase(s, pattern) for s in suffixes)), None)


COMPOSITES: dict[str, Composite] = {}
# Chosen on held-out training images by `evaluate-explanations --search-composites` (the
# explanations guide gives the rationale, docs/results.md the scores).
DEFAULT_COMPOSITE = "epsilon-gamma-box"


def register_composite(name: str) -> Callable[[Callable[[], Composite]], Callable[[], Composite]]:
    """Decorator: register the composite built by a zero-argument factory under ``name``."""

    def register(factory: Callable[[], Composite]) -> Callable[[], Composite]:
        if name in COMPOSITES:
            raise ValueError(f"composite {name!r} is already registered")
        COMPOSITES[name] = factory()
        return factory

    return register


def get_composite(name: str) -> Composite:
    """The registered composite ``name``; KeyError listing the valid names otherwise."""
    try:
        return COMPOSITES[name]
    except KeyError:
        raise KeyError(f"unknown composite {name!r}; choose from {', '.join(COMPOSITES)}") from None


@register_composite("lrp0")
def _lrp0() -> Composite:
    return Composite(
        layer_map=((LINEAR_LAYERS, Epsilon(0.0)),),
        description="LRP-0 (z-rule, Eq. 1 of the seed paper) in every layer",
    )


@register_composite("paper")
def _paper() -> Composite:
    return Composite(
        layer_map=((LINEAR_LAYERS, Gamma(gamma=0.25)),),
        description="γ rule, ρ(w) = w + 0.25·w⁺ on weights and biases, in every layer "
        "(what the seed paper meant)",
    )


@register_composite("epsilon-gamma-box")
def _epsilon_gamma_box() -> Composite:
    # Zennit's EpsilonGammaBox(low=-1, high=1) with its defaults; generator inputs lie in [-1, 1].
    return Composite(
        first_map=((CONVOLUTIONS, ZBox(low=-1.0, high=1.0)),),
        layer_map=((CONVOLUTIONS, GeneralizedGamma(gamma=0.25)), ((nn.Linear,), Epsilon(1e-6))),
        description="z^B (box [-1, 1]) at the first convolution, generalised γ = 0.25 at every "
        "other (transposed) convolution, ε = 1e-6 at linear layers (Kohlbrenner et al. 2020); "
        "the default",
        low_precision=True,
    )


@register_composite("zplus-epsilon-box")
def _zplus_epsilon_box() -> Composite:
    # The decoder and encoder rules go by block name (Generator's up1..up8, down1..down8); in a
    # model without such names every convolution but the first gets ε.
    return Composite(
        first_map=((CONVOLUTIONS, ZBox(low=-1.0, high=1.0)),),
        name_map=(("up*", AlphaBeta(1.0, 0.0)), ("down*", Epsilon(0.1))),
        layer_map=((CONVOLUTIONS, Epsilon(0.1)), ((nn.Linear,), Epsilon(1e-6))),
        description="z^B (box [-1, 1]) at the first convolution, ε = 0.1 in the other encoder "
        "blocks (down*), z⁺ (α1β0) in the decoder blocks (up*)",
        low_precision=True,
    )


@register_composite("alpha2-beta1")
def _alpha2_beta1() -> Composite:
    return Composite(
        layer_map=((CONVOLUTIONS, AlphaBeta(2.0, 1.0)), ((nn.Linear,), Epsilon(1e-6))),
        description="α2β1 in every (transposed) convolution, ε = 1e-6 at linear layers",
        low_precision=True,
    )


@register_composite("alpha1-beta0")
def _alpha1_beta0() -> Composite:
    return Composite(
        layer_map=((CONVOLUTIONS, AlphaBeta(1.0, 0.0)), ((nn.Linear,), Epsilon(1e-6))),
        description="α1β0 (z⁺) in every (transposed) convolution, ε = 1e-6 at linear layers",
        low_precision=True,
    )
