"""The contract's LIF neuron for training: a fused time loop with a surrogate gradient.

The equations are those of :mod:`spikeforge.spec` (see :func:`spikeforge.spec.lif_step`).
Here they run over all ``T`` steps of a layer at once, in one autograd function, because
a feed-forward layer's whole input ``I[1..T]`` is known before its first step:

forward   ``U[t] = decay · V[t-1] + I[t] · active[t]``, ``s[t] = U[t] >= threshold``, then the
          reset; only the spikes and the surrogate slope at each step are kept.
backward  with the reset treated as a constant (as snnTorch and Norse do), the gradient
          obeys a first-order linear recurrence run backwards in time::

              dL/dU[t] = dL/ds[t] · σ'(U[t] - θ) · active[t]
                         + decay · keep[t] · dL/dU[t+1]
              dL/dI[t] = dL/dU[t] · active[t]

          with ``keep = 1 - s`` for reset "zero" and ``keep = 1`` for "subtract".

Two backends compute the loops: Numba kernels on the CPU (one call per layer; see
``spikeforge/kernels.py``) and torch tensor operations anywhere else (GPU), or everywhere when
``SPIKEFORGE_KERNELS=torch``. Both are tested against the contract's reference.

When the input current is the same at every step (constant-current encoding), pass it
with shape ``(batch, n)``: it is added at each step without being copied ``T`` times, and
its gradient is the sum over time.

:func:`lif_readout` runs the last hidden layer and the output layer as one node for
training on the CPU, one sample at a time through both layers: the same LIF steps, and a
backward pass that re-runs the hidden layer from its current instead of storing and
re-reading its spikes and slopes.

:func:`lif_sequence_unfused` is the same computation written as a plain autograd loop:
slower, obviously right, and the yardstick the fused loop is tested against.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge.spec import NeuronSpec
from spikeforge.surrogates import FastSigmoid, Surrogate

#: spikes, the surrogate slope (or, without a surrogate, the membrane on the torch path and
#: nothing on the kernels), and where each neuron listened (refractory period only)
Saved = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _use_kernels(current: torch.Tensor) -> bool:
    return current.device.type == "cpu" and os.environ.get("SPIKEFORGE_KERNELS") != "torch"


def _current_at(current: torch.Tensor, t: int) -> torch.Tensor:
    return current if current.dim() == 2 else current[t]


def _flat(x: np.ndarray) -> np.ndarray:
    """``(T, ...)`` array as ``(T, M)`` for the kernels (a view, no copy)."""
    return x.reshape(x.shape[0], -1)


# The kernels are called once per layer and pass, so the glue around them is a visible share
# of a small network's training step: arrays are made and viewed with NumPy (about half the
# cost of torch's allocation, view and .numpy() calls) and handed to torch without copies.


def _forward_kernels(current: torch.Tensor, neuron: NeuronSpec, timesteps: int,
                     surrogate: Surrogate | None) -> Saved:
    from spikeforge import kernels

    held = current.detach().contiguous().numpy()
    constant = held.ndim == 2
    shape = (timesteps, *held.shape[-2:])
    spikes = np.empty(shape, held.dtype)
    kind, param = kernels.surrogate_code(surrogate or FastSigmoid())
    if surrogate is None:  # inference: no slopes
        kind = kernels.NO_SLOPE
    slope = np.empty(shape if kind != kernels.NO_SLOPE else (1, 1), held.dtype)
    active = np.empty(shape if neuron.refractory else (1, 1), held.dtype)
    number = held.dtype.type
    kernels.lif_forward(held.reshape(1, -1) if constant else _flat(held), constant,
                        number(neuron.decay), number(neuron.threshold), neuron.reset == "zero",
                        neuron.refractory, kind, number(param), _flat(spikes), _flat(slope),
                        _flat(active))
    spikes_t = torch.from_numpy(spikes)
    slope_t = torch.from_numpy(slope) if kind != kernels.NO_SLOPE else None
    active_or_none = torch.from_numpy(active) if neuron.refractory else None
    if slope_t is not None and kind == kernels.STORE_MEMBRANE:  # slope holds U - θ
        slope_t = surrogate.derivative(slope_t)
        if active_or_none is not None:
            slope_t.mul_(active_or_none)
    return spikes_t, slope_t, active_or_none


def _run_torch(current: torch.Tensor, neuron: NeuronSpec, timesteps: int) -> Saved:
    """Spikes, membrane before reset ``U`` and (with a refractory period) the 0/1 mask of
    steps at which each neuron listened, with torch operations (any device)."""
    shape = current.shape[-2:]
    decay, threshold = neuron.decay, neuron.threshold
    membrane = torch.empty((timesteps, *shape), dtype=current.dtype, device=current.device)
    steps = membrane.unbind(0)
    inputs = [current] * timesteps if current.dim() == 2 else current.unbind(0)
    if neuron.refractory == 0 and neuron.reset == "zero":
        # Track the negated membrane so that fire-and-reset is one call: threshold(-U, -θ, 0)
        # keeps -U where U < θ and writes the reset value 0 where U >= θ. Negation is exact,
        # so U is bit for bit the contract's.
        negated = -current
        neg_inputs = negated.unbind(0) if current.dim() == 3 else [negated] * timesteps
        w = torch.zeros(shape, dtype=current.dtype, device=current.device)
        for n, neg_i in zip(steps, neg_inputs, strict=True):
            torch.mul(w, decay, out=n).add_(neg_i)
            w = F.threshold(n, -threshold, 0.0)
        membrane.neg_()
        return (membrane >= threshold).to(current.dtype), membrane, None
    v = torch.zeros(shape, dtype=current.dtype, device=current.device)
    if neuron.refractory == 0:  # reset by subtraction
        for u, i in zip(steps, inputs, strict=True):
            torch.mul(v, decay, out=u).add_(i)
            v = torch.where(u >= threshold, u - threshold, u)
        return (membrane >= threshold).to(current.dtype), membrane, None
    spikes = torch.empty((timesteps, *shape), dtype=torch.bool, device=current.device)
    active = torch.empty_like(spikes)
    refractory_left = torch.zeros(shape, dtype=torch.int32, device=current.device)
    for t, (u, i) in enumerate(zip(steps, inputs, strict=True)):
        act = torch.le(refractory_left, 0, out=active[t])
        torch.mul(v, decay, out=u).add_(i * act)
        s = torch.logical_and(u >= threshold, act, out=spikes[t])
        v = u * ~s if neuron.reset == "zero" else u - threshold * s
        refractory_left = torch.where(s, neuron.refractory, (refractory_left - 1).clamp_(min=0))
    return spikes.to(current.dtype), membrane, active.to(current.dtype)


def _forward(current: torch.Tensor, neuron: NeuronSpec, timesteps: int,
             surrogate: Surrogate | None) -> Saved:
    """The forward time loop: spikes (0/1 in the current's dtype), the surrogate slope
    ``σ'(U - θ)·active`` (only when a surrogate is given: training) and, with a refractory
    period, where each neuron was listening (0/1)."""
    if _use_kernels(current):
        return _forward_kernels(current, neuron, timesteps, surrogate)
    spikes, membrane, active = _run_torch(current, neuron, timesteps)
    if surrogate is None:
        return spikes, membrane, active
    slope = surrogate.derivative(membrane.sub_(neuron.threshold))
    if active is not None:
        slope.mul_(active)
    return spikes, slope, active


def _backward(grad_spikes: torch.Tensor, spikes: torch.Tensor, slope: torch.Tensor,
              active: torch.Tensor | None, neuron: NeuronSpec, constant: bool) -> torch.Tensor:
    """``dL/dI`` from ``dL/ds`` by the reverse-time recurrence (module docstring)."""
    if _use_kernels(grad_spikes):
        from spikeforge import kernels

        spikes_np = spikes.numpy()
        dtype = spikes_np.dtype
        grad_current = np.empty((1, *spikes.shape[1:]) if constant else spikes.shape, dtype)
        kernels.lif_backward(_flat(grad_spikes.contiguous().numpy()), _flat(slope.numpy()),
                             _flat(spikes_np),
                             np.empty((1, 1), dtype) if active is None else _flat(active.numpy()),
                             dtype.type(neuron.decay), neuron.reset == "zero",
                             neuron.refractory, constant, _flat(grad_current))
        return torch.from_numpy(grad_current[0] if constant else grad_current)
    grad_u = grad_spikes * slope
    g = grad_u.unbind(0)
    if neuron.reset == "zero":
        carry = (1.0 - spikes).mul_(neuron.decay).unbind(0)
        for t in range(len(g) - 2, -1, -1):
            g[t].addcmul_(carry[t], g[t + 1])
    else:
        for t in range(len(g) - 2, -1, -1):
            g[t].add_(g[t + 1], alpha=neuron.decay)
    grad_current = grad_u if active is None else grad_u.mul_(active)
    return grad_current.sum(0) if constant else grad_current


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current: torch.Tensor, neuron: NeuronSpec, timesteps: int,  # type: ignore[override]
                surrogate: Surrogate) -> torch.Tensor:
        spikes, slope, active = _forward(current, neuron, timesteps, surrogate)
        ctx.save_for_backward(spikes, slope, active)
        ctx.neuron = neuron
        ctx.constant_current = current.dim() == 2
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        spikes, slope, active = ctx.saved_tensors
        return (_backward(grad_spikes, spikes, slope, active, ctx.neuron, ctx.constant_current),
                None, None, None)


def lif_sequence(current: torch.Tensor, neuron: NeuronSpec, timesteps: int,
                 surrogate: Surrogate | None = None) -> torch.Tensor:
    """Spikes ``(T, batch, n)`` of one LIF layer driven by ``current``.

    current:   ``(T, batch, n)``, or ``(batch, n)`` for a current held at every step.
    neuron:    the contract's constants (decay, threshold, reset, refractory).
    surrogate: stand-in derivative for the backward pass (default :class:`FastSigmoid`).
    """
    if current.dim() == 3 and current.shape[0] != timesteps:
        raise ValueError(f"current has {current.shape[0]} time steps, expected {timesteps}")
    if not (torch.is_grad_enabled() and current.requires_grad):  # inference: no surrogate
        return _forward(current, neuron, timesteps, None)[0]
    return _LIFSequence.apply(current, neuron, timesteps, surrogate or FastSigmoid())


def synaptic_current(s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                     ) -> torch.Tensor:
    """A layer's input current ``I = W·s + b`` from its inputs ``s``: ``(batch, n)`` held
    at every step (one product for all ``T`` steps) or ``(T, batch, n)`` (one product for
    all steps at once)."""
    if s.dim() == 2:
        return F.linear(s, weight, bias)
    steps, batch, n = s.shape
    return F.linear(s.reshape(steps * batch, n), weight, bias).reshape(steps, batch, -1)


#: how many partial sums of the output weights' and bias's gradients the readout backward
#: kernel makes (a fixed split of the batch, so that their sum, added in order, is the
#: same whatever the thread count)
READOUT_PARTS = 16


def readout_fusable(current: torch.Tensor, neuron: NeuronSpec, surrogate: Surrogate) -> bool:
    """Whether :func:`lif_readout` can take a hidden layer with this current: the CPU
    kernels, no refractory period, and a surrogate the kernels evaluate (fast sigmoid,
    SuperSpike)."""
    from spikeforge import kernels

    return (_use_kernels(current) and neuron.refractory == 0
            and kernels.surrogate_code(surrogate)[0] == 0)


def _scale_numpy(input_scale: torch.Tensor | None, dtype: np.dtype) -> np.ndarray:
    """The readout's input scale as the kernels take it (a placeholder when there is none)."""
    if input_scale is None:
        return np.empty((1, 1), dtype)
    return np.ascontiguousarray(input_scale.detach().numpy(), dtype=dtype)


class _LIFReadout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                bias: torch.Tensor | None, input_scale: torch.Tensor | None,
                neuron: NeuronSpec, timesteps: int, surrogate: Surrogate) -> torch.Tensor:
        from spikeforge import kernels

        held = current.detach().contiguous().numpy()
        batch, n_out = held.shape[-2], weight.shape[0]
        number = held.dtype.type
        bias_np = (np.zeros(n_out, held.dtype) if bias is None
                   else bias.detach().contiguous().numpy())
        membrane_out = np.empty((timesteps, batch, n_out), held.dtype)
        counts = np.empty((batch, n_out), held.dtype)
        kernels.lif_readout_forward(
            held[None] if held.ndim == 2 else held, held.ndim == 2,
            weight.detach().contiguous().numpy(), bias_np, _scale_numpy(input_scale, held.dtype),
            input_scale is not None, number(neuron.decay), number(neuron.threshold),
            neuron.reset == "zero", membrane_out, counts)
        ctx.save_for_backward(current, weight, input_scale, torch.from_numpy(membrane_out))
        ctx.neuron, ctx.has_bias = neuron, bias is not None
        ctx.param = kernels.surrogate_code(surrogate)[1]
        return torch.from_numpy(counts)

    @staticmethod
    def backward(ctx, grad_counts: torch.Tensor):  # type: ignore[override]
        from spikeforge import kernels

        current, weight, input_scale, membrane_out = ctx.saved_tensors
        neuron = ctx.neuron
        held = current.detach().contiguous().numpy()
        number = held.dtype.type
        grad_current = np.empty_like(held)
        grad_weight = np.empty((READOUT_PARTS, *weight.shape), held.dtype)
        grad_bias = np.empty((READOUT_PARTS, weight.shape[0]), held.dtype)
        kernels.lif_readout_backward(
            held[None] if held.ndim == 2 else held, held.ndim == 2,
            grad_counts.to(current.dtype).contiguous().numpy(), membrane_out.numpy(),
            weight.detach().contiguous().numpy(), _scale_numpy(input_scale, held.dtype),
            input_scale is not None, number(neuron.decay), number(neuron.threshold),
            neuron.reset == "zero", number(ctx.param),
            grad_current[None] if held.ndim == 2 else grad_current, grad_weight, grad_bias)
        return (torch.from_numpy(grad_current), torch.from_numpy(grad_weight.sum(0)),
                torch.from_numpy(grad_bias.sum(0)) if ctx.has_bias else None,
                None, None, None, None)


