"""Networks built from the contract's LIF layers.

:class:`SpikingNet` is a stack of fully connected LIF layers, the shape every hardware
target builds. Layers run one after another over all time steps (each layer's whole input
is known once the previous layer has run), which is exactly the contract's step-by-step
semantics for a feed-forward network, and much faster.

Hardware-aware training changes only the weights a layer uses (:meth:`SpikingNet.layer_params`),
in this order, each optional:

1. pruning masks ``W ⊙ M`` (:mod:`spikeforge.pruning`);
2. the digital target's ``k``-bit rounding (:func:`~spikeforge.hardware.quantize.fake_quantize`)
   or the analog target's resistor-series snap
   (:func:`~spikeforge.hardware.quantize.fake_snap`, biases included: a bias is a resistor
   from an always-on line to the membrane, with the layer's ``R_unit``, chosen as the
   analog export chooses it, :func:`~spikeforge.hardware.quantize.series_levels`);
3. in training mode only, part tolerance: every weight and bias times ``(1 + u)``,
   ``u ~ U(-weight_noise, weight_noise)`` drawn afresh per forward pass, and every neuron's
   input current times ``(1 + g)``, ``g ~ U(-gain_noise, gain_noise)`` per neuron (the
   membrane capacitor's tolerance acts as a gain, like a per-neuron threshold error).

:meth:`SpikingNet.weights` returns exactly steps 1-2: the values the hardware realises.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.encoders import encode
from spikeforge.hardware.quantize import fake_quantize, fake_snap, series_levels
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
                 dropout: float = 0.0, weight_bits: int | None = None,
                 series: str | None = None, r_range: tuple[float, float] = (1e4, 1e6),
                 weight_noise: float = 0.0, gain_noise: float = 0.0, masked: bool = False):
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
        # Analog target: magnitudes snapped to a resistor series within r_range (ohms).
        self.series = series
        self.r_range = (float(r_range[0]), float(r_range[1]))
        # Part tolerances, simulated in training mode only.
        self.weight_noise = weight_noise
        self.gain_noise = gain_noise
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=spec.bias)
            for n_in, n_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=True)
        )
        # Pruning masks (spikeforge.pruning) and the mean square of each layer's inputs in
        # training (what a weight's size is worth): buffers, so checkpoints keep them.
        self.masked = masked
        if masked:
            for i, layer in enumerate(self.layers):
                self.register_buffer(f"mask{i}", torch.ones_like(layer.weight))
                self.register_buffer(f"input_power{i}", torch.zeros(layer.in_features))

    def forward(self, x: torch.Tensor, record: bool = False) -> SpikingOutput:
        """x: raw samples ``(batch, features)`` in [0, 1], or spikes ``(T, batch, features)``."""
        spec = self.spec
        s = encode(x, spec.encoding)
        recorded = []
        for i in range(len(self.layers)):
            if self.masked and self.training:
                self._track_input_power(i, s)
            if i > 0 and self.training and self.dropout > 0:
                keep = torch.rand(s.shape[1:], device=s.device) >= self.dropout
                s = s * (keep / (1.0 - self.dropout))
            weight, bias = self.layer_params(i, noise=self.training)
            if s.dim() == 2:  # a held current: W·x + b once, not once per step
                current = F.linear(s, weight, bias)
            else:
                steps, batch, n = s.shape
                current = F.linear(s.reshape(steps * batch, n), weight, bias)
                current = current.reshape(steps, batch, -1)
            if self.training and self.gain_noise > 0:
                current = current * _tolerance(current.shape[-1:], self.gain_noise, current)
            s = lif_sequence(current, spec.neuron, spec.timesteps, self.surrogate)
            if record:
                recorded.append(s)
        return SpikingOutput(s.sum(0), recorded if record else None)

    def layer_params(self, i: int, noise: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias of layer ``i`` as the forward pass uses them (module docstring):
        masked, rounded or snapped, and with part tolerance when ``noise``."""
        layer = self.layers[i]
        weight, bias = layer.weight, layer.bias
        if self.masked:
            weight = weight * getattr(self, f"mask{i}")
        if self.weight_bits is not None:
            weight = fake_quantize(weight, self.weight_bits)
        elif self.series is not None:
            # the first layer's lines carry scale · x: its resistors realise w · scale
            encoding = self.spec.encoding
            scale = encoding.scale if i == 0 and encoding.type == "constant_current" else 1.0
            levels = series_levels(weight, bias, self.series, *self.r_range, input_scale=scale)
            weight = (fake_snap(weight, levels) if scale == 1.0
                      else fake_snap(weight * scale, levels) / scale)
            bias = None if bias is None else fake_snap(bias, levels)
        if noise and self.weight_noise > 0:
            weight = weight * _tolerance(weight.shape, self.weight_noise, weight)
            if bias is not None:
                bias = bias * _tolerance(bias.shape, self.weight_noise, bias)
        return weight, bias

    @torch.no_grad()
    def _track_input_power(self, i: int, s: torch.Tensor) -> None:
        """Exponential moving average (0.9 per batch) of the mean square of layer ``i``'s
        inputs, over samples and steps: pixels' mean square on the first layer, firing
        probabilities per clock on the others."""
        power = s.detach().float().pow(2).reshape(-1, s.shape[-1]).mean(0)
        buffer = getattr(self, f"input_power{i}")
        if not bool(buffer.any()):
            buffer.copy_(power)
        else:
            buffer.mul_(0.9).add_(power, alpha=0.1)

    def input_norms(self) -> list[torch.Tensor] | None:
        """Root mean square of each layer's inputs in training (``None`` without masks)."""
        if not self.masked:
            return None
        return [getattr(self, f"input_power{i}").sqrt() for i in range(len(self.layers))]

    def masks(self) -> list[torch.Tensor] | None:
        """The pruning masks, one per layer (``None`` when the model has none)."""
        if not self.masked:
            return None
        return [getattr(self, f"mask{i}") for i in range(len(self.layers))]

    @torch.no_grad()
    def set_masks(self, masks: list[torch.Tensor]) -> None:
        """Replace the pruning masks and zero the pruned weights."""
        for i, mask in enumerate(masks):
            getattr(self, f"mask{i}").copy_(mask)
        self.apply_masks_()

    @torch.no_grad()
    def apply_masks_(self) -> None:
        """Zero the parameters of pruned weights (after each optimiser step: Adam's momentum
        would otherwise move them, although the forward pass never uses them)."""
        if self.masked:
            for layer, mask in zip(self.layers, self.masks(), strict=True):
                layer.weight.mul_(mask)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Classes as the hardware decodes them (spike counts, ties to the lowest index)."""
        return decode(self(x).counts)

    def weights(self) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Weight matrices ``(out, in)`` and biases, detached, in layer order: exactly what the
        hardware realises (masked; rounded or snapped to the resistor series when training
        is hardware-aware; never with simulated tolerance)."""
        params = [self.layer_params(i) for i in range(len(self.layers))]
        return ([w.detach() for w, _ in params],
                [None if b is None else b.detach() for _, b in params])


def _tolerance(shape: tuple[int, ...] | torch.Size, tol: float, like: torch.Tensor
               ) -> torch.Tensor:
    """Factors ``1 + u`` with ``u ~ U(-tol, tol)`` (a part of tolerance ``±tol``), from the
    global RNG so a seeded run is reproducible."""
    u = torch.rand(shape, device=like.device, dtype=like.dtype)
    return 1.0 + tol * (2.0 * u - 1.0)
