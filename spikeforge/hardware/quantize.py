"""Quantisation: trained float weights -> what a target can realise.

Digital target (:class:`~spikeforge.spec.DigitalSpec`): per layer ``l`` a weight scale
``s_l = max|W_l| / (2^(k-1) - 1)`` and integer weights ``W_int = round(W / s_l)``. One
integer unit of layer ``l``'s current is worth ``q_l`` model units::

    q_1 = s_1 · input_scale / (2^input_bits - 1)     (input codes, constant current)
    q_l = s_l                                          (spike inputs: 0/1)

so biases become ``round(b / q_l)`` and thresholds ``round(θ / q_l)``, and the integer
membrane is the float one divided by ``q_l``. The decay becomes the fixed-point
``decay_num / 2^decay_shift`` nearest to the trained decay (exact when the network was
trained with a representable decay, such as 230/256).

:func:`fake_quantize` is the training-time counterpart (straight-through estimator) used by
quantisation-aware training.

Analog target (:mod:`spikeforge.hardware.components`): every non-zero weight is one resistor
``R = R_unit / |w|`` from a standard series inside ``[r_min, r_max]``, with the layer's
``R_unit = max|W_l| · r_min``. :func:`fake_snap` is its training-time counterpart: the
forward pass uses exactly the magnitudes the series can realise (the one rule,
:func:`~spikeforge.hardware.components.snap_magnitudes`), the backward pass the identity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.errors import SpecError, SpikeforgeError
from spikeforge.hardware.components import layer_levels, snap_magnitudes_torch
from spikeforge.spec import DigitalSpec, NetworkSpec


@dataclass
class QuantizedNetwork:
    """A network in the digital target's integers, with how each layer maps back.

    spec:            the contract with ``digital`` set (and ``neuron.decay`` = fixed point).
    weights, biases: int64 arrays (biases ``None`` when the network has none).
    weight_scales:   ``s_l``, model units of weight per integer unit.
    current_quanta:  ``q_l``, model units of current per integer unit of membrane.
    membrane_bits:   signed width that holds every membrane value of each layer.
    """

    spec: NetworkSpec
    weights: list[np.ndarray]
    biases: list[np.ndarray | None]
    weight_scales: list[float]
    current_quanta: list[float]
    membrane_bits: list[int]


def weight_scale(w: np.ndarray, bits: int) -> float:
    """Symmetric scale: the largest magnitude maps to the largest code ``2^(bits-1) - 1``."""
    largest = float(np.abs(w).max())
    return largest / (2 ** (bits - 1) - 1) if largest > 0 else 1.0


def to_digital(spec: NetworkSpec, weights: Sequence[np.ndarray],
               biases: Sequence[np.ndarray | None], weight_bits: int = 8, decay_shift: int = 8,
               input_bits: int = 8) -> QuantizedNetwork:
    """Quantise float weights and constants for the digital target (module docstring)."""
    try:  # the target's limits, checked before any arithmetic depends on them
        DigitalSpec(weight_bits, input_bits, 1, decay_shift)
    except SpecError as e:
        raise SpecError(f"{e} (set by --bits and --decay-shift)") from None
    decay_num = round(spec.neuron.decay * 2**decay_shift)
    if decay_num < 1:
        raise SpikeforgeError(f"decay {spec.neuron.decay} rounds to 0 with decay_shift "
                              f"{decay_shift}; use a larger --decay-shift")
    input_max = 2**input_bits - 1
    w_max = 2 ** (weight_bits - 1) - 1
    int_weights, int_biases, scales, quanta, thresholds, membrane_bits = [], [], [], [], [], []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        w = np.asarray(w, dtype=np.float64)
        scale = weight_scale(w, weight_bits)
        w_int = np.clip(np.rint(w / scale), -w_max, w_max).astype(np.int64)
        quantum = scale
        input_peak = 1
        if layer == 0 and spec.encoding.type == "constant_current":
            quantum = scale * spec.encoding.scale / input_max
            input_peak = input_max
        b_int = None if b is None else np.rint(np.asarray(b, np.float64) / quantum).astype(np.int64)
        threshold = max(1, round(spec.neuron.threshold / quantum))
        # |U| stays below the largest input current plus the threshold (above it the neuron
        # fires and resets), and a negative membrane stays above -max|I| / (1 - decay).
        peak_current = float(np.abs(w_int).sum(1).max() * input_peak
                             + (0 if b_int is None else np.abs(b_int).max()))
        leak = 1 - decay_num / 2**decay_shift
        bound = peak_current / leak if leak > 0 else peak_current * spec.timesteps
        membrane_bits.append(math.ceil(math.log2(bound + threshold + 1)) + 1)
        int_weights.append(w_int)
        int_biases.append(b_int)
        scales.append(scale)
        quanta.append(quantum)
        thresholds.append(threshold)
    digital = DigitalSpec(weight_bits, input_bits, decay_num, decay_shift, tuple(thresholds))
    neuron = dataclasses.replace(spec.neuron, decay=digital.decay)
    return QuantizedNetwork(dataclasses.replace(spec, neuron=neuron, digital=digital),
                            int_weights, int_biases, scales, quanta, membrane_bits)


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` rounded to ``bits``-bit symmetric codes in the forward pass, identity in the
    backward pass (straight-through estimator)::

        s = max|w| / (2^(bits-1) - 1),   w_q = s · round(w / s)
    """
    scale = (w.detach().abs().max() / (2 ** (bits - 1) - 1)).clamp(min=1e-12)
    quantized = torch.round(w / scale) * scale
    return w + (quantized - w).detach()


