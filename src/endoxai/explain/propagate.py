"""The LRP engine: each rule is a custom autograd function; one backward pass gives all relevances.

Each (transposed) convolution or linear layer of the prepared copy runs ``_RuleFunction``: its
forward computes the layer's normal output ``z`` (what the rest of the network sees) plus whatever
the rule's denominators need, and stores coefficient maps over the outputs; its backward receives
the relevance ``R`` of the outputs (in place of a gradient) and returns the relevance of the
inputs. Element-wise activations run ``_PassFunction`` (backward = identity), so relevance passes
them unchanged. Concatenation, slicing and the fork of a tensor used twice are left to autograd,
which splits relevance by channel and sums the two uses: LRP's bookkeeping at a skip connection.

Every rule's backward has the same form, the one piece of propagation arithmetic here::

    R_x = Σ_t m_t ⊙ Jᵀ_{W_t}(κ_t · f_t ⊙ R)

with one or two terms t, ``Jᵀ_W`` the transpose of the layer with weights ``W`` (a transposed
convolution for a convolution, and vice versa), ``W_t`` one of ``w``, ``|w|`` and ``ρ(w)``, ``m_t``
a map over inputs (``x``, ``|x|``, ...), ``f_t`` a map over outputs from the forward pass and
``κ_t`` a constant. The sign split of the generalised γ and αβ rules needs only ``|x|`` and
``|w|``: with contributions ``c = x w`` and ``|c| = |x| |w|``, ``c^± = (c ± |c|)/2``, so

- ``Σ_j c_jk^± = (z0_k ± A_k)/2`` with ``z0 = conv(x, w)`` and ``A = conv(|x|, |w|)``: two
  convolutions where Zennit's generalised γ runs five;
- a rule ``R_j = Σ_k (u_k c_jk + v_k |c_jk|) R_k`` back-propagates as
  ``x ⊙ Jᵀ_w(u R) + |x| ⊙ Jᵀ_|w|(v R)``: two transposed convolutions where Zennit runs five.

BatchNorm is folded into a per-call copy of the layer's weights (which is also where they are put
into channels-last layout, the fast one for oneDNN's (transposed) convolutions on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from endoxai.explain import rules

Tensor = torch.Tensor


class UnsupportedLayerError(TypeError):
    """A model contains a layer the LRP engine has no rule or pass-through for."""


class LinearOp:
    """A Linear, Conv2d or ConvTranspose2d, with any following BatchNorm folded in.

    ``forward(x, W, b)`` is the layer with weights ``W`` (bias ``b`` or none);
    ``transpose(g, W, x)`` its vector-Jacobian product w.r.t. the input, shaped like ``x``.
    ``weight`` and ``bias`` are the folded parameters, computed once per preparation from detached
    views of the caller's parameters (never written to); ``abs_weight`` and ``gamma_weight``
    derive from them.
    """

    def __init__(self, layer: nn.Module, name: str) -> None:
        self.name = name
        self.kind = type(layer).__name__
        self._raw_weight = layer.weight.detach()
        self._scale: Tensor | None = None  # per output channel, from folded BatchNorms
        self.bias: Tensor | None = None if layer.bias is None else layer.bias.detach()
        self._derived: dict[object, Tensor] = {}
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            if layer.padding_mode != "zeros":
                raise UnsupportedLayerError(
                    f"layer {name!r}: padding_mode={layer.padding_mode!r} is not supported "
                    "(only 'zeros')"
                )
            if isinstance(layer.padding, str):
                raise UnsupportedLayerError(
                    f"layer {name!r}: padding={layer.padding!r} is not supported; give numbers"
                )
            self.stride, self.padding = layer.stride, layer.padding
            self.dilation, self.groups = layer.dilation, layer.groups
            self.output_padding = layer.output_padding if self.transposed else (0, 0)
        elif not isinstance(layer, nn.Linear):
            raise UnsupportedLayerError(f"layer {name!r} ({self.kind}) is not a linear layer")

    @property
    def out_channels(self) -> int:
        if self.transposed:
            return self._raw_weight.shape[1] * self.groups
        return self._raw_weight.shape[0]

    def fold_batchnorm(self, bn: nn.modules.batchnorm._BatchNorm, bn_name: str) -> None:
        """Fold an eval-mode BatchNorm that directly follows this layer (w·s, (b - μ)·s + β)."""
        if bn.running_mean is None or bn.running_var is None:
            raise UnsupportedLayerError(
                f"BatchNorm {bn_name!r} has no running statistics (track_running_stats=False); "
                "it cannot be folded into the preceding layer"
            )
        if bn.num_features != self.out_channels:
            raise UnsupportedLayerError(
                f"BatchNorm {bn_name!r} does not match the channels of {self.name!r}"
            )
        scale = torch.rsqrt(bn.running_var.detach() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach()
        mean = bn.running_mean.detach()
        bias = (-mean if self.bias is None else self.bias - mean) * scale
        self.bias = bias if bn.bias is None else bias + bn.bias.detach()
        self._scale = scale if self._scale is None else self._scale * scale
        self._derived.clear()

    @property
    def weight(self) -> Tensor:
        """The folded weight, channels-last for convolutions (one pass over the raw weight)."""
        if "w" not in self._derived:
            raw = self._raw_weight
            layout = torch.channels_last if raw.ndim == 4 else torch.contiguous_format
            if self._scale is None:
                w = raw.contiguous(memory_format=layout)
            else:
                w = torch.empty_like(raw, memory_format=layout)
                torch.mul(raw, self._weight_channels(self._scale), out=w)
            self._derived["w"] = w
        return self._derived["w"]

    def abs_weight(self) -> Tensor:
        if "abs" not in self._derived:
            self._derived["abs"] = self.weight.abs()
        return self._derived["abs"]

    def gamma_weight(self, gamma: float) -> Tensor:
        """``ρ(w) / (1 + γ)`` for ``ρ(w) = w + γ·w⁺`` in one pass: LeakyReLU, slope 1/(1 + γ)."""
        key = ("gamma", gamma)
        if key not in self._derived:
            self._derived[key] = F.leaky_relu(self.weight, 1.0 / (1.0 + gamma))
        return self._derived[key]

    def squared_weight(self) -> Tensor:
        if "square" not in self._derived:
            self._derived["square"] = self.weight.square()
        return self._derived["square"]

    def flat_weight(self) -> Tensor:
        """Ones shaped like the weight: every connection counts once (grouping kept)."""
        if "flat" not in self._derived:
            self._derived["flat"] = torch.ones_like(self.weight)
        return self._derived["flat"]

    def _weight_channels(self, v: Tensor) -> Tensor:
        """A per-output-channel vector shaped to broadcast against the raw weight."""
        w = self._raw_weight
        if not self.transposed:
            return v.view(-1, *([1] * (w.ndim - 1)))
        c_in, c_out_g = w.shape[:2]
        grouped = v.view(self.groups, 1, c_out_g, 1, 1).expand(-1, c_in // self.groups, -1, -1, -1)
        return grouped.reshape(c_in, c_out_g, 1, 1)

    def channels(self, v: Tensor, ndim: int) -> Tensor:
        """A per-output-channel vector shaped to broadcast against an output with ``ndim`` dims."""
        return v if self.kind == "Linear" else v.view(1, -1, *([1] * (ndim - 2)))

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.kind == "Linear":
            return F.linear(x, weight, bias)
        if self.transposed:
            return F.conv_transpose2d(
                x,
                weight,
                bias,
                self.stride,
                self.padding,
                self.output_padding,
                self.groups,
                self.dilation,
            )
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def transpose(self, g: Tensor, weight: Tensor, x: Tensor) -> Tensor:
        if self.kind == "Linear":
            return g.matmul(weight)
        if self.transposed:
            return F.conv2d(g, weight, None, self.stride, self.padding, self.dilation, self.groups)
        # A transposed convolution can land on several input sizes; pick the one of x.
        out_pad = [
            x.shape[2 + i]
            - (
                (g.shape[2 + i] - 1) * self.stride[i]
                - 2 * self.padding[i]
                + self.dilation[i] * (weight.shape[2 + i] - 1)
                + 1
            )
            for i in range(2)
        ]
        return F.conv_transpose2d(
            g, weight, None, self.stride, self.padding, out_pad, self.groups, self.dilation
        )


def stabilize(d: Tensor, eps: float) -> Tensor:
    """Zennit's stabiliser ``d + ε·sign(d)`` with ``sign(0) = +1``."""
    return d + torch.where(d >= 0, eps, -eps).to(d.dtype)