def lif_readout(current: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                neuron: NeuronSpec, timesteps: int, surrogate: Surrogate | None = None,
                input_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Output spike counts ``(batch, n_out)`` of the last hidden LIF layer, driven by
    ``current`` (``(batch, n)`` held, or ``(T, batch, n)``), and the output LIF layer
    ``(weight, bias)`` after it, as one autograd node::

        s = LIF(current),   counts = Σ_t LIF(W · (s ⊙ m) + b)[t]      (m: input_scale)

    Both passes run one sample at a time through all ``T`` steps of both layers, in one
    Numba kernel each (``spikeforge.kernels.lif_readout_forward`` and
    ``lif_readout_backward``), so nothing of size ``T x batch x n`` is written, stored or
    re-read: the forward pass keeps only the output layer's membrane ``(T, batch, n_out)``
    and the backward pass re-runs the hidden layer from its current. The LIF steps are
    :func:`lif_sequence`'s operations, so the hidden spikes are bit for bit the same. The
    output layer's synaptic sum ``W · s`` runs in the order that vectorises, not BLAS's, so
    the output current differs from the layer-by-layer graph's by float rounding (the
    spikes are the same wherever that sum is exact, and almost everywhere otherwise), and
    so do the gradients (``tests/test_lif.py`` holds them to 1e-5). Only where
    :func:`readout_fusable` says so (CPU kernels, no refractory period, fast sigmoid or
    SuperSpike).
    """
    surrogate = surrogate or FastSigmoid()
    if not readout_fusable(current, neuron, surrogate):
        raise ValueError("lif_readout needs the CPU kernels, no refractory period and a "
                         "surrogate the kernels evaluate (fast sigmoid, SuperSpike): run "
                         "the layers with lif_sequence")
    if current.dim() == 3 and current.shape[0] != timesteps:
        raise ValueError(f"current has {current.shape[0]} time steps, expected {timesteps}")
    return _LIFReadout.apply(current, weight, bias, input_scale, neuron, timesteps, surrogate)


def lif_sequence_unfused(current: torch.Tensor, neuron: NeuronSpec, timesteps: int,
                         surrogate: Surrogate | None = None) -> torch.Tensor:
    """:func:`lif_sequence` as a plain step-by-step autograd loop (reference, slow)."""
    surrogate = surrogate or FastSigmoid()
    shape = current.shape[-2:]
    v = current.new_zeros(shape)
    refractory_left = torch.zeros(shape, dtype=torch.int64, device=current.device)
    out = []
    for t in range(timesteps):
        active = refractory_left <= 0
        u = v * neuron.decay + _current_at(current, t) * active
        s = surrogate(u - neuron.threshold) * active
        fired = s.detach().bool()
        v = u * ~fired if neuron.reset == "zero" else u - neuron.threshold * fired
        refractory_left = torch.where(fired, neuron.refractory, (refractory_left - 1).clamp(min=0))
        out.append(s)
    return torch.stack(out)


def membrane_sequence(current: torch.Tensor, spikes: torch.Tensor, neuron: NeuronSpec,
                      timesteps: int) -> torch.Tensor:
    """The membrane before reset ``U[t]`` ``(T, batch, n)`` of a layer whose spikes are known::

        U[t] = decay · V[t-1] + I[t] · active[t],   V[t] = U[t] · (1 - s[t])   (reset "zero")
                                                    V[t] = U[t] - θ · s[t]      ("subtract")

    with ``active[t] = 0`` within ``refractory`` steps after a spike. Differentiable in
    ``current``; the spikes (and so the reset) are constants, as in :func:`lif_sequence`'s
    backward pass. Used for the output layer's accumulated membrane (a readout and a loss),
    so a plain loop is fast enough: the output layer is narrow.
    """
    spikes = spikes.detach()
    v = current.new_zeros(spikes.shape[1:])
    out = []
    for t in range(timesteps):
        i = _current_at(current, t)
        if neuron.refractory:
            recent = spikes[max(0, t - neuron.refractory):t].sum(0)
            i = i * (recent == 0)
        u = v * neuron.decay + i
        out.append(u)
        v = u * (1.0 - spikes[t]) if neuron.reset == "zero" else u - neuron.threshold * spikes[t]
    return torch.stack(out)


class LIF(torch.nn.Module):
    """Thin module around :func:`lif_sequence`; holds constants, never state."""

    def __init__(self, neuron: NeuronSpec, timesteps: int, surrogate: Surrogate | None = None):
        super().__init__()
        self.neuron = neuron
        self.timesteps = timesteps
        self.surrogate = surrogate or FastSigmoid()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return lif_sequence(current, self.neuron, self.timesteps, self.surrogate)

    def extra_repr(self) -> str:
        n = self.neuron
        return (f"decay={n.decay}, threshold={n.threshold}, reset={n.reset!r}, "
                f"refractory={n.refractory}, timesteps={self.timesteps}")
