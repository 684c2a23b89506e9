"""Spike functions with surrogate derivatives.

A spike is the Heaviside step of ``x = U - threshold``: ``s = 1 if x >= 0 else 0``. Its true
derivative is zero almost everywhere, so training replaces it in the backward pass by the
derivative of a smooth stand-in. Each surrogate here is a small frozen dataclass with

- ``derivative(x)``: the surrogate's ``ds/dx`` as a tensor (used by the fused LIF loop,
  which evaluates it once over all time steps), and
- ``__call__(x)``: the spike function itself, for step-by-step code.

The forward pass is always the exact step, so every surrogate trains the same hardware.
Each surrogate has one shape parameter (its name is :data:`SHAPE_PARAMETERS`\\[name]); pick
one with :func:`get_surrogate`.

=================  ======================================  =========  =======  ===============
name               ds/dx                                   parameter  default  reference
=================  ======================================  =========  =======  ===============
fast_sigmoid       1 / (1 + a·|x|)^2                       slope a    2.0      [ZG18]_
superspike         1 / (1 + β·|x|)^2                       beta β     10.0     [ZG18]_, [ZV21]_
atan               α / (2·(1 + (π/2·α·x)^2))               alpha α    2.0      [Fang21]_
sigmoid            k·σ(kx)·(1 - σ(kx))                     k          5.0      [ZV21]_
straight_through   1 where |x| < w/2, else 0 (w = ∞: 1)    width w    ∞        [BLC13]_
triangular         max(0, 1 - |x|/w) / w                   width w    1.0      [Bel18]_
gaussian           exp(-x^2 / (2σ^2)) / (σ·√(2π))          sigma σ    0.5      [Yin21]_
=================  ======================================  =========  =======  ===============

``fast_sigmoid`` and ``superspike`` are the same function (SuperSpike's ``σ'``): SuperSpike
with ``beta = b`` computes exactly the gradient of FastSigmoid with ``slope = b``. Both stay:
``fast_sigmoid`` is the project's default with the default that trained runs depend on
(``slope = 2``, a wide gradient of unit area); ``superspike`` carries the paper's name and
parameter and a narrow default (``beta = 10``, area 0.2) for comparing against runs
described in those terms. Neither is
normalised: the peak at the threshold is 1 whatever the parameter, so changing the parameter
changes the width of the gradient, not its height. These two are evaluated inside the
Numba LIF kernel; the others are applied in torch to the membrane the kernel stores.

``atan``, ``sigmoid``, ``triangular`` and ``gaussian`` are normalised instead: each is the
density of a smoothed step, so its area is 1 and a narrower shape is a taller one (peaks
``α/2``, ``k/4``, ``1/w`` and ``1/(σ√(2π))``; 1, 1.25, 1 and 0.80 at the defaults, about the
fast sigmoid's 1). ``straight_through`` passes the incoming gradient unchanged: everywhere by
default (the classic estimator), or only within ``w/2`` of the threshold.

References
----------
.. [ZG18] F. Zenke, S. Ganguli. SuperSpike: supervised learning in multilayer spiking neural
   networks. Neural Computation 30(6), 2018.
.. [ZV21] F. Zenke, T. P. Vogels. The remarkable robustness of surrogate gradient learning
   for instilling complex function in spiking neural networks. Neural Computation 33(4), 2021.
.. [Fang21] W. Fang et al. Incorporating learnable membrane time constant to enhance learning
   of spiking neural networks. ICCV 2021.
.. [BLC13] Y. Bengio, N. Léonard, A. Courville. Estimating or propagating gradients through
   stochastic neurons for conditional computation. arXiv:1308.3432, 2013.
.. [Bel18] G. Bellec et al. Long short-term memory and learning-to-learn in networks of
   spiking neurons. NeurIPS 2018.
.. [Yin21] B. Yin, F. Corradi, S. M. Bohté. Accurate and efficient time-domain classification
   with adaptive spiking recurrent neural networks. Nature Machine Intelligence 3, 2021 (the
   single Gaussian is their multi-Gaussian surrogate's central lobe, ``h = 0``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

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
    """Base class: subclasses define :meth:`derivative`.

    A subclass with a shape parameter names it in ``shape_parameter``; the constructor then
    checks that it is a number > 0 and finite (or ``inf`` where ``allow_infinite``), raising
    :class:`~spikeforge.errors.ConfigError`. ``derivative`` must return a new tensor and
    leave ``x`` as it was: the fused LIF loop may keep ``x`` after calling it.
    """

    shape_parameter: ClassVar[str | None] = None
    allow_infinite: ClassVar[bool] = False

    def __post_init__(self) -> None:
        parameter = self.shape_parameter
        if parameter is None:
            return
        value = getattr(self, parameter)
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and value > 0 and (math.isfinite(value)
                                 or (self.allow_infinite and value == math.inf)))
        if not ok:
            # Name the surrogate as the user wrote it in a config (its registry key).
            name = next((k for k, c in SURROGATES.items() if c is type(self)),
                        type(self).__name__)
            allowed = "a number > 0" + (" (inf allowed)" if self.allow_infinite
                                        else " and finite")
            raise ConfigError(f"surrogate {name!r}: {parameter} = {value!r} is not allowed: "
                              f"it must be {allowed}")

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self)


# The derivatives below start with an out-of-place operation on ``x`` (abs, mul, div) and
# work in place on that fresh tensor afterwards: one allocation per call over a (T, batch, n)
# tensor, and ``x`` itself is never written.


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid (SuperSpike-style, Zenke & Ganguli 2018)::

        ds/dx = 1 / (1 + slope · |x|)^2

    ``slope`` sets the width: large values concentrate the gradient at the threshold.
    A wide surrogate (slope 2) trains the reference network best (see docs/benchmarks.md).
    The Numba LIF kernel evaluates this formula itself (``spikeforge.kernels``).
    """

    shape_parameter: ClassVar[str | None] = "slope"
    slope: float = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        d = x.abs().mul_(self.slope).add_(1.0)
        return d.mul_(d).reciprocal_()


