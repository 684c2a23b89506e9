"""Input encoders: a sample becomes the first layer's input ``s_0[t]`` (see spikeforge.spec).

Shapes: a current held for all ``T`` steps is returned as ``(batch, features)`` (the LIF
loop adds it at every step without copying it ``T`` times); anything that changes over
time is ``(T, batch, features)``.

- :func:`constant_current`: ``scale · x`` at every step. Analog and digital targets (the
  contract's encoding).
- :func:`poisson`: ``1`` with probability ``min(gain · x, 1)``, each step independently.
  No target: it needs a random spike source per input line.
- :func:`latency`: one spike per input, earlier for a stronger input (time to first
  spike). No target yet: it needs a timer per input line.
- :func:`delta`: a spike where a sequence changes by at least ``threshold``. Targets that
  take spike lines (``EncodingSpec("spikes")``).
- :func:`gaussian_receptive_fields`: a population code, each feature becomes ``n_fields``
  intensities in [0, 1]. Analog and digital, as constant currents computed before the
  board.

:class:`Encoder` is the training-time encoder a model applies to raw samples; the hardware
contract (:class:`~spikeforge.spec.EncodingSpec`) only knows held currents and spike lines,
so networks trained on Poisson or latency input are fed spike lines and the targets refuse
to build them (there is no spike generator on the board).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spikeforge.errors import ConfigError
from spikeforge.spec import EncodingSpec

#: training-time encodings (``--encoding``)
ENCODERS = ("constant_current", "poisson", "latency")


def constant_current(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``s_0[t] = scale · x`` for every t: a pixel in [0, 1] as a held current.

    The reference design's encoding, and the hardware-friendliest: one DC level per input.
    """
    return x * scale if scale != 1.0 else x


