"""Spike functions with surrogate derivatives.

A spike is the Heaviside step of ``x = U - threshold``: ``s = 1 if x >= 0 else 0``. Its true
derivative is zero almost everywhere, so training replaces it in the backward pass by the
derivative of a smooth stand-in. Each surrogate here is a small frozen dataclass with

- ``derivative(x)``: the surrogate's ``ds/dx`` as a tensor (used by the fused LIF loop,
  which evaluates it once over all time steps), and
- ``__call__(x)``: the spike function itself, for step-by-step code.

The forward pass is always the exact step, so every surrogate trains the same hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.errors import ConfigError


class _Spike(torch.autograd.Function):
    """Heaviside forward, ``surrogate.derivative`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


@dataclass(frozen=True)
class Surrogate:
    """Base class: subclasses define :meth:`derivative`."""

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid (SuperSpike-style, Zenke & Ganguli 2018)::

        ds/dx = 1 / (1 + slope · |x|)^2

    ``slope`` sets the width: large values concentrate the gradient at the threshold.
    A wide surrogate (slope 2) trains the reference network best (see docs/benchmarks.md).
    """

    slope: float = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        d = x.abs().mul_(self.slope).add_(1.0)
        return d.mul_(d).reciprocal_()


SURROGATES: dict[str, type[Surrogate]] = {"fast_sigmoid": FastSigmoid}


def get_surrogate(name: str, **params: float) -> Surrogate:
    """Surrogate by name, e.g. ``get_surrogate("fast_sigmoid", slope=2.0)``."""
    try:
        cls = SURROGATES[name]
    except KeyError:
        raise ConfigError(f"surrogate = {name!r} is unknown: choose one of "
                          f"{', '.join(sorted(SURROGATES))}") from None
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigError(f"surrogate {name!r} does not take these parameters: {e}") from None