def series_levels(weight: torch.Tensor, bias: torch.Tensor | None, series: str, r_min: float,
                  r_max: float, input_scale: float = 1.0) -> torch.Tensor:
    """The magnitudes (model units, float64, ascending) that one resistor of ``series`` in
    ``[r_min, r_max]`` realises in a layer, with the layer's ``R_unit`` chosen as the
    analog export chooses it (:mod:`spikeforge.hardware.circuit`): the largest of
    ``max|w| · input_scale`` and ``max|b|`` gets the smallest resistor, i.e.
    :func:`~spikeforge.hardware.components.layer_levels` of that largest magnitude.
    ``input_scale`` is the encoding's scale on a constant-current first layer (its input
    lines carry ``scale · x``), else 1. No gradient flows through the levels."""
    largest = float(weight.detach().abs().max()) * input_scale if weight.numel() else 0.0
    if bias is not None and bias.numel():
        largest = max(largest, float(bias.detach().abs().max()))
    return torch.from_numpy(layer_levels(largest, series, r_min, r_max)).to(weight.device)


def fake_snap(w: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """``w`` with its magnitudes snapped onto the realisable ``levels`` (a resistor series,
    :func:`series_levels`) in the forward pass, sign kept, identity in the backward pass
    (straight-through estimator)::

        w_s = sign(w) · snap(|w|; levels)
        snap(m) = 0                 if m < L_1 · ρ^(-1/2)   (pruned: no part)
                  L_K               if m > L_K              (clipped to the smallest resistor)
                  argmin_L |log m - log L|                  otherwise
        dL/dw = dL/dw_s

    with ``L_1 < ... < L_K`` the levels and ``ρ = (L_K / L_1)^(1/(K-1))`` the mean series
    step. The snap runs in float64 (as export does) and returns ``w``'s dtype, so the
    values equal :func:`~spikeforge.hardware.components.snap_magnitudes` exactly.
    """
    magnitude = snap_magnitudes_torch(w.detach().abs().double(), levels.double())
    snapped = torch.sign(w.detach()) * magnitude.to(w.dtype)
    return snapped + (w - w.detach())  # exactly the snapped values; gradient 1 to w
