"""LRP rules: small frozen records of their parameters; the arithmetic lives in ``propagate``.

Notation (Montavon et al. 2019, "Layer-wise relevance propagation: an overview"): a linear layer
(Linear, Conv2d, ConvTranspose2d, with any BatchNorm already folded into it) maps inputs ``x_j`` to
``z_k = Σ_j x_j w_jk + b_k``; ``c_jk = x_j w_jk`` is the contribution of input j to output k and
``R_k`` the relevance arriving at output k. Every rule redistributes ``R_k`` onto the inputs,
``R_j = Σ_k (share of j in k) · R_k``. ``t⁺ = max(t, 0)``, ``t⁻ = min(t, 0)``.

``stab(d) = d + ε·sign(d)`` with ``sign(0) = +1`` is Zennit's default stabiliser (Anders et al.),
used by every rule here with its ``stabilizer`` ε (1e-6 unless set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

DEFAULT_STABILIZER = 1e-6  # Zennit's default for every rule
DEFAULT_GAMMA = 0.25  # the seed paper's γ and Zennit's default


@dataclass(frozen=True)
class Epsilon:
    """ε rule (Bach et al. 2015): ``R_j = Σ_k c_jk / stab(z_k) · R_k``.

    ``epsilon = 0`` is LRP-0, the plain z-rule (Eq. 1 of the seed paper),
    ``R_j = Σ_k c_jk / z_k R_k`` with ``0/0 := 0`` where ``z_k = 0`` (no stabiliser: exact).
    """

    epsilon: float = DEFAULT_STABILIZER

    def __post_init__(self) -> None:
        if self.epsilon < 0:
            raise ValueError(f"epsilon must be >= 0; got {self.epsilon}")


@dataclass(frozen=True)
class Gamma:
    """γ rule of Montavon et al. 2019 and the seed paper: ``ρ(w) = w + γ·w⁺`` on weights *and* bias,

    ``R_j = Σ_k x_j ρ(w_jk) / stab(Σ_j' x_j' ρ(w_j'k) + ρ(b_k)) · R_k``.

    Meant for non-negative inputs (after ReLU). It is not Zennit's ``Gamma``, which is the
    generalised rule below; the two agree only where inputs are ≥ 0 and outputs ``z_k`` > 0.
    """

    gamma: float = DEFAULT_GAMMA
    stabilizer: float = DEFAULT_STABILIZER

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0; got {self.gamma}")


@dataclass(frozen=True)
class GeneralizedGamma:
    """Generalised γ rule (Andéol et al. 2021), exactly as Zennit's ``Gamma`` computes it.

    Outputs with ``z_k > 0`` amplify positive contributions, those with ``z_k < 0`` negative ones::

        z_k > 0:  R_j = Σ_k (c_jk + γ c_jk⁺) / stab(z_k + γ (Σ_j c_jk⁺ + b_k⁺)) · R_k
        z_k < 0:  R_j = Σ_k (c_jk + γ c_jk⁻) / stab(z_k + γ (Σ_j c_jk⁻ + b_k⁻)) · R_k
        z_k = 0:  R_k is dropped

    (``c⁺ = x⁺w⁺ + x⁻w⁻``: a contribution is positive when input and weight agree in sign.) For
    non-negative inputs and positive outputs this is the γ rule of ``Gamma``.
    """

    gamma: float = DEFAULT_GAMMA
    stabilizer: float = DEFAULT_STABILIZER

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0; got {self.gamma}")


@dataclass(frozen=True, eq=False)
class ZBox:
    """z^B rule for inputs bounded in ``[low, high]`` (Montavon et al. 2017), as Zennit's ``ZBox``:

    ``R_j = Σ_k n_jk / stab(Σ_j' n_j'k) · R_k`` with ``n_jk = x_j w_jk − l_j w_jk⁺ − h_j w_jk⁻``

    (the bias cancels). ``low``/``high``: floats or tensors broadcastable to the layer input,
    e.g. (1, 3, 1, 1) per colour channel.
    """

    low: float | torch.Tensor = -1.0
    high: float | torch.Tensor = 1.0
    stabilizer: float = DEFAULT_STABILIZER


@dataclass(frozen=True)
class AlphaBeta:
    """αβ rule (Bach et al. 2015) with Zennit's handling of negative inputs and biases:

    ``R_j = Σ_k (α c_jk⁺ / stab(Σ_j' c_j'k⁺ + b_k⁺) − β c_jk⁻ / stab(Σ_j' c_j'k⁻ + b_k⁻)) · R_k``,

    with ``α − β = 1`` so that relevance is conserved. ``AlphaBeta(1, 0)`` is the z⁺ rule.
    """

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = DEFAULT_STABILIZER

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0 or abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise ValueError(
                f"need alpha, beta >= 0 and alpha - beta = 1; got {self.alpha}, {self.beta}"
            )


@dataclass(frozen=True)
class WSquare:
    """w² rule (Montavon et al. 2017), as Zennit's ``WSquare(zero_params=["bias"])``:

    ``R_j = Σ_k w_jk² / stab(Σ_j' w_j'k²) · R_k``

    (the input values and the bias play no part, so relevance is conserved; Zennit's default
    also adds ``b_k²`` to the denominator): an input's share depends only on how strongly
    it is connected, so the map is smooth over the layer's receptive fields. Meant for the input
    layer, where the input values need no explaining.
    """

    stabilizer: float = DEFAULT_STABILIZER


@dataclass(frozen=True)
class Flat:
    """Flat rule (Lapuschkin et al. 2019), as Zennit's ``Flat``: every input in an output's
    receptive field gets an equal share, ``R_j = Σ_k 1 / stab(Σ_j' 1) · R_k`` with the sums over the
    inputs that are connected to k (input values, weights and bias play no part)."""

    stabilizer: float = DEFAULT_STABILIZER


Rule = Union[Epsilon, Gamma, GeneralizedGamma, ZBox, AlphaBeta, WSquare, Flat]
RULE_TYPES = (Epsilon, Gamma, GeneralizedGamma, ZBox, AlphaBeta, WSquare, Flat)
