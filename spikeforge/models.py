"""Networks built from the contract's LIF layers.

:class:`SpikingNet` is a stack of fully connected LIF layers, the shape every hardware
target builds. Layers run one after another over all time steps (each layer's whole input
is known once the previous layer has run), which is exactly the contract's step-by-step
semantics for a feed-forward network, and much faster.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.encoders import encode
from spikeforge.hardware.quantize import fake_quantize
from spikeforge.neurons.lif import lif_sequence
from spikeforge.spec import NetworkSpec, decode
from spikeforge.surrogates import FastSigmoid, Surrogate


class SpikingOutput(NamedTuple):
    """counts: output spike counts ``(batch, classes)``; spikes: every layer's
    ``(T, batch, n)`` spike trains when asked for (``record=True``), else ``None``."""

    counts: torch.Tensor
    spikes: list[torch.Tensor] | None


class SpikingNet(nn.Module):
    """Fully connected LIF network defined by a :class:`~spikeforge.spec.NetworkSpec`."""

    def __init__(self, spec: NetworkSpec, surrogate: Surrogate | None = None,
                 dropout: float = 0.0, weight_bits: int | None = None):
        super().__init__()
        self.spec = spec
        self.surrogate = surrogate or FastSigmoid()
        # Training-only regulariser on hidden spike trains (one mask per sample for all
        # steps, so a dropped neuron is silent for the whole presentation). The hardware
        # never drops anything: evaluation and export see the plain network.
        self.dropout = dropout
        # Quantisation-aware training: weights rounded to `weight_bits` per layer in the
        # forward pass, straight-through in the backward pass (spikeforge.hardware.quantize).
        self.weight_bits = weight_bits
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=spec.bias)
            for n_in, n_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=True)
        )

    def forward(self, x: torch.Tensor, record: bool = False) -> SpikingOutput:
        """x: raw samples ``(batch, features)`` in [0, 1], or spikes ``(T, batch, features)``."""
        spec = self.spec
        s = encode(x, spec.encoding)
        recorded = []
        for i, layer in enumerate(self.layers):
            if i > 0 and self.training and self.dropout > 0:
                keep = torch.rand(s.shape[1:], device=s.device) >= self.dropout
                s = s * (keep / (1.0 - self.dropout))
            weight = self.effective_weight(layer)
            if s.dim() == 2:  # a held current: W·x + b once, not once per step
                current = F.linear(s, weight, layer.bias)
            else:
                steps, batch, n = s.shape
                current = F.linear(s.reshape(steps * batch, n), weight, layer.bias)
                current = current.reshape(steps, batch, -1)
            s = lif_sequence(current, spec.neuron, spec.timesteps, self.surrogate)
            if record:
                recorded.append(s)
        return SpikingOutput(s.sum(0), recorded if record else None)

    def effective_weight(self, layer: nn.Linear) -> torch.Tensor:
        """The weight the forward pass uses: rounded to ``weight_bits`` when training is
        quantisation-aware, else the layer's own."""
        if self.weight_bits is None:
            return layer.weight
        return fake_quantize(layer.weight, self.weight_bits)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Classes as the hardware decodes them (spike counts, ties to the lowest index)."""
        return decode(self(x).counts)

    def weights(self) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Weight matrices ``(out, in)`` and biases, detached, in layer order (as the
        forward pass uses them: rounded when training is quantisation-aware)."""
        return ([self.effective_weight(layer).detach() for layer in self.layers],
                [None if layer.bias is None else layer.bias.detach() for layer in self.layers])
