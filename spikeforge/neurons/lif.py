"""The contract's LIF neuron for training: a fused time loop with a surrogate gradient.

The equations are those of :mod:`spikeforge.spec` (see :func:`spikeforge.spec.lif_step`).
Here they run over all ``T`` steps of a layer at once, in one autograd function, because
a feed-forward layer's whole input ``I[1..T]`` is known before its first step:

forward   ``U[t] = decay · V[t-1] + I[t] · active[t]``, ``s[t] = U[t] >= threshold``, then the
          reset; only ``s`` (bool) and the surrogate slope at each step are kept.
backward  with the reset treated as a constant (as snnTorch and Norse do), the gradient
          obeys a first-order linear recurrence run backwards in time::

              dL/dU[t] = dL/ds[t] · σ'(U[t] - θ) · active[t]
                         + decay · keep[t] · dL/dU[t+1]
              dL/dI[t] = dL/dU[t] · active[t]

          with ``keep = 1 - s`` for reset "zero" and ``keep = 1`` for "subtract".

When the input current is the same at every step (constant-current encoding), pass it
with shape ``(batch, n)``: it is added at each step without being copied ``T`` times, and
its gradient is the sum over time.

:func:`lif_sequence_unfused` is the same computation written as a plain autograd loop:
slower, obviously right, and the yardstick the fused loop is tested against.
"""

from __future__ import annotations

import torch

from spikeforge.spec import NeuronSpec
from spikeforge.surrogates import FastSigmoid, Surrogate


def _current_at(current: torch.Tensor, t: int) -> torch.Tensor:
    return current if current.dim() == 2 else current[t]


def _run(current: torch.Tensor, neuron: NeuronSpec, timesteps: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The forward time loop: boolean spikes, membrane before reset ``U`` and, with a
    refractory period, the mask of steps at which each neuron was listening."""
    shape = current.shape[-2:]
    decay, threshold = neuron.decay, neuron.threshold
    membrane = torch.empty((timesteps, *shape), dtype=current.dtype, device=current.device)
    v = torch.zeros(shape, dtype=current.dtype, device=current.device)
    if neuron.refractory == 0:
        for t in range(timesteps):
            u = torch.mul(v, decay, out=membrane[t])
            u.add_(_current_at(current, t))
            v = u * (u < threshold) if neuron.reset == "zero" else u - threshold * (u >= threshold)
        return membrane >= threshold, membrane, None
    spikes = torch.empty((timesteps, *shape), dtype=torch.bool, device=current.device)
    active = torch.empty_like(spikes)
    refractory_left = torch.zeros(shape, dtype=torch.int32, device=current.device)
    for t in range(timesteps):
        act = torch.le(refractory_left, 0, out=active[t])
        u = torch.mul(v, decay, out=membrane[t])
        u.add_(_current_at(current, t) * act)
        s = torch.logical_and(u >= threshold, act, out=spikes[t])
        v = u * ~s if neuron.reset == "zero" else u - threshold * s
        refractory_left = torch.where(s, neuron.refractory, (refractory_left - 1).clamp_(min=0))
    return spikes, membrane, active


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current: torch.Tensor, neuron: NeuronSpec, timesteps: int,  # type: ignore[override]
                surrogate: Surrogate) -> torch.Tensor:
        spikes, membrane, active = _run(current, neuron, timesteps)
        slope = surrogate.derivative(membrane.sub_(neuron.threshold))
        if active is not None:
            slope.mul_(active)
        ctx.save_for_backward(spikes, slope, active)
        ctx.neuron = neuron
        ctx.constant_current = current.dim() == 2
        return spikes.to(current.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        spikes, slope, active = ctx.saved_tensors
        decay = ctx.neuron.decay
        grad_u = grad_spikes * slope
        if ctx.neuron.reset == "zero":
            carry = (~spikes).to(grad_u.dtype).mul_(decay)
            for t in range(grad_u.shape[0] - 2, -1, -1):
                grad_u[t].addcmul_(carry[t], grad_u[t + 1])
        else:
            for t in range(grad_u.shape[0] - 2, -1, -1):
                grad_u[t].add_(grad_u[t + 1], alpha=decay)
        grad_current = grad_u if active is None else grad_u.mul_(active)
        if ctx.constant_current:
            grad_current = grad_current.sum(0)
        return grad_current, None, None, None


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
        return _run(current, neuron, timesteps)[0].to(current.dtype)
    return _LIFSequence.apply(current, neuron, timesteps, surrogate or FastSigmoid())


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