@dataclass(frozen=True)
class SuperSpike(Surrogate):
    """SuperSpike's surrogate (Zenke & Ganguli 2018; Zenke & Vogels 2021)::

        ds/dx = 1 / (1 + β · |x|)^2

    The same function as :class:`FastSigmoid` with ``slope = β`` (the peak is 1, the area
    ``2/β``), under the paper's name and with a narrower default, ``β = 10``. Deliberately
    not normalised, so that ``beta`` means what it means in the paper. The Numba LIF kernel
    evaluates it with the fast sigmoid's inlined formula.
    """

    shape_parameter: ClassVar[str | None] = "beta"
    beta: float = 10.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        d = x.abs().mul_(self.beta).add_(1.0)
        return d.mul_(d).reciprocal_()


@dataclass(frozen=True)
class ATan(Surrogate):
    """Arctangent (Fang et al. 2021): the derivative of ``arctan(π/2·α·x)/π + 1/2``::

        ds/dx = α / (2 · (1 + (π/2 · α · x)^2))

    Area 1, peak ``α/2`` (1 at the default ``α = 2``); the tails fall off as ``1/x^2``, like
    the fast sigmoid's.
    """

    shape_parameter: ClassVar[str | None] = "alpha"
    alpha: float = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        d = x.mul(math.pi / 2 * self.alpha)
        return d.mul_(d).add_(1.0).reciprocal_().mul_(self.alpha / 2)


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """Logistic sigmoid of steepness ``k`` (Zenke & Vogels 2021)::

        ds/dx = k · σ(kx) · (1 - σ(kx)),   σ(z) = 1 / (1 + exp(-z))

    Area 1, peak ``k/4`` (1.25 at the default ``k = 5``); the tails fall off exponentially,
    so neurons far from threshold get almost no gradient.
    """

    shape_parameter: ClassVar[str | None] = "k"
    k: float = 5.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        # The derivative is even, so evaluate it at -k|x| <= 0: there σ is the small factor
        # and 1 - σ is close to 1, which avoids the cancellation in 1 - σ(z) for large z
        # (both tails keep full relative precision) and makes it exactly symmetric.
        s = torch.sigmoid(x.abs().mul_(-self.k))
        return torch.sub(1.0, s).mul_(s).mul_(self.k)


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    """Straight-through estimator (Bengio, Léonard & Courville 2013)::

        ds/dx = 1                     (width = inf, the default: the classic estimator)
        ds/dx = 1 if |x| < width/2 else 0     (finite width: a gated estimator)

    The classic estimator treats the step as the identity in the backward pass, so every
    neuron gets the full gradient however far it is from its threshold; this can let silent
    or saturated neurons dominate the update. A finite ``width`` keeps the gradient only near
    the threshold (unit height, not divided by the width: it stays a straight-through pass,
    not a boxcar density).
    """

    shape_parameter: ClassVar[str | None] = "width"
    allow_infinite: ClassVar[bool] = True
    width: float = math.inf

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        if self.width == math.inf:
            return torch.ones_like(x)
        return x.abs().lt_(self.width / 2).to(x.dtype)


