"""Skip-flow accounting: how much relevance reaches each encoder level through its U-Net skip.

In a U-Net of encoder blocks ``down1..downD`` and decoder blocks ``up1..upD`` (``Generator``:
D = 8), decoder block ``up_{D+1-k}`` reads the concatenation ``[up_{D-k} output, down_k output]``
for k = 1..D-1. LRP splits the relevance arriving at that concatenation exactly by channel: the
skip part enters encoder level k directly, the upsampled part continues deeper into the decoder.
What is left after the last concatenation (``up1``'s input) reaches the bottleneck, ``downD``'s
output. Relevance a block's rule does not pass on (the share of biases, stabilisers, and the
z-rule's dropped ``0/0`` terms) is *absorbed* by that block.

The ledger, per image, with every term a sum over all positions and channels:

    output  = Σ_j absorbed(up_j) + Σ_k skip_k + bottleneck                       (decoder side)
    deeper_k = absorbed(up_{D-k}) + skip_{k+1} + deeper_{k+1}
    deeper_{D-1} = absorbed(up1) + bottleneck
    input   = output - Σ_j absorbed(up_j) - Σ_i absorbed(down_i)                 (whole network)

Every term is read from tensors the one backward pass already produced (each block's output and
input relevance, ``explain(..., layer_inputs=True)``): nothing is propagated twice. Relevance is
signed, so a share can be negative or above 1 when evidence for and against cancel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from endoxai.explain.explanation import Explanation

FLOW_NPZ_KEYS = {
    "flow_levels": "int64 (D-1,): encoder levels with a skip, 1..D-1 (down1 is level 1)",
    "flow_skip": "float64 (D-1,): relevance entering each encoder level through its skip",
    "flow_deeper": "float64 (D-1,): relevance continuing deeper at each level's concatenation",
    "flow_bottleneck": "float64 (): relevance reaching the bottleneck (downD's output)",
    "flow_absorbed_decoder": "float64 (D,): relevance absorbed by up1..upD (biases, stabilisers)",
    "flow_absorbed_encoder": "float64 (D,): relevance absorbed by down1..downD",
    "flow_total": "float64 (): relevance at the output (where propagation started)",
    "flow_input": "float64 (): relevance at the input",
}


@dataclass(frozen=True)
class SkipFlow:
    """Per-image relevance ledger of a U-Net explanation (module docstring); float64 tensors.

    - ``total`` (N,): relevance at the output; ``input`` (N,): relevance at the input.
    - ``skip`` (N, D-1): column k-1 is the relevance entering encoder level k (``down_k``'s output)
      through its skip; ``deeper`` (N, D-1): the upsampled part of the same concatenation, which
      continues into ``up_{D-k}`` and deeper.
    - ``bottleneck`` (N,): the relevance at ``up1``'s input, i.e. reaching ``downD``'s output.
    - ``absorbed_decoder`` (N, D) for ``up1..upD`` and ``absorbed_encoder`` (N, D) for
      ``down1..downD``: output minus input relevance of each block.
    """

    total: torch.Tensor
    skip: torch.Tensor
    deeper: torch.Tensor
    bottleneck: torch.Tensor
    absorbed_decoder: torch.Tensor
    absorbed_encoder: torch.Tensor
    input: torch.Tensor

    @property
    def depth(self) -> int:
        """D, the number of encoder (and decoder) blocks."""
        return self.absorbed_decoder.shape[1]

    @property
    def levels(self) -> tuple[int, ...]:
        """The encoder levels that have a skip: 1..D-1."""
        return tuple(range(1, self.depth))

    def residual(self) -> torch.Tensor:
        """(N,) ``total - (Σ absorbed_decoder + Σ skip + bottleneck)``: 0 up to rounding."""
        return self.total - (self.absorbed_decoder.sum(1) + self.skip.sum(1) + self.bottleneck)

    def shares(self) -> dict[str, torch.Tensor]:
        """Each term divided by ``total`` (per image; NaN where the total is 0): ``skip``,
        ``deeper``, ``bottleneck``, ``absorbed_decoder``, ``absorbed_encoder``, ``input``."""
        t = torch.where(self.total != 0, self.total, torch.full_like(self.total, float("nan")))
        return {
            "skip": self.skip / t[:, None],
            "deeper": self.deeper / t[:, None],
            "bottleneck": self.bottleneck / t,
            "absorbed_decoder": self.absorbed_decoder / t[:, None],
            "absorbed_encoder": self.absorbed_encoder / t[:, None],
            "input": self.input / t,
        }

    def summed(self) -> SkipFlow:
        """The ledger of all images together (every term summed over the batch), N = 1."""
        return SkipFlow(*(t.sum(0, keepdim=True) for t in self._fields()))

    def image(self, i: int) -> SkipFlow:
        """Image ``i``'s ledger, N = 1."""
        return SkipFlow(*(t[i:i + 1] for t in self._fields()))

    def arrays(self, i: int = 0) -> dict[str, np.ndarray]:
        """Image ``i``'s ledger as the ``flow_*`` arrays of ``FLOW_NPZ_KEYS``."""
        return {
            "flow_levels": np.arange(1, self.depth, dtype=np.int64),
            "flow_skip": self.skip[i].numpy(),
            "flow_deeper": self.deeper[i].numpy(),
            "flow_bottleneck": self.bottleneck[i].numpy(),
            "flow_absorbed_decoder": self.absorbed_decoder[i].numpy(),
            "flow_absorbed_encoder": self.absorbed_encoder[i].numpy(),
            "flow_total": self.total[i].numpy(),
            "flow_input": self.input[i].numpy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SkipFlow:
        """Inverse of ``arrays`` (e.g. from a ``.npz`` written by ``endoxai explain``), N = 1."""
        def t(key: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(arrays[key], dtype=np.float64))[None]

        return cls(t("flow_total"), t("flow_skip"), t("flow_deeper"), t("flow_bottleneck"),
                   t("flow_absorbed_decoder"), t("flow_absorbed_encoder"), t("flow_input"))

    @classmethod
    def concat(cls, flows: list[SkipFlow]) -> SkipFlow:
        """Several ledgers of the same depth as one batch."""
        if not flows:
            raise ValueError("no skip flows to concatenate")
        return cls(*(torch.cat(parts) for parts in zip(*(f._fields() for f in flows))))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.total, self.skip, self.deeper, self.bottleneck, self.absorbed_decoder,
                self.absorbed_encoder, self.input)


def unet_depth(names: list[str] | tuple[str, ...]) -> int:
    """D if ``names`` are exactly ``down1..downD`` followed by ``up1..upD`` (as ``explain``
    records them for ``Generator``); ValueError otherwise."""
    depth = len(names) // 2
    expected = [f"down{i}" for i in range(1, depth + 1)] + [f"up{i}" for i in range(1, depth + 1)]
    if depth < 2 or list(names) != expected:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ValueError(
            "skip flow needs a U-Net explained block by block (blocks down1..downD, up1..upD, "
            f"D >= 2, as Generator has); got blocks [{shown}]"
        )
    return depth


def skip_flow(exp: Explanation) -> SkipFlow:
    """The ledger of ``exp`` (module docstring). ``exp`` must come from ``explain(model, ...,
    layers=True, layer_inputs=True)`` on a U-Net whose blocks are ``down1..downD, up1..upD`` and
    whose ``up_{D+1-k}`` reads ``cat([up_{D-k} output, down_k output], dim=1)``. ValueError if
    the explanation lacks the input relevance of its blocks or is not of such a model."""
    names = list(exp.layers)
    depth = unet_depth(names)
    if list(exp.layer_inputs) != names:
        raise ValueError("skip flow needs each block's input relevance: explain with "
                         "layer_inputs=True (and layers=True)")

    def total(t: torch.Tensor) -> torch.Tensor:
        return t.detach().double().flatten(1).sum(1).cpu()

    outputs = {name: total(r) for name, r in exp.layers.items()}
    inputs = {name: total(r) for name, r in exp.layer_inputs.items()}
    skip, deeper = [], []
    for k in range(1, depth):
        received = exp.layer_inputs[f"up{depth + 1 - k}"]
        upsampled = exp.layers[f"up{depth - k}"].shape[1]
        encoder = exp.layers[f"down{k}"].shape[1]
        if received.shape[1] != upsampled + encoder:
            raise ValueError(
                f"up{depth + 1 - k} receives {received.shape[1]} channels, not up{depth - k}'s "
                f"{upsampled} + down{k}'s {encoder}: not a U-Net concatenation"
            )
        deeper.append(total(received[:, :upsampled]))
        skip.append(total(received[:, upsampled:]))
    decoder = [f"up{j}" for j in range(1, depth + 1)]
    encoder_names = [f"down{i}" for i in range(1, depth + 1)]
    return SkipFlow(
        total=total(exp.output),
        skip=torch.stack(skip, 1),
        deeper=torch.stack(deeper, 1),
        bottleneck=inputs["up1"],
        absorbed_decoder=torch.stack([outputs[n] - inputs[n] for n in decoder], 1),
        absorbed_encoder=torch.stack([outputs[n] - inputs[n] for n in encoder_names], 1),
        input=total(exp.input),
    )


def format_flow_table(flow: SkipFlow, title: str = "") -> str:
    """Plain-text ledger of ``flow`` summed over its images, one row per encoder level from the
    output down: the block that reads the level's skip, what that block absorbed, and the split of
    what it received into the skip (entering the level) and the upsampled part (continuing
    deeper); then the bottleneck, the encoder's absorption and the input. Shares are of the
    output's relevance."""
    f = flow.summed()
    s = {key: value[0] for key, value in f.shares().items()}
    depth = f.depth
    lines = [title] if title else []
    lines.append(f"{'level':<11} {'read by':<8} {'absorbed':>9} {'Σ skip':>12} {'skip':>9} "
                 f"{'deeper':>9}")
    for k in range(1, depth):
        j = depth + 1 - k
        absorbed = _percent(s["absorbed_decoder"][j - 1])
        lines.append(f"{'down' + str(k):<11} {'up' + str(j):<8} {absorbed:>9} "
                     f"{float(f.skip[0, k - 1]):>12.5g} {_percent(s['skip'][k - 1]):>9} "
                     f"{_percent(s['deeper'][k - 1]):>9}")
    lines.append(f"{'bottleneck':<11} {'up1':<8} {_percent(s['absorbed_decoder'][0]):>9} "
                 f"{float(f.bottleneck[0]):>12.5g} {_percent(s['bottleneck']):>9}")
    lines.append(f"output Σ {float(f.total[0]):.5g}; absorbed by the encoder "
                 f"{_percent(s['absorbed_encoder'].sum())}; reaches the input "
                 f"{_percent(s['input'])}; ledger residual (output - absorbed - skips - "
                 f"bottleneck) {float(f.residual()[0]):.2g}")
    return "\n".join(lines)


def _percent(share: float | torch.Tensor) -> str:
    share = float(share)
    return "n/a" if not np.isfinite(share) else f"{100 * share:.2f}%"

