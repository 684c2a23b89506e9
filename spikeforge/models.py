"""Networks: :class:`SpikingNet` (fully connected) and :class:`ConvSpikingNet`.

:class:`SpikingNet` is a stack of fully connected LIF layers, the shape every hardware
target builds. Its neurons are the contract's LIF (a fused time loop) unless another cell
is asked for (``cell="alif"``, ...; :mod:`spikeforge.neurons.cells`, run step by step and
built by no hardware target). :class:`ConvSpikingNet` puts convolutional LIF layers with
max pooling in front of such a stack (software only). Both return an :class:`SpikingOutput`:
output spike counts and the output layer's accumulated membrane.

Layers run one after another over all time steps (each layer's whole input
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

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.encoders import Encoder, encode, time_major
from spikeforge.errors import ConfigError
from spikeforge.hardware.quantize import fake_quantize, fake_snap, series_levels
from spikeforge.neurons.lif import (
    lif_readout,
    lif_sequence,
    membrane_sequence,
    readout_fusable,
    synaptic_current,
)
from spikeforge.spec import EncodingSpec, NetworkSpec, NeuronSpec, decode
from spikeforge.surrogates import FastSigmoid, Surrogate

#: name prefix of the per-layer buffers holding each input's running mean square (pruning)
INPUT_POWER = "input_power"


class SpikingOutput(NamedTuple):
    """counts: output spike counts ``(batch, classes)``; spikes: every layer's
    ``(T, batch, n)`` spike trains when asked for (``record=True``), else ``None``;
    membrane: the output layer's membrane before reset summed over time,
    ``sum_t U_out[t]`` ``(batch, classes)`` (for :func:`~spikeforge.losses.ce_membrane_loss`)."""

    counts: torch.Tensor
    spikes: list[torch.Tensor] | None
    membrane: torch.Tensor | None = None


class SpikingNet(nn.Module):
    """Fully connected LIF network.

    Build it from a :class:`~spikeforge.spec.NetworkSpec` (what training and export do), or
    from sizes as surrogate-gradient libraries do::

        SpikingNet(784, 128, 10, n_layers=1, timesteps=25, decay=0.9, threshold=1.0)

    ``n_layers`` hidden layers of ``n_hidden`` neurons (``n_hidden`` may also be a tuple of
    widths). ``forward`` takes raw samples ``(batch, features)`` (encoded by ``encoder``:
    a held current by default) or spike trains ``(T, batch, features)``.

    cell:   the neuron model, ``"lif"`` (the contract's, fused and fast) or any name in
            :data:`spikeforge.neurons.cells.CELLS` with ``cell_params``; ``learn_decay`` /
            ``learn_threshold`` make the cells' decay / threshold per-neuron parameters.
            Only the plain LIF (and IF for the digital target) can be exported.
    """

    def __init__(self, spec: NetworkSpec | int, n_hidden: int | tuple[int, ...] | None = None,
                 n_output: int | None = None, n_layers: int = 1, *,
                 timesteps: int = 25, decay: float = 0.9, threshold: float = 1.0,
                 reset: str = "zero", surrogate: Surrogate | None = None,
                 dropout: float = 0.0, weight_bits: int | None = None,
                 series: str | None = None, r_range: tuple[float, float] = (1e4, 1e6),
                 weight_noise: float = 0.0, gain_noise: float = 0.0, masked: bool = False,
                 encoder: Encoder | None = None, cell: str = "lif",
                 cell_params: dict[str, Any] | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False):
        super().__init__()
        if not isinstance(spec, NetworkSpec):
            spec = network_from_sizes(spec, n_hidden, n_output, n_layers, timesteps=timesteps,
                                      decay=decay, threshold=threshold, reset=reset,
                                      encoder=encoder)
        self.spec = spec
        self.surrogate = surrogate or FastSigmoid()
        # Training-time encoding of raw samples (Poisson, latency); None: the spec's own.
        self.encoder = None if encoder is None or encoder.kind == "constant_current" else encoder
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
        # Other neuron models run step by step through their cells (spikeforge.neurons.cells).
        self.cell = cell
        self.cells: nn.ModuleList | None = None
        if cell != "lif" or learn_decay or learn_threshold or cell_params:
            from spikeforge.neurons.cells import make_cell

            self.cells = nn.ModuleList(
                make_cell(cell, n, spec.neuron, self.surrogate, cell_params or {},
                          learn_decay=learn_decay, learn_threshold=learn_threshold)
                for n in spec.layer_sizes[1:])
        # Pruning masks (spikeforge.pruning) and the mean square of each layer's inputs in
        # training (what a weight's size is worth): buffers, so checkpoints keep them.
        self.masked = masked
        if masked:
            for i, layer in enumerate(self.layers):
                self.register_buffer(f"mask{i}", torch.ones_like(layer.weight))
                self.register_buffer(f"{INPUT_POWER}{i}", torch.zeros(layer.in_features))

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raw samples to the first layer's input: the training-time encoder (Poisson draws
        from the global RNG in training and from a fixed seed in evaluation, so a score is
        reproducible), then the contract's encoding. Event samples ``(batch, T, features)``
        uint8 are made time-major first (:func:`~spikeforge.encoders.time_major`)."""
        x = time_major(x)
        if self.encoder is not None and x.dim() == 2:
            generator = None
            if not self.training:
                generator = torch.Generator(x.device).manual_seed(0)
            x = self.encoder(x, generator)
        return encode(x, self.spec.encoding)

    def forward(self, x: torch.Tensor, record: bool = False,
                membrane: bool = True) -> SpikingOutput:
        """x: raw samples ``(batch, features)`` in [0, 1], event samples ``(batch, T,
        features)`` uint8, or spikes ``(T, batch, features)`` float.

        ``membrane=False`` skips the output layer's accumulated membrane (``membrane`` is
        then ``None``): its differentiable time loop costs about a third of a training
        step of the reference network, and ``train_epoch`` asks for it only when the loss
        reads it (``ce_membrane``).
        """
        spec = self.spec
        s = self.encode_input(x)
        recorded = []
        accumulated = None
        last = len(self.layers) - 1
        fuse = self._fuse_readout(record, membrane)
        for i in range(len(self.layers)):
            if self.masked and self.training:
                self._track_input_power(i, s)
            if i > 0 and self.training and self.dropout > 0:
                s = s * self._dropout_scale(s.shape[1:], s.device)
            weight, bias = self.layer_params(i, noise=self.training)
            current = synaptic_current(s, weight, bias)  # held input: W·x + b once for all T
            if self.training and self.gain_noise > 0:
                current = current * _tolerance(current.shape[-1:], self.gain_noise, current)
            if fuse and i == last - 1 and readout_fusable(current, spec.neuron, self.surrogate):
                return self._readout(current)
            if self.cells is None:
                s = lif_sequence(current, spec.neuron, spec.timesteps, self.surrogate)
                if i == last and membrane:
                    accumulated = membrane_sequence(current, s, spec.neuron,
                                                    spec.timesteps).sum(0)
            else:
                from spikeforge.neurons.cells import run_cell

                s, trace, _ = run_cell(self.cells[i], current, spec.timesteps)
                if i == last and membrane:
                    accumulated = trace.sum(0)
            if record:
                recorded.append(s)
        return SpikingOutput(s.sum(0), recorded if record else None, accumulated)

    def _dropout_scale(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Dropout of a layer's inputs ``(batch, n)``: 0 for a silenced input, else
        ``1 / (1 - p)``, drawn from the global RNG and held for all steps."""
        keep = torch.rand(shape, device=device) >= self.dropout
        return keep / (1.0 - self.dropout)

    def _fuse_readout(self, record: bool, membrane: bool) -> bool:
        """Whether training may run the last hidden layer and the output layer as one node
        (:func:`~spikeforge.neurons.lif.lif_readout`): gradients on, the contract's LIF, only
        the output counts asked for, and nothing drawn or tracked between the output
        layer's inputs and its LIF loop (gain tolerance, pruning's input statistics)."""
        return (torch.is_grad_enabled() and self.cells is None and len(self.layers) > 1
                and not record and not membrane
                and not (self.training and (self.masked or self.gain_noise > 0)))

    def _readout(self, current: torch.Tensor) -> SpikingOutput:
        """The last hidden layer (driven by ``current``) and the output layer through
        :func:`~spikeforge.neurons.lif.lif_readout`, with the draws of the layer-by-layer
        loop in its order (the output layer's dropout mask, then its part tolerance)."""
        last = len(self.layers) - 1
        scale = None
        if self.training and self.dropout > 0:
            scale = self._dropout_scale(current.shape[-2:], current.device)
        weight, bias = self.layer_params(last, noise=self.training)
        counts = lif_readout(current, weight, bias, self.spec.neuron, self.spec.timesteps,
                             self.surrogate, scale)
        return SpikingOutput(counts, None, None)

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
        buffer = getattr(self, f"{INPUT_POWER}{i}")
        if not bool(buffer.any()):
            buffer.copy_(power)
        else:
            buffer.mul_(0.9).add_(power, alpha=0.1)

    def input_norms(self) -> list[torch.Tensor] | None:
        """Root mean square of each layer's inputs in training (``None`` without masks)."""
        if not self.masked:
            return None
        return [getattr(self, f"{INPUT_POWER}{i}").sqrt() for i in range(len(self.layers))]

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


def network_from_sizes(n_input: int, n_hidden: int | tuple[int, ...] | None, n_output: int | None,
                       n_layers: int = 1, *, timesteps: int = 25, decay: float = 0.9,
                       threshold: float = 1.0, reset: str = "zero",
                       encoder: Encoder | None = None) -> NetworkSpec:
    """The :class:`~spikeforge.spec.NetworkSpec` of ``n_input -> n_layers x n_hidden ->
    n_output`` LIF layers (``n_hidden`` may instead be a tuple of widths)."""
    if n_output is None:
        raise TypeError("SpikingNet(n_input, n_hidden, n_output, ...) needs n_output")
    if n_hidden is None:
        hidden: tuple[int, ...] = ()
    elif isinstance(n_hidden, int):
        hidden = (n_hidden,) * n_layers
    else:
        hidden = tuple(n_hidden)
    return NetworkSpec(layer_sizes=(n_input, *hidden, n_output), timesteps=timesteps,
                       neuron=NeuronSpec(decay, threshold, reset),
                       encoding=encoder.spec if encoder is not None else EncodingSpec())


def conv_output_side(side: int, kernel_size: int, pool: int, n_convs: int) -> int:
    """Image side after ``n_convs`` rounds of a valid ``kernel_size`` convolution and
    ``pool`` x ``pool`` pooling (floor)."""
    for _ in range(n_convs):
        side = (side - kernel_size + 1) // pool
    return side


class ConvSpikingNet(nn.Module):
    """Convolutional LIF network: ``[Conv2d -> LIF -> MaxPool] x len(channels) -> flatten ->
    SpikingNet (dense LIF layers)``.

    image_shape: ``(height, width)`` or ``(channels, height, width)`` of the input; samples
                 arrive flattened ``(batch, C·H·W)`` like every other dataset here.
    channels:    output channels of each convolution (valid padding, stride 1).
    n_hidden:    widths of the dense hidden layers after the convolutions (may be empty).

    With a held input current (the default encoding) the first convolution runs once per
    sample rather than once per step, as in :class:`SpikingNet`. Max pooling of spike maps
    is a logical OR over each window. Every LIF layer uses the fused time loop.
    Software only: the hardware targets build fully connected networks and refuse this one.
    """

    def __init__(self, image_shape: tuple[int, ...], n_output: int,
                 channels: tuple[int, ...] = (16, 32), kernel_size: int = 5, pool: int = 2,
                 n_hidden: tuple[int, ...] = (128,), *, timesteps: int = 25,
                 neuron: NeuronSpec | None = None, surrogate: Surrogate | None = None,
                 dropout: float = 0.0, encoder: Encoder | None = None):
        super().__init__()
        shape = tuple(image_shape)
        self.image_shape = (1, *shape) if len(shape) == 2 else shape
        in_channels, height, width = self.image_shape
        side = min(height, width)
        if conv_output_side(side, kernel_size, pool, len(channels)) < 1:
            raise ConfigError(f"channels = {list(channels)} with kernel_size {kernel_size} "
                              f"and pool {pool} shrink a {height}x{width} image to nothing: "
                              f"use fewer convolutions or a smaller kernel or pool")
        self.neuron = neuron or NeuronSpec()
        self.timesteps = timesteps
        self.surrogate = surrogate or FastSigmoid()
        self.pool = pool
        self.encoder = None if encoder is None or encoder.kind == "constant_current" else encoder
        self.convs = nn.ModuleList()
        for c_out in channels:
            self.convs.append(nn.Conv2d(in_channels, c_out, kernel_size))
            in_channels = c_out
        h = conv_output_side(height, kernel_size, pool, len(channels))
        w = conv_output_side(width, kernel_size, pool, len(channels))
        # The dense stack receives the pooled spike maps: spike lines.
        head_spec = NetworkSpec(layer_sizes=(in_channels * h * w, *n_hidden, n_output),
                                timesteps=timesteps, neuron=self.neuron,
                                encoding=EncodingSpec("spikes"))
        self.head = SpikingNet(head_spec, self.surrogate, dropout=dropout)
        self.dropout = dropout

    @property
    def spec(self) -> NetworkSpec:
        """The dense stack's contract (the convolutions in front are not part of it)."""
        return self.head.spec

    def forward(self, x: torch.Tensor, record: bool = False,
                membrane: bool = True) -> SpikingOutput:
        """x: raw samples ``(batch, C·H·W)`` in [0, 1], event samples ``(batch, T, C·H·W)``
        uint8, or spikes ``(T, batch, C·H·W)`` float; ``membrane`` as for
        :meth:`SpikingNet.forward`."""
        steps = self.timesteps
        x = time_major(x)
        if self.encoder is not None and x.dim() == 2:
            generator = None if self.training else torch.Generator(x.device).manual_seed(0)
            x = self.encoder(x, generator)
        held = x.dim() == 2  # one image for all steps, else a spike map per step
        batch = x.shape[0] if held else x.shape[1]
        h = x.reshape(batch if held else steps * batch, *self.image_shape)
        recorded = []
        for conv in self.convs:
            current = conv(h)
            maps = current.shape[1:]
            current = current.reshape(batch, -1) if held else current.reshape(steps, batch, -1)
            s = lif_sequence(current, self.neuron, steps, self.surrogate)
            if record:
                recorded.append(s)
            h = F.max_pool2d(s.reshape(steps * batch, *maps), self.pool)
            held = False
        out = self.head(h.reshape(steps, batch, -1), record=record, membrane=membrane)
        return SpikingOutput(out.counts, recorded + out.spikes if record else None,
                             out.membrane)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Classes by spike count, ties to the lowest index."""
        return decode(self(x).counts)