def _reciprocal(d: Tensor, eps: float) -> Tensor:
    """``1 / stab(d)`` in a new tensor; for ε = 0, ``1/d`` with ``1/0 := 0`` (the exact z-rule)."""
    if eps == 0:
        return torch.nan_to_num_(d.reciprocal(), nan=0.0, posinf=0.0, neginf=0.0)
    return stabilize(d, eps).reciprocal_()


@dataclass
class Term:
    """One term ``m ⊙ Jᵀ_W(κ · f ⊙ R)`` of a rule's backward; ``m`` None means the input x."""

    factor: Tensor | None
    coefficient: Tensor
    weight: Tensor
    constant: float = 1.0


def _terms_epsilon(rule: rules.Epsilon, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    return [Term(None, _reciprocal(z, rule.epsilon), op.weight)]


def _terms_gamma(rule: rules.Gamma, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    # With ρ̃ = ρ/(1+γ): stab_ε(Σ x ρ(w) + ρ(b)) = (1+γ)·stab_ε'(Σ x ρ̃(w) + ρ̃(b)), ε' = ε/(1+γ),
    # and the factor (1+γ) cancels against ρ(w) = (1+γ) ρ̃(w) in the backward.
    g = rule.gamma
    bias = None if op.bias is None else (op.bias + g * op.bias.clamp(min=0)) / (1 + g)
    den = op.forward(x, op.gamma_weight(g), bias)
    # stab(d) = d + ε sign(d) in three passes; unlike Zennit's stabiliser it gives sign(-0.0) = -1,
    # but a convolution's -0.0 needs every product and the bias to be -0.0.
    den.add_(torch.copysign(torch.tensor(rule.stabilizer / (1 + g), dtype=den.dtype), den))
    return [Term(None, den.reciprocal_(), op.gamma_weight(g))]


def _terms_generalized_gamma(
    rule: rules.GeneralizedGamma, op: LinearOp, x: Tensor, z: Tensor
) -> list[Term]:
    # With A = Σ_j |c_jk| = conv(|x|, |w|) and Σc^± = (z - b ± A)/2:
    #   z > 0: den = z + γ(Σc⁺ + b⁺) = (1 + γ/2) z + (γ/2)(A + |b|)
    #   z < 0: den = z + γ(Σc⁻ + b⁻) = (1 + γ/2) z - (γ/2)(A + |b|)
    # so stab(den) = κ z + sign(z) t with κ = 1 + γ/2 and t = (γ/2)(A + |b|) + ε. Outputs with
    # z = 0 are dropped (sign(z) = 0 there). Computed as den' = stab(den)/κ, with t's offset as
    # the convolution's bias, in four passes over the outputs.
    g, eps = rule.gamma, rule.stabilizer
    if g == 0:
        return [Term(None, _masked_reciprocal(z, eps), op.weight)]
    kappa = 1 + g / 2
    x_abs = x.abs()
    offset = torch.full((op.out_channels,), 2 * eps / g, dtype=z.dtype, device=z.device)
    if op.bias is not None:
        offset = offset + op.bias.abs()
    t = op.forward(x_abs, op.abs_weight(), offset)  # A + |b| + 2ε/γ = t / (γ/2)
    sign = torch.sign(z)
    den = torch.addcmul(z, sign, t, value=g / 2 / kappa, out=t)  # stab(den) / κ
    # |den| >= |z| > 0 except where z = 0 exactly (it happens in trained models, about once per
    # 10^5 outputs): there den = 0 too, and 0/0 would carry NaN into every input below.
    den.masked_fill_(sign == 0, 1.0)
    inverse = torch.div(sign, den, out=den)  # κ / |stab(den)| where z ≠ 0, else 0
    masked = sign.mul_(inverse)  # κ [z ≠ 0] / stab(den)
    # R_j = Σ_k (c_jk + γ c_jk^±) / stab(den_k) R_k
    #     = x_j Jᵀ_w(κ [z≠0] R / stab(den)) + |x_j| Jᵀ_|w|((γ/2) sign(z) R / stab(den))
    return [Term(None, masked, op.weight), Term(x_abs, inverse, op.abs_weight(), g / 2 / kappa)]


def _masked_reciprocal(z: Tensor, eps: float) -> Tensor:
    """``[z ≠ 0] / stab(z)``."""
    sign = torch.sign(z)
    return sign.mul_(_reciprocal(z, eps))


def _terms_alpha_beta(rule: rules.AlphaBeta, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    x_abs = x.abs()
    a = op.forward(x_abs, op.abs_weight())
    z0 = z if op.bias is None else z - op.channels(op.bias, z.ndim)
    pos = (z0 + a).mul_(0.5)  # Σ_j c_jk⁺
    neg = (z0 - a).mul_(0.5)  # Σ_j c_jk⁻
    if op.bias is not None:
        pos.add_(op.channels(op.bias.clamp(min=0), pos.ndim))
        neg.add_(op.channels(op.bias.clamp(max=0), neg.ndim))
    pos = _reciprocal(pos, rule.stabilizer).mul_(rule.alpha)
    neg = _reciprocal(neg, rule.stabilizer).mul_(rule.beta)
    # α c⁺/P - β c⁻/N with c^± = (c ± |c|)/2: (α/P - β/N)/2 on c, (α/P + β/N)/2 on |c|
    return [
        Term(None, pos - neg, op.weight, 0.5),
        Term(x_abs, pos.add_(neg), op.abs_weight(), 0.5),
    ]


def _terms_zbox(rule: rules.ZBox, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    # x w - l w⁺ - h w⁻ = (x - c) w + r |w| with centre c = (l + h)/2 and radius r = (h - l)/2;
    # the bias cancels in Zennit's ZBox, so it is left out here.
    low = torch.as_tensor(rule.low, dtype=x.dtype, device=x.device)
    high = torch.as_tensor(rule.high, dtype=x.dtype, device=x.device)
    shifted = x - (low + high) / 2
    radius = torch.empty_like(x).copy_(torch.broadcast_to((high - low) / 2, x.shape))
    den = op.forward(shifted, op.weight).add_(op.forward(radius, op.abs_weight()))
    f = _reciprocal(den, rule.stabilizer)
    # Two maps: the backward overwrites each coefficient map with its product with R.
    return [Term(shifted, f, op.weight), Term(radius, f.clone(), op.abs_weight())]


def _terms_input_free(
    weight: Tensor, rule: rules.WSquare | rules.Flat, op: LinearOp, x: Tensor
) -> list[Term]:
    # R_j = Σ_k v_jk / Σ_j' v_j'k · R_k with v = w² or 1: the transposed layer with weights v on
    # R / stab(layer(1, v)), times 1 for every input. Padding is zeros, so only real inputs count.
    ones = torch.ones_like(x)
    den = op.forward(ones, weight)
    return [Term(ones, _reciprocal(den, rule.stabilizer), weight)]


def _terms_wsquare(rule: rules.WSquare, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    return _terms_input_free(op.squared_weight(), rule, op, x)


def _terms_flat(rule: rules.Flat, op: LinearOp, x: Tensor, z: Tensor) -> list[Term]:
    return _terms_input_free(op.flat_weight(), rule, op, x)


_RULE_TERMS = {
    rules.Epsilon: _terms_epsilon,
    rules.WSquare: _terms_wsquare,
    rules.Flat: _terms_flat,
    rules.Gamma: _terms_gamma,
    rules.GeneralizedGamma: _terms_generalized_gamma,
    rules.AlphaBeta: _terms_alpha_beta,
    rules.ZBox: _terms_zbox,
}


class _RuleFunction(torch.autograd.Function):
    """Forward: the layer's output. Backward: the rule's relevance of the input (see module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, op: LinearOp, rule: rules.Rule) -> Tensor:  # type: ignore[override]
        z = op.forward(x, op.weight, op.bias)
        terms = _RULE_TERMS[type(rule)](rule, op, x, z)
        ctx.op = op
        ctx.layout = [(t.weight, t.constant, t.factor is not None) for t in terms]
        tensors = (
            [x] + [t.coefficient for t in terms] + [t.factor for t in terms if t.factor is not None]
        )
        ctx.save_for_backward(*tensors)
        return z

    @staticmethod
    def backward(ctx, relevance: Tensor):  # type: ignore[override]
        saved = ctx.saved_tensors
        x, n = saved[0], len(ctx.layout)
        coefficients, factors = saved[1 : 1 + n], iter(saved[1 + n :])
        result = None
        for coefficient, (weight, constant, has_factor) in zip(coefficients, ctx.layout):
            # The coefficient maps are not needed after this: overwrite them (no new allocation).
            back = ctx.op.transpose(torch.mul(relevance, coefficient, out=coefficient), weight, x)
            factor = next(factors) if has_factor else x
            if result is None:
                result = back.mul_(factor) if constant == 1 else back.mul_(factor).mul_(constant)
            else:
                result.addcmul_(factor, back, value=constant)
        return result, None, None


class _PassFunction(torch.autograd.Function):
    """An element-wise activation whose backward passes relevance through unchanged."""

    @staticmethod
    def forward(ctx, x: Tensor, activation: nn.Module) -> Tensor:  # type: ignore[override]
        return activation(x)

    @staticmethod
    def backward(ctx, relevance: Tensor):  # type: ignore[override]
        return relevance, None


class RuleLayer(nn.Module):
    """Stands in for a linear layer (plus folded BatchNorm) in the prepared copy."""

    def __init__(self, op: LinearOp, rule: rules.Rule) -> None:
        super().__init__()
        if type(rule) not in _RULE_TERMS:
            raise TypeError(f"not an LRP rule: {rule!r}")
        self.op, self.rule = op, rule

    def forward(self, x: Tensor) -> Tensor:
        return _RuleFunction.apply(x, self.op, self.rule)

    def extra_repr(self) -> str:
        return f"{self.op.kind} {self.op.name!r}, {self.rule}"


class PassLayer(nn.Module):
    """Stands in for an element-wise activation: same forward, relevance passes unchanged."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return _PassFunction.apply(x, self.activation)
