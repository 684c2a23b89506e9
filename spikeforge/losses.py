"""Losses on a network's output, and spike-count regularisers.

The hardware decodes a class from output spike counts, so the default loss trains exactly
that readout: cross-entropy with the counts as logits. The alternatives, by name in
:data:`LOSSES` and dispatched by :func:`classification_loss`:

==============  ==========================================  ===========================
name            loss                                        uses
==============  ==========================================  ===========================
``ce_count``    CE(a · c, y),  c = output spike counts      counts, ``logit_scale`` a
``ce_membrane`` CE(a · m, y),  m = accumulated membrane     membrane, ``logit_scale`` a
``mse_rate``    mean_k (c_k / T - r*_k)^2                   counts, ``timesteps`` T
==============  ==========================================  ===========================

Only ``ce_count`` trains the quantity the hardware reads out; ``ce_membrane`` gives a
gradient even when the output layer is silent (useful early in training, or with a
non-spiking readout), and ``mse_rate`` asks for a firing rate rather than a margin, which
bounds how busy the output neurons get.

The regularisers :func:`spike_l1_loss` and :func:`spike_l2_loss` penalise spikes (energy on
the hardware, and activity a sparse board can drop); both are normalised per neuron, so that
a weight ``λ`` of 1e-3 to 1e-1 next to a cross-entropy of order 1 ranges from a gentle nudge
to a strong push towards silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from spikeforge.errors import ConfigError


def ce_count_loss(counts: torch.Tensor, targets: torch.Tensor, scale: float = 1.0
                  ) -> torch.Tensor:
    """Cross-entropy on output spike counts ``(batch, classes)``::

        L = -log( exp(a·c_y) / sum_k exp(a·c_k) ),   c_k = sum_t s_out[t]_k

    ``scale`` (``a``) is an inverse temperature. Counts run from 0 to T, so with ``a = 1``
    a margin of a few spikes already saturates the softmax and the loss stops rewarding
    a clearer decision; a smaller ``a`` keeps it learning. The argmax, which is what the
    hardware decodes, does not depend on ``a``.
    """
    return F.cross_entropy(counts * scale if scale != 1.0 else counts, targets)


def ce_membrane_loss(membrane: torch.Tensor, targets: torch.Tensor, scale: float = 1.0
                     ) -> torch.Tensor:
    """Cross-entropy on the output layer's accumulated membrane ``(batch, classes)``::

        L = -log( exp(a·m_y) / sum_k exp(a·m_k) ),   m_k = sum_t U_out[t]_k

    averaged over the batch. ``m`` is whatever the model accumulates for its output layer
    (the membrane summed over the ``T`` steps); it is a real number that moves with the
    weights even when no output neuron fires, so the loss has a gradient from the first
    step, without a surrogate. ``scale`` (``a``) is an inverse temperature as in
    :func:`ce_count_loss`: a membrane summed over ``T`` steps is of the order of the spike
    counts (in units of the threshold), so the same value suits both.
    """
    return F.cross_entropy(membrane * scale if scale != 1.0 else membrane, targets)


def mse_rate_loss(counts: torch.Tensor, targets: torch.Tensor, timesteps: int,
                  target_rate: float = 0.8, off_rate: float = 0.0) -> torch.Tensor:
    """Mean squared error between output firing rates and target rates::

        L = 1/(B·K) · sum_b sum_k (c_bk / T - r*_bk)^2,
        r*_bk = target_rate if k = y_b else off_rate

    ``counts`` ``(batch B, classes K)`` are output spike counts over ``timesteps`` ``T``, so
    rates and targets lie in [0, 1] and so does ``L``. A target rate below 1 leaves the true
    class room to be decoded (it still has the most spikes) without driving its neuron to
    fire at every step.
    """
    if not (isinstance(timesteps, int) and timesteps >= 1):
        raise ConfigError(f"timesteps = {timesteps!r} is not allowed: it must be an integer "
                          ">= 1")
    for name, rate in (("target_rate", target_rate), ("off_rate", off_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{name} = {rate!r} is not allowed: it must be a firing rate "
                              "in [0, 1]")
    rates = counts / timesteps
    target = torch.full_like(rates, off_rate)
    target.scatter_(1, targets.view(-1, 1).long(), target_rate)
    return F.mse_loss(rates, target)


def _spike_layers(spikes: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Layers as ``(T, batch, neurons)`` tensors (trailing dimensions flattened), checked to
    share ``T`` and the batch."""
    layers = [spikes] if isinstance(spikes, torch.Tensor) else list(spikes)
    flat = []
    for i, s in enumerate(layers):
        if s.dim() < 3:
            raise ValueError(f"spike tensor {i} has shape {tuple(s.shape)}: expected "
                             "(T, batch, neurons, ...)")
        if s.shape[:2] != layers[0].shape[:2]:
            raise ValueError(f"spike tensor {i} has (T, batch) = {tuple(s.shape[:2])}, "
                             f"layer 0 has {tuple(layers[0].shape[:2])}")
        flat.append(s.reshape(s.shape[0], s.shape[1], -1))
    return flat