@dataclass(frozen=True)
class Triangular(Surrogate):
    """Triangle (piecewise linear; Bellec et al. 2018, there scaled by a damping factor)::

        ds/dx = max(0, 1 - |x| / width) / width

    Area 1, peak ``1/width``, and exactly zero beyond ``|x| >= width``: only neurons within
    ``width`` of the threshold learn at a given step.
    """

    shape_parameter: ClassVar[str | None] = "width"
    width: float = 1.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().div_(-self.width).add_(1.0).clamp_(min=0.0).div_(self.width)


@dataclass(frozen=True)
class Gaussian(Surrogate):
    """Gaussian density (Yin, Corradi & Bohté 2021; their multi-Gaussian with ``h = 0``)::

        ds/dx = exp(-x^2 / (2σ^2)) / (σ · √(2π))

    Area 1, peak ``1/(σ√(2π))`` (0.80 at the default ``σ = 0.5``); the smoothest of the set
    and the fastest to vanish away from the threshold.
    """

    shape_parameter: ClassVar[str | None] = "sigma"
    sigma: float = 0.5

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        z = x.div(self.sigma)
        return z.mul_(z).mul_(-0.5).exp_().mul_(1.0 / (self.sigma * math.sqrt(2 * math.pi)))


SURROGATES: dict[str, type[Surrogate]] = {
    "fast_sigmoid": FastSigmoid,
    "superspike": SuperSpike,
    "atan": ATan,
    "sigmoid": Sigmoid,
    "straight_through": StraightThrough,
    "triangular": Triangular,
    "gaussian": Gaussian,
}

#: surrogate name -> name of its one shape parameter (the dataclass field)
SHAPE_PARAMETERS: dict[str, str] = {
    name: cls.shape_parameter for name, cls in SURROGATES.items()
    if cls.shape_parameter is not None
}


def get_surrogate(name: str, shape: float | None = None, **params: float) -> Surrogate:
    """Surrogate by name, with its shape parameter given positionally or by its own name.

    ``get_surrogate("atan", 3.0)`` is ``ATan(alpha=3.0)``, ``get_surrogate("atan")`` uses
    the default ``alpha``, and ``get_surrogate("fast_sigmoid", slope=2.0)`` names the
    parameter. ``shape=None`` means the surrogate's default. Raises
    :class:`~spikeforge.errors.ConfigError` for an unknown name, an unknown parameter, the
    shape given twice, or a shape that is not a number > 0 and finite.
    """
    try:
        cls = SURROGATES[name]
    except KeyError:
        raise ConfigError(f"surrogate = {name!r} is unknown: choose one of "
                          f"{', '.join(sorted(SURROGATES))}") from None
    parameter = SHAPE_PARAMETERS.get(name)
    if shape is not None:
        if parameter is None:
            raise ConfigError(f"surrogate {name!r} has no shape parameter, got {shape!r}")
        if parameter in params:
            raise ConfigError(f"surrogate {name!r}: {parameter} given twice ({shape!r} and "
                              f"{parameter}={params[parameter]!r})")
        params = {**params, parameter: shape}
    unknown = sorted(set(params) - ({parameter} if parameter else set()))
    if unknown:
        takes = f"its shape parameter is {parameter!r}" if parameter else "it takes none"
        raise ConfigError(f"surrogate {name!r} does not take {', '.join(unknown)}: {takes}")
    return cls(**params)