def poisson(x: torch.Tensor, timesteps: int, gain: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Rate code: ``s_0[t] ~ Bernoulli(min(gain · x, 1))`` independently at each step.

    An input ``x`` in [0, 1] fires on average ``gain · x · T`` times. Returns
    ``(T, batch, features)`` spikes in the input's dtype. Draws from ``generator`` (or
    the global RNG), so a seeded run is reproducible.
    """
    p = (x * gain).clamp(0.0, 1.0)
    u = torch.rand((timesteps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p).to(x.dtype)


def latency(x: torch.Tensor, timesteps: int, threshold: float = 0.01, tau: float | None = None
            ) -> torch.Tensor:
    """Time-to-first-spike code: each input fires once, stronger inputs earlier; inputs
    below ``threshold`` never fire. Returns ``(T, batch, features)``.

    linear (``tau=None``):  ``t_f = round((1 - x) · (T - 1))``
    RC (``tau`` given):     ``t_f = round(tau · ln(x / (x - threshold)))``, clipped to T - 1:
                            the time an RC circuit of time constant ``tau`` (in steps)
                            driven by ``x`` takes to charge to ``threshold``.
    """
    if timesteps < 1:
        raise ConfigError(f"latency: timesteps = {timesteps} must be >= 1")
    fires = x >= threshold
    if tau is None:
        t_fire = torch.round((1.0 - x.clamp(0.0, 1.0)) * (timesteps - 1))
    else:
        safe = torch.where(x > threshold, x, torch.full_like(x, 2.0 * threshold + 1.0))
        t_fire = torch.round(tau * torch.log(safe / (safe - threshold)))
        fires = fires & (x > threshold)
    t_fire = t_fire.clamp(0, timesteps - 1).long()
    steps = torch.arange(timesteps, device=x.device).view(-1, *([1] * x.dim()))
    return ((steps == t_fire) & fires).to(x.dtype)


def delta(sequence: torch.Tensor, threshold: float = 0.1, off_spikes: bool = False
          ) -> torch.Tensor:
    """Spike on change, for a sequence ``(T, batch, features)``::

        on[t]  = 1 if x[t] - x[t-1] >= threshold      (x[-1] = 0)
        off[t] = 1 if x[t-1] - x[t] >= threshold

    Returns ``on`` ``(T, batch, features)``, or with ``off_spikes`` the on and off lines
    side by side ``(T, batch, 2·features)`` (as an event camera reports ON and OFF events).
    """
    if sequence.dim() < 2:
        raise ValueError(f"delta needs a sequence (T, ...), got shape {tuple(sequence.shape)}")
    previous = torch.cat([torch.zeros_like(sequence[:1]), sequence[:-1]])
    change = sequence - previous
    on = (change >= threshold).to(sequence.dtype)
    if not off_spikes:
        return on
    return torch.cat([on, (-change >= threshold).to(sequence.dtype)], dim=-1)


def gaussian_receptive_fields(x: torch.Tensor, n_fields: int = 8,
                              low: torch.Tensor | float = 0.0, high: torch.Tensor | float = 1.0,
                              width: float = 1.5) -> torch.Tensor:
    """Population code (Bohte et al. 2002) for tabular data such as Iris: each feature
    ``x_i`` becomes ``n_fields`` intensities in [0, 1]::

        r_ij = exp(-(x_i - mu_j)^2 / (2 sigma^2)),   mu_j = low + j·(high - low)/(n_fields - 1),
        sigma = (high - low) / (width · (n_fields - 2))     (Bohte's choice, width = 1.5)

    ``low`` and ``high`` are each feature's range (scalars or ``(features,)`` tensors, e.g.
    the training set's min and max). Returns ``(batch, features · n_fields)``, feature-major.
    The intensities are held currents, so the hardware targets can run the result.
    """
    if n_fields < 3:
        raise ConfigError(f"gaussian_receptive_fields: n_fields = {n_fields} must be >= 3")
    low_t = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    high_t = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    span = (high_t - low_t).clamp(min=1e-12)
    j = torch.arange(n_fields, dtype=x.dtype, device=x.device)
    centres = low_t[..., None] + j * (span[..., None] / (n_fields - 1))  # (F or 1, n_fields)
    sigma = span[..., None] / (width * (n_fields - 2))
    r = torch.exp(-((x[..., None] - centres) ** 2) / (2.0 * sigma**2))
    return r.reshape(*x.shape[:-1], x.shape[-1] * n_fields)


@dataclass(frozen=True)
class Encoder:
    """The training-time input encoding of a model (``--encoding``).

    kind:      ``"constant_current"``, ``"poisson"`` or ``"latency"`` (see the table above).
    timesteps: T, for the encodings that make spike trains.
    gain:      Poisson firing probability per step at ``x = 1``.
    threshold: latency: inputs below it never fire.
    """

    kind: str = "constant_current"
    timesteps: int = 25
    gain: float = 1.0
    threshold: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in ENCODERS:
            raise ConfigError(f"encoding = {self.kind!r} is unknown: choose one of "
                              f"{', '.join(ENCODERS)}")
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise ConfigError(f"encoding gain = {self.gain!r} must be a number > 0")

    @property
    def spec(self) -> EncodingSpec:
        """What the network's first layer receives, in the contract's words."""
        if self.kind == "constant_current":
            return EncodingSpec("constant_current", 1.0)
        return EncodingSpec("spikes")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Raw samples ``(batch, features)`` to the first layer's input."""
        if self.kind == "poisson":
            return poisson(x, self.timesteps, self.gain, generator)
        if self.kind == "latency":
            return latency(x, self.timesteps, self.threshold)
        return x


def time_major(x: torch.Tensor) -> torch.Tensor:
    """Event samples as datasets store them, uint8/bool ``(batch, T, features)`` (one
    contiguous block per sample), to spike lines ``(T, batch, features)`` float32, the
    layout every LIF layer runs on. Anything else is returned unchanged: a float
    ``(T, batch, features)`` tensor is already time-major, a 2-D one is static samples."""
    if x.dim() == 3 and (x.dtype == torch.bool or not x.dtype.is_floating_point):
        return x.transpose(0, 1).to(torch.float32)
    return x


def encode(x: torch.Tensor, encoding: EncodingSpec) -> torch.Tensor:
    """Apply the contract's encoding to a batch of samples: a held current, or spike
    lines already shaped ``(T, batch, features)``."""
    if encoding.type == "constant_current":
        return constant_current(x, encoding.scale)
    if encoding.type == "spikes":
        if x.dim() != 3:
            raise ValueError(f"spike input must have shape (T, batch, features), "
                             f"got {tuple(x.shape)}")
        return x
    raise ValueError(f"unknown encoding {encoding.type!r}")