def spike_l1_loss(spikes: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """L1 activity penalty: mean spikes per neuron per sample::

        L1 = 1/(B·N) · sum_b sum_l sum_i sum_t s_l[t]_bi,     N = sum_l n_l

    ``spikes`` is one tensor ``(T, batch B, n)`` or a list of them, one per layer (trailing
    dimensions beyond the third count as neurons). Dividing by the number of neurons ``N``,
    not by ``T``, keeps the value a spike count: between 0 and ``T``, typically a few spikes
    per neuron per sample, so ``λ = 1e-3..1e-1`` spans a gentle to a strong penalty next to
    a cross-entropy of order 1, independently of the network's width. Every spike costs the
    same, wherever it is: a layer's share of the penalty is its share of the spikes. An
    empty list gives 0.
    """
    layers = _spike_layers(spikes)
    if not layers:
        return torch.zeros(())
    neurons = sum(s.shape[2] for s in layers)
    batch = layers[0].shape[1]
    return sum(s.sum() for s in layers) / (batch * neurons)


def spike_l2_loss(spikes: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 activity penalty: mean squared spike count per neuron, per time step::

        L2 = 1/(B·N·T) · sum_b sum_l sum_i (c_l,bi)^2,   c_l,bi = sum_t s_l[t]_bi,
        N = sum_l n_l

    Inputs as for :func:`spike_l1_loss`. The square makes a neuron's penalty grow with its
    own count (the gradient is ``2c / (B·N·T)`` per spike), so it quietens the busiest
    neurons first and leaves sparse ones alone. Dividing by ``T`` as well as ``N`` puts it on
    the L1 penalty's scale: ``c^2 / T <= c`` since ``c <= T``, so ``0 <= L2 <= L1 <= T``, with
    equality only for neurons that fire at every step or never, and the same ``λ`` range
    applies. An empty list gives 0.
    """
    layers = _spike_layers(spikes)
    if not layers:
        return torch.zeros(())
    steps, batch = layers[0].shape[:2]
    neurons = sum(s.shape[2] for s in layers)
    return sum(s.sum(0).square().sum() for s in layers) / (batch * neurons * steps)


class ClassificationLoss(Protocol):
    """A loss in :data:`LOSSES`: output counts and membrane ``(batch, classes)`` (either may
    be ``None`` where that loss does not read it), integer targets ``(batch,)``, the number
    of time steps and the inverse temperature; returns a scalar."""

    def __call__(self, counts: torch.Tensor | None, membrane: torch.Tensor | None,
                 targets: torch.Tensor, timesteps: int, logit_scale: float) -> torch.Tensor:
        ...


def _needs(name: str, what: str, value: torch.Tensor | None) -> torch.Tensor:
    if value is None:
        raise ValueError(f"loss {name!r} needs the output layer's {what}, got None")
    return value


def _ce_count(counts: torch.Tensor | None, membrane: torch.Tensor | None,
              targets: torch.Tensor, timesteps: int, logit_scale: float) -> torch.Tensor:
    return ce_count_loss(_needs("ce_count", "spike counts", counts), targets, logit_scale)


def _ce_membrane(counts: torch.Tensor | None, membrane: torch.Tensor | None,
                 targets: torch.Tensor, timesteps: int, logit_scale: float) -> torch.Tensor:
    return ce_membrane_loss(_needs("ce_membrane", "membrane", membrane), targets, logit_scale)


def _mse_rate(counts: torch.Tensor | None, membrane: torch.Tensor | None,
              targets: torch.Tensor, timesteps: int, logit_scale: float) -> torch.Tensor:
    # A rate target has no temperature: logit_scale does not apply.
    return mse_rate_loss(_needs("mse_rate", "spike counts", counts), targets, timesteps)


#: classification losses by name, all called as ``(counts, membrane, targets, timesteps,
#: logit_scale)``; the functions behind them take only what they use
LOSSES: dict[str, ClassificationLoss] = {
    "ce_count": _ce_count,
    "ce_membrane": _ce_membrane,
    "mse_rate": _mse_rate,
}


def classification_loss(name: str, counts: torch.Tensor | None, membrane: torch.Tensor | None,
                        targets: torch.Tensor, timesteps: int, logit_scale: float = 1.0
                        ) -> torch.Tensor:
    """The classification loss ``name`` (see :data:`LOSSES` and the module's table).

    ``ce_count`` reads ``counts`` and ``logit_scale``; ``ce_membrane`` reads ``membrane``
    and ``logit_scale`` (the accumulated membrane is on the counts' scale, so the same
    inverse temperature applies); ``mse_rate`` reads ``counts`` and ``timesteps`` (default
    rates 0.8 for the true class, 0 for the others; call :func:`mse_rate_loss` for others).
    The input a loss does not read may be ``None``. Raises
    :class:`~spikeforge.errors.ConfigError` for an unknown name.
    """
    try:
        loss = LOSSES[name]
    except KeyError:
        raise ConfigError(f"loss = {name!r} is unknown: choose one of "
                          f"{', '.join(sorted(LOSSES))}") from None
    return loss(counts, membrane, targets, timesteps, logit_scale)


@dataclass(frozen=True)
class Objective:
    """A training objective: a classification loss on a network's output plus spike-count
    regularisers on its hidden layers::

        L = loss(output) + spike_l1 · L1(hidden spikes) + spike_l2 · L2(hidden spikes)

    Called with a :class:`~spikeforge.models.SpikingOutput` (recorded spikes are needed only
    when a regulariser is on: :attr:`needs_spikes`) and the targets.
    """

    loss: str = "ce_count"
    logit_scale: float = 1.0
    timesteps: int = 25
    target_rate: float = 0.8
    spike_l1: float = 0.0
    spike_l2: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss = {self.loss!r} is unknown: choose one of "
                              f"{', '.join(sorted(LOSSES))}")

    @property
    def needs_spikes(self) -> bool:
        return self.spike_l1 > 0 or self.spike_l2 > 0

    @property
    def needs_membrane(self) -> bool:
        """Whether the loss reads the output layer's accumulated membrane."""
        return self.loss == "ce_membrane"

    def __call__(self, out: Any, targets: torch.Tensor) -> torch.Tensor:
        if self.loss == "mse_rate":
            loss = mse_rate_loss(out.counts, targets, self.timesteps, self.target_rate)
        else:
            loss = classification_loss(self.loss, out.counts, out.membrane, targets,
                                       self.timesteps, self.logit_scale)
        if self.needs_spikes:
            if out.spikes is None:
                raise ValueError("spike regularisers need the recorded spikes: call the "
                                 "model with record=True")
            hidden = out.spikes[:-1]
            if self.spike_l1 > 0:
                loss = loss + self.spike_l1 * spike_l1_loss(hidden)
            if self.spike_l2 > 0:
                loss = loss + self.spike_l2 * spike_l2_loss(hidden)
        return loss
