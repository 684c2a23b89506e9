"""Neuron cells for software training, in the style of Norse's functional core.

Every cell has four parts:

- a frozen dataclass of parameters (plain floats, checked on construction: a bad value
  raises :class:`~spikeforge.errors.ConfigError` naming the field and its allowed range);
- a :class:`~typing.NamedTuple` state whose first field is the membrane ``v``; the state is
  explicit, passed in and returned, and nothing is hidden in a module;
- a pure step function ``xxx_step(current, state, params, surrogate, ...) -> (spikes,
  new_state)`` for one time step on ``(batch, n)`` tensors, its equations in its docstring;
- an :class:`torch.nn.Module` wrapper ``XxxCell(n, *, <parameters>, surrogate=None,
  learn_decay=False, learn_threshold=False)`` with ``initial_state`` and ``forward(current,
  state=None) -> (spikes, new_state)``; :func:`run_cell` runs one over ``T`` steps.

Conventions shared by all cells (``t`` is the step, ``I = I[t]`` the input current):

- The spike is ``s = H(U - θ)`` computed as ``surrogate(U - θ)``: the exact Heaviside step
  forward, the surrogate's derivative backward (default :class:`FastSigmoid`). ``U`` is the
  membrane *before* reset, as in :mod:`spikeforge.spec`.
- The reset treats the spike as a constant (``s̄ = s.detach()``), as snnTorch and Norse do:
  no gradient flows through the reset itself. Reset ``"zero"``: ``v = U·(1 - s̄)``;
  ``"subtract"``: ``v = U - θ·s̄``.
- ``learn_decay`` / ``learn_threshold`` turn the cell's decay(s) / threshold into per-neuron
  :class:`torch.nn.Parameter` s of shape ``(n,)``. A learned decay is
  ``sigmoid(<name>_logit)`` (inside (0, 1)), its logit initialised to ``log(d / (1 - d))``
  so that it starts at the configured ``d`` (to rounding); a learned threshold is
  ``softplus(threshold_raw)`` (> 0), initialised to ``log(exp(θ) - 1)`` so that it starts
  at ``θ``. (In float32 a logit above about 17 rounds the sigmoid to 1, one below about -88
  to 0, and a raw threshold below about -100 underflows the softplus to 0: the bounds then
  hold as closed ones, and are never crossed.) A cell without a decay or a threshold
  refuses the flag with a :class:`ConfigError` naming the cell.

====================  ===============  ============================================  ===============
name                  state            one step (then s = H(U - θ) and the reset)    targets
====================  ===============  ============================================  ===============
``lif``               v                U = decay·v + I                               analog, digital
``if``                v                U = v + I                                     digital
``synaptic``          v, i             i = alpha·i + I; U = beta·v + i               none
``alif``              v, a             θ = θ0 + beta_a·a; U = decay·v + I;           none
                                       a = rho·a + s
``expif``             v                U = v + dt/tau·(-(v - v_rest) + R·I           none
                                       + delta_T·exp((v - v_T)/delta_T));
                                       spike at v_peak, then v = v_reset
``adex``              v, w             ExpIF with R·(I - w);                         none
                                       w = w + dt/tau_w·(a·(v - v_rest) - w),
                                       w += b at a spike
``lapicque``          v                U = v + dt/tau·(-v + R·I)                     none
``alpha``             v, i_exc, i_inh  i_exc = alpha_exc·i_exc + max(I, 0);          none
                                       i_inh = alpha_inh·i_inh + max(-I, 0);
                                       U = beta·v + i_exc - i_inh
``second_order_lif``  v, a             a = alpha·a + I - gamma·v; U = beta·v + a     none
``recurrent_lif``     v, s_prev        U = decay·v + I + W_rec·s_prev                none
====================  ===============  ============================================  ===============

The hardware contract (:mod:`spikeforge.spec`) is one LIF neuron with a single decay and
threshold per network: only ``lif`` can be built on both targets, ``if`` (decay 1) on the
digital target only, and no cell with learned per-neuron decays or thresholds;
:func:`check_target` says so with the fix. :data:`CELL_DESCRIPTIONS` holds this table as
data (for the docs: :func:`describe_cells`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.errors import ConfigError
from spikeforge.spec import RESET_MODES, NeuronSpec
from spikeforge.surrogates import FastSigmoid, Surrogate

Tensor = torch.Tensor
#: A parameter as the step functions take it: the dataclass's float, or a learned
#: per-neuron tensor of shape ``(n,)`` (broadcast over the batch).
Value = float | Tensor

#: Hardware targets (:func:`check_target`).
TARGETS = ("analog", "digital")

#: The exponential term of ExpIF / AdEx is ``delta_T · exp(min(x, EXP_ARG_MAX))`` with
#: ``x = (v - v_T) / delta_T``: without the clamp one large step (a strong input or a
#: seeded state far above ``v_peak``) overflows to ``inf`` and then ``nan``. ``exp(20)`` is
#: about 4.9e8, far below float32's limit (about ``exp(88.7)``); the clamp binds only for
#: ``v > v_T + 20·delta_T``, above ``v_peak`` for the default parameters, where the neuron
#: spikes anyway.
EXP_ARG_MAX = 20.0

_DEFAULT_SURROGATE = FastSigmoid()


class CellStep(NamedTuple):
    """One step of a cell: spikes ``(batch, n)``, the membrane before reset ``U``
    ``(batch, n)``, and the new state."""

    spikes: Tensor
    membrane: Tensor
    state: Any


# ----------------------------------------------------------------------------- checks


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _need(ok: bool, cell: str, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{cell} cell: {name} = {value!r} is not allowed: it must be {allowed}")


def _decay(cell: str, name: str, value: Any, one: bool = False) -> None:
    """A retention factor per step in (0, 1), or (0, 1] where ``one`` (no leak allowed)."""
    ok = _number(value) and (0.0 < value < 1.0 or (one and value == 1.0))
    allowed = "a number in (0, 1] (1 = no leak)" if one else "a number in (0, 1)"
    _need(ok, cell, name, value, allowed)


def _positive(cell: str, name: str, value: Any) -> None:
    _need(_number(value) and value > 0, cell, name, value, "a number > 0")


def _finite(cell: str, name: str, value: Any) -> None:
    _need(_number(value), cell, name, value, "a finite number")


def _reset(cell: str, value: Any) -> None:
    _need(value in RESET_MODES, cell, "reset", value, f"one of {', '.join(RESET_MODES)}")


def _euler(cell: str, dt: Any, tau: Any, tau_name: str = "tau") -> None:
    """An explicit Euler step is only a faithful (and stable) discretisation for dt < tau."""
    _positive(cell, "dt", dt)
    _positive(cell, tau_name, tau)
    _need(dt < tau, cell, "dt", dt, f"< {tau_name} = {tau!r} (the Euler step dt/{tau_name} "
          f"must be below 1)")


# -------------------------------------------------------------------------- shared maths


def _pick(learned: Value | None, configured: float) -> Value:
    return configured if learned is None else learned


def _fire(u: Tensor, threshold: Value, surrogate: Surrogate, reset: str) -> tuple[Tensor, Tensor]:
    """``s = H(U - θ)`` (surrogate gradient) and ``v`` after the reset with ``s`` held
    constant (detached): ``U·(1 - s̄)`` for "zero", ``U - θ·s̄`` for "subtract"."""
    spikes = surrogate(u - threshold)
    fired = spikes.detach()
    v = u * (1.0 - fired) if reset == "zero" else u - threshold * fired
    return spikes, v


def _exp_term(v: Tensor, v_T: float, delta_T: float) -> Tensor:
    """``delta_T · exp(min((v - v_T) / delta_T, EXP_ARG_MAX))`` (see :data:`EXP_ARG_MAX`)."""
    return delta_T * torch.exp(torch.clamp((v - v_T) / delta_T, max=EXP_ARG_MAX))


def _fire_to(u: Tensor, v_peak: float, v_reset: float,
             surrogate: Surrogate) -> tuple[Tensor, Tensor, Tensor]:
    """ExpIF / AdEx spike at ``v_peak`` and reset to ``v_reset`` (``s̄`` detached):
    spikes, ``v = U·(1 - s̄) + v_reset·s̄`` and ``s̄``."""
    spikes = surrogate(u - v_peak)
    fired = spikes.detach()
    return spikes, u * (1.0 - fired) + v_reset * fired, fired


# ------------------------------------------------------------------------------ 1. LIF


@dataclass(frozen=True)
class LIFParameters:
    """Leaky integrate-and-fire, the hardware contract's neuron.

    decay:     membrane retention per step, in (0, 1] (1 = no leak).
    threshold: firing threshold θ, > 0.
    reset:     ``"zero"`` (the contract's default) or ``"subtract"``.
    """

    decay: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("lif", "decay", self.decay, one=True)
        _positive("lif", "threshold", self.threshold)
        _reset("lif", self.reset)


class LIFState(NamedTuple):
    """Membrane after the reset. (Not :class:`spikeforge.spec.LIFState`, the contract's
    layer state, which also counts refractory steps: these cells have no refractory
    period.)"""

    v: Tensor


def _lif(current: Tensor, state: LIFState, p: LIFParameters, surrogate: Surrogate,
         decay: Value | None = None, threshold: Value | None = None) -> CellStep:
    threshold = _pick(threshold, p.threshold)
    u = _pick(decay, p.decay) * state.v + current
    spikes, v = _fire(u, threshold, surrogate, p.reset)
    return CellStep(spikes, u, LIFState(v))


def lif_step(current: Tensor, state: LIFState, params: LIFParameters,
             surrogate: Surrogate = _DEFAULT_SURROGATE, *, decay: Value | None = None,
             threshold: Value | None = None) -> tuple[Tensor, LIFState]:
    """One LIF step (:func:`spikeforge.spec.lif_step` without a refractory period)::

        U = decay · v + I
        s = H(U - θ)
        v' = U · (1 - s̄)      (reset "zero")      or      U - θ · s̄      ("subtract")

    ``decay`` / ``threshold``, when given (learned tensors), replace ``params``'s values.
    """
    spikes, _, new = _lif(current, state, params, surrogate, decay, threshold)
    return spikes, new


# ------------------------------------------------------------------------------- 2. IF


@dataclass(frozen=True)
class IFParameters:
    """Integrate-and-fire: the LIF without leak (decay 1).

    threshold: firing threshold θ, > 0.
    reset:     ``"zero"`` or ``"subtract"``.
    """

    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _positive("if", "threshold", self.threshold)
        _reset("if", self.reset)


class IFState(NamedTuple):
    """Membrane after the reset."""

    v: Tensor


def _if(current: Tensor, state: IFState, p: IFParameters, surrogate: Surrogate,
        threshold: Value | None = None) -> CellStep:
    u = state.v + current
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    return CellStep(spikes, u, IFState(v))


def if_step(current: Tensor, state: IFState, params: IFParameters,
            surrogate: Surrogate = _DEFAULT_SURROGATE, *,
            threshold: Value | None = None) -> tuple[Tensor, IFState]:
    """One IF step::

        U = v + I
        s = H(U - θ)
        v' = U · (1 - s̄)   or   U - θ · s̄
    """
    spikes, _, new = _if(current, state, params, surrogate, threshold)
    return spikes, new


# ------------------------------------------------------------------------ 3. synaptic


@dataclass(frozen=True)
class SynapticParameters:
    """Current-based LIF: the input charges a synaptic current that decays on its own.

    alpha:     synaptic current retention per step, in (0, 1).
    beta:      membrane retention per step, in (0, 1].
    threshold: θ, > 0.
    reset:     ``"zero"`` or ``"subtract"`` (the membrane only; the current is not reset).
    """

    alpha: float = 0.8
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("synaptic", "alpha", self.alpha)
        _decay("synaptic", "beta", self.beta, one=True)
        _positive("synaptic", "threshold", self.threshold)
        _reset("synaptic", self.reset)


class SynapticState(NamedTuple):
    """Membrane ``v`` (after reset) and synaptic current ``i``."""

    v: Tensor
    i: Tensor


def _synaptic(current: Tensor, state: SynapticState, p: SynapticParameters,
              surrogate: Surrogate, alpha: Value | None = None, beta: Value | None = None,
              threshold: Value | None = None) -> CellStep:
    i = _pick(alpha, p.alpha) * state.i + current
    u = _pick(beta, p.beta) * state.v + i
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    return CellStep(spikes, u, SynapticState(v, i))


def synaptic_step(current: Tensor, state: SynapticState, params: SynapticParameters,
                  surrogate: Surrogate = _DEFAULT_SURROGATE, *, alpha: Value | None = None,
                  beta: Value | None = None,
                  threshold: Value | None = None) -> tuple[Tensor, SynapticState]:
    """One current-based LIF step (snnTorch's ``Synaptic``)::

        i' = alpha · i + I
        U  = beta · v + i'
        s  = H(U - θ)
        v' = U · (1 - s̄)   or   U - θ · s̄
    """
    spikes, _, new = _synaptic(current, state, params, surrogate, alpha, beta, threshold)
    return spikes, new


# ---------------------------------------------------------------------------- 4. ALIF


@dataclass(frozen=True)
class ALIFParameters:
    """Adaptive LIF (Bellec et al. 2018/2020, LSNN / e-prop): every spike raises the
    neuron's threshold, which relaxes back to ``threshold`` with retention ``rho``.

    decay:     membrane retention per step, in (0, 1].
    threshold: baseline threshold θ0, > 0.
    beta_a:    threshold increase per unit of adaptation ``a``, >= 0 (0: a plain LIF).
    rho:       adaptation retention per step, in (0, 1) (``exp(-dt/tau_a)``).
    reset:     ``"zero"`` or ``"subtract"`` (subtracts the adaptive threshold θ_t).
    """

    decay: float = 0.9
    threshold: float = 1.0
    beta_a: float = 0.1
    rho: float = 0.95
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("alif", "decay", self.decay, one=True)
        _positive("alif", "threshold", self.threshold)
        _need(_number(self.beta_a) and self.beta_a >= 0, "alif", "beta_a", self.beta_a,
              "a number >= 0")
        _decay("alif", "rho", self.rho)
        _reset("alif", self.reset)


class ALIFState(NamedTuple):
    """Membrane ``v`` (after reset) and adaptation ``a`` (a decaying count of spikes)."""

    v: Tensor
    a: Tensor


def _alif(current: Tensor, state: ALIFState, p: ALIFParameters, surrogate: Surrogate,
          decay: Value | None = None, rho: Value | None = None,
          threshold: Value | None = None) -> CellStep:
    theta = _pick(threshold, p.threshold) + p.beta_a * state.a
    u = _pick(decay, p.decay) * state.v + current
    spikes, v = _fire(u, theta, surrogate, p.reset)
    # Unlike the reset, the adaptation keeps the spike's gradient (as in e-prop / Norse's
    # LSNN): that is how the network learns to use the slow threshold as memory.
    a = _pick(rho, p.rho) * state.a + spikes
    return CellStep(spikes, u, ALIFState(v, a))


def alif_step(current: Tensor, state: ALIFState, params: ALIFParameters,
              surrogate: Surrogate = _DEFAULT_SURROGATE, *, decay: Value | None = None,
              rho: Value | None = None,
              threshold: Value | None = None) -> tuple[Tensor, ALIFState]:
    """One adaptive-LIF step; ``a[t-1]`` counts the spikes up to the previous step::

        θ_t = θ0 + beta_a · a            (a = a[t-1])
        U   = decay · v + I
        s   = H(U - θ_t)
        v'  = U · (1 - s̄)   or   U - θ_t · s̄
        a'  = rho · a + s                (s not detached: the adaptation is dynamics)
    """
    spikes, _, new = _alif(current, state, params, surrogate, decay, rho, threshold)
    return spikes, new


# --------------------------------------------------------------------------- 5. ExpIF


@dataclass(frozen=True)
class ExpIFParameters:
    """Exponential integrate-and-fire (Fourcaud-Trocmé et al. 2003), Euler-discretised,
    in model units (``v_T - v_rest = 1`` by default; time in units of ``dt``).

    tau:     membrane time constant, > dt.
    dt:      time step, > 0.
    v_rest:  resting potential.
    v_reset: potential after a spike, < v_peak.
    v_T:     rheobase threshold, where the exponential upswing takes over.
    delta_T: slope factor (sharpness of the upswing), > 0.
    v_peak:  the spike is cut off here (the surrogate's threshold), > v_T.
    R:       membrane resistance (input gain), > 0.
    """

    tau: float = 10.0
    dt: float = 1.0
    v_rest: float = 0.0
    v_reset: float = 0.0
    v_T: float = 1.0
    delta_T: float = 0.25
    v_peak: float = 2.0
    R: float = 1.0

    def __post_init__(self) -> None:
        _check_exponential("expif", self)


def _check_exponential(cell: str, p: ExpIFParameters | AdExParameters) -> None:
    _euler(cell, p.dt, p.tau)
    for name in ("v_rest", "v_reset", "v_T"):
        _finite(cell, name, getattr(p, name))
    _positive(cell, "delta_T", p.delta_T)
    _need(_number(p.v_peak) and p.v_peak > p.v_T, cell, "v_peak", p.v_peak,
          f"a number > v_T = {p.v_T!r}")
    _need(p.v_reset < p.v_peak, cell, "v_reset", p.v_reset, f"< v_peak = {p.v_peak!r}")
    _positive(cell, "R", p.R)


class ExpIFState(NamedTuple):
    """Membrane after the reset."""

    v: Tensor


def _expif(current: Tensor, state: ExpIFState, p: ExpIFParameters,
           surrogate: Surrogate) -> CellStep:
    v = state.v
    u = v + p.dt / p.tau * (-(v - p.v_rest) + _exp_term(v, p.v_T, p.delta_T) + p.R * current)
    spikes, v_new, _ = _fire_to(u, p.v_peak, p.v_reset, surrogate)
    return CellStep(spikes, u, ExpIFState(v_new))


def expif_step(current: Tensor, state: ExpIFState, params: ExpIFParameters,
               surrogate: Surrogate = _DEFAULT_SURROGATE) -> tuple[Tensor, ExpIFState]:
    """One Euler step of ``tau·dv/dt = -(v - v_rest) + delta_T·exp((v - v_T)/delta_T) + R·I``::

        U  = v + dt/tau · (-(v - v_rest) + delta_T · exp(min((v - v_T)/delta_T, 20)) + R·I)
        s  = H(U - v_peak)
        v' = U · (1 - s̄) + v_reset · s̄

    The exponent is clamped at :data:`EXP_ARG_MAX` (= 20) so that it cannot overflow.
    """
    spikes, _, new = _expif(current, state, params, surrogate)
    return spikes, new


# ---------------------------------------------------------------------------- 6. AdEx


@dataclass(frozen=True)
class AdExParameters:
    """Adaptive exponential integrate-and-fire (Brette & Gerstner 2005): ExpIF with an
    adaptation current ``w`` (model units as :class:`ExpIFParameters`; ``w`` in units of
    the input current).

    tau, dt, v_rest, v_reset, v_T, delta_T, v_peak, R: as :class:`ExpIFParameters`.
    tau_w: adaptation time constant, > dt.
    a:     subthreshold adaptation (coupling of ``w`` to ``v - v_rest``), finite.
    b:     spike-triggered adaptation (``w`` jumps by ``b`` at a spike), >= 0.
    """

    tau: float = 10.0
    dt: float = 1.0
    v_rest: float = 0.0
    v_reset: float = 0.0
    v_T: float = 1.0
    delta_T: float = 0.25
    v_peak: float = 2.0
    R: float = 1.0
    tau_w: float = 100.0
    a: float = 0.1
    b: float = 0.2

    def __post_init__(self) -> None:
        _check_exponential("adex", self)
        _euler("adex", self.dt, self.tau_w, "tau_w")
        _finite("adex", "a", self.a)
        _need(_number(self.b) and self.b >= 0, "adex", "b", self.b, "a number >= 0")


class AdExState(NamedTuple):
    """Membrane ``v`` (after reset) and adaptation current ``w``."""

    v: Tensor
    w: Tensor


def _adex(current: Tensor, state: AdExState, p: AdExParameters,
          surrogate: Surrogate) -> CellStep:
    v, w = state
    drive = -(v - p.v_rest) + _exp_term(v, p.v_T, p.delta_T) + p.R * (current - w)
    u = v + p.dt / p.tau * drive
    # Explicit Euler: both derivatives at the old (v, w).
    w_new = w + p.dt / p.tau_w * (p.a * (v - p.v_rest) - w)
    spikes, v_new, fired = _fire_to(u, p.v_peak, p.v_reset, surrogate)
    return CellStep(spikes, u, AdExState(v_new, w_new + p.b * fired))


def adex_step(current: Tensor, state: AdExState, params: AdExParameters,
              surrogate: Surrogate = _DEFAULT_SURROGATE) -> tuple[Tensor, AdExState]:
    """One explicit Euler step of ``tau·dv/dt = -(v - v_rest) + delta_T·exp((v - v_T)/
    delta_T) + R·(I - w)``, ``tau_w·dw/dt = a·(v - v_rest) - w``::

        U  = v + dt/tau · (-(v - v_rest) + delta_T · exp(min((v - v_T)/delta_T, 20))
                           + R · (I - w))
        s  = H(U - v_peak)
        v' = U · (1 - s̄) + v_reset · s̄
        w' = w + dt/tau_w · (a · (v - v_rest) - w) + b · s̄

    Both jumps at a spike (``v ← v_reset``, ``w += b``) are the reset and use the detached
    spike ``s̄``. The exponent is clamped at :data:`EXP_ARG_MAX` (= 20).
    """
    spikes, _, new = _adex(current, state, params, surrogate)
    return spikes, new


# ------------------------------------------------------------------------ 7. Lapicque


@dataclass(frozen=True)
class LapicqueParameters:
    """Lapicque's RC neuron with explicit circuit constants (snnTorch's ``Lapicque``).

    tau:       membrane time constant R·C, > dt.
    R:         membrane resistance, > 0.
    dt:        time step, in (0, tau).
    threshold: θ, > 0.
    reset:     ``"zero"`` or ``"subtract"``.

    The defaults give ``decay = 1 - dt/tau = 0.8`` and an input gain ``dt·R/tau = 1``.
    """

    tau: float = 5.0
    R: float = 5.0
    dt: float = 1.0
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _euler("lapicque", self.dt, self.tau)
        _positive("lapicque", "R", self.R)
        _positive("lapicque", "threshold", self.threshold)
        _reset("lapicque", self.reset)

    @property
    def decay(self) -> float:
        """Membrane retention per step, ``1 - dt/tau``."""
        return 1.0 - self.dt / self.tau


class LapicqueState(NamedTuple):
    """Membrane after the reset."""

    v: Tensor


def _lapicque(current: Tensor, state: LapicqueState, p: LapicqueParameters,
              surrogate: Surrogate, decay: Value | None = None,
              threshold: Value | None = None) -> CellStep:
    # dt/tau = 1 - decay, so a learned decay is a learned per-neuron tau (R stays fixed).
    d = _pick(decay, p.decay)
    u = d * state.v + (1.0 - d) * p.R * current
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    return CellStep(spikes, u, LapicqueState(v))


def lapicque_step(current: Tensor, state: LapicqueState, params: LapicqueParameters,
                  surrogate: Surrogate = _DEFAULT_SURROGATE, *, decay: Value | None = None,
                  threshold: Value | None = None) -> tuple[Tensor, LapicqueState]:
    """One Euler step of ``tau·dv/dt = -v + R·I``::

        U  = v + dt/tau · (-v + R·I)  =  decay · v + (1 - decay) · R · I,   decay = 1 - dt/tau
        s  = H(U - θ)
        v' = U · (1 - s̄)   or   U - θ · s̄

    A ``decay`` given here (learned) stands for ``1 - dt/tau``, gain included.
    """
    spikes, _, new = _lapicque(current, state, params, surrogate, decay, threshold)
    return spikes, new


# --------------------------------------------------------------------------- 8. alpha


@dataclass(frozen=True)
class AlphaParameters:
    """Separate excitatory and inhibitory synaptic currents (Rall 1967's alpha-shaped
    postsynaptic potentials): the positive part of the input charges ``i_exc``, the
    negative part ``i_inh``, each with its own retention.

    alpha_exc: excitatory current retention per step, in (0, 1).
    alpha_inh: inhibitory current retention per step, in (0, 1).
    beta:      membrane retention per step, in (0, 1].
    threshold: θ, > 0.
    reset:     ``"zero"`` or ``"subtract"`` (the membrane only).
    """

    alpha_exc: float = 0.8
    alpha_inh: float = 0.9
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("alpha", "alpha_exc", self.alpha_exc)
        _decay("alpha", "alpha_inh", self.alpha_inh)
        _decay("alpha", "beta", self.beta, one=True)
        _positive("alpha", "threshold", self.threshold)
        _reset("alpha", self.reset)


class AlphaState(NamedTuple):
    """Membrane ``v`` (after reset), excitatory and inhibitory currents (both >= 0)."""

    v: Tensor
    i_exc: Tensor
    i_inh: Tensor


def _alpha(current: Tensor, state: AlphaState, p: AlphaParameters, surrogate: Surrogate,
           alpha_exc: Value | None = None, alpha_inh: Value | None = None,
           beta: Value | None = None, threshold: Value | None = None) -> CellStep:
    i_exc = _pick(alpha_exc, p.alpha_exc) * state.i_exc + F.relu(current)
    i_inh = _pick(alpha_inh, p.alpha_inh) * state.i_inh + F.relu(-current)
    u = _pick(beta, p.beta) * state.v + i_exc - i_inh
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    return CellStep(spikes, u, AlphaState(v, i_exc, i_inh))


def alpha_step(current: Tensor, state: AlphaState, params: AlphaParameters,
               surrogate: Surrogate = _DEFAULT_SURROGATE, *, alpha_exc: Value | None = None,
               alpha_inh: Value | None = None, beta: Value | None = None,
               threshold: Value | None = None) -> tuple[Tensor, AlphaState]:
    """One step with split excitation and inhibition::

        i_exc' = alpha_exc · i_exc + max(I, 0)
        i_inh' = alpha_inh · i_inh + max(-I, 0)
        U      = beta · v + i_exc' - i_inh'
        s      = H(U - θ)
        v'     = U · (1 - s̄)   or   U - θ · s̄
    """
    spikes, _, new = _alpha(current, state, params, surrogate, alpha_exc, alpha_inh, beta,
                            threshold)
    return spikes, new


# ---------------------------------------------------------------- 9. second-order LIF


@dataclass(frozen=True)
class SecondOrderLIFParameters:
    """A membrane with inertia: ``a`` is the membrane's velocity ("acceleration" state),
    driven by the input and pulled back by the membrane itself, so that ``(v, a)`` is a
    damped oscillator (a resonate-and-fire neuron, cf. Izhikevich 2001).

    alpha:     retention of ``a`` per step, in (0, 1).
    beta:      membrane retention per step, in (0, 1].
    gamma:     restoring force of ``v`` on ``a``, in [0, 1). With ``gamma = 0`` the cell is
               exactly :class:`SynapticCell` (``a`` playing ``i``), which is why it is not
               the default; below 1 the cell is stable for every alpha, beta in (0, 1], also
               when they are learned (the poles have ``|λ|^2 = alpha·beta`` when complex).
    threshold: θ, > 0.
    reset:     ``"zero"`` or ``"subtract"`` (the membrane only; ``a`` keeps its momentum).
    """

    alpha: float = 0.9
    beta: float = 0.9
    gamma: float = 0.2
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("second_order_lif", "alpha", self.alpha)
        _decay("second_order_lif", "beta", self.beta, one=True)
        _need(_number(self.gamma) and 0.0 <= self.gamma < 1.0, "second_order_lif", "gamma",
              self.gamma, "a number in [0, 1)")
        _positive("second_order_lif", "threshold", self.threshold)
        _reset("second_order_lif", self.reset)


class SecondOrderLIFState(NamedTuple):
    """Membrane ``v`` (after reset) and its velocity ``a``."""

    v: Tensor
    a: Tensor


def _second_order_lif(current: Tensor, state: SecondOrderLIFState,
                      p: SecondOrderLIFParameters, surrogate: Surrogate,
                      alpha: Value | None = None, beta: Value | None = None,
                      threshold: Value | None = None) -> CellStep:
    a = _pick(alpha, p.alpha) * state.a + current - p.gamma * state.v
    u = _pick(beta, p.beta) * state.v + a
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    return CellStep(spikes, u, SecondOrderLIFState(v, a))


def second_order_lif_step(current: Tensor, state: SecondOrderLIFState,
                          params: SecondOrderLIFParameters,
                          surrogate: Surrogate = _DEFAULT_SURROGATE, *,
                          alpha: Value | None = None, beta: Value | None = None,
                          threshold: Value | None = None
                          ) -> tuple[Tensor, SecondOrderLIFState]:
    """One step of the inertial membrane (``v = v[t-1]`` after its reset)::

        a' = alpha · a + I - gamma · v
        U  = beta · v + a'
        s  = H(U - θ)
        v' = U · (1 - s̄)   or   U - θ · s̄

    How it differs from :func:`synaptic_step`: there the current ``i`` integrates the input
    alone, so a pulse gives a membrane that rises and decays without changing sign. Here
    ``- gamma · v`` feeds the membrane back into its own velocity: a pulse makes ``v``
    overshoot and ring below rest (for the defaults), and the cell responds most to input
    at its resonant frequency. ``gamma = 0`` gives back the synaptic cell exactly.
    """
    spikes, _, new = _second_order_lif(current, state, params, surrogate, alpha, beta,
                                       threshold)
    return spikes, new


# ------------------------------------------------------------------- 10. recurrent LIF


@dataclass(frozen=True)
class RecurrentLIFParameters:
    """LIF whose neurons also receive the layer's own spikes of the previous step through a
    trainable matrix ``W_rec`` (held by :class:`RecurrentLIFCell`, passed to the step).

    decay:     membrane retention per step, in (0, 1].
    threshold: θ, > 0.
    reset:     ``"zero"`` or ``"subtract"``.
    """

    decay: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"

    def __post_init__(self) -> None:
        _decay("recurrent_lif", "decay", self.decay, one=True)
        _positive("recurrent_lif", "threshold", self.threshold)
        _reset("recurrent_lif", self.reset)


class RecurrentLIFState(NamedTuple):
    """Membrane ``v`` (after reset) and the spikes of the previous step ``s_prev``."""

    v: Tensor
    s_prev: Tensor


def _recurrent_lif(current: Tensor, state: RecurrentLIFState, p: RecurrentLIFParameters,
                   surrogate: Surrogate, recurrent_weight: Tensor,
                   decay: Value | None = None, threshold: Value | None = None) -> CellStep:
    u = _pick(decay, p.decay) * state.v + current + F.linear(state.s_prev, recurrent_weight)
    spikes, v = _fire(u, _pick(threshold, p.threshold), surrogate, p.reset)
    # s_prev keeps its gradient: backpropagation through time runs through W_rec.
    return CellStep(spikes, u, RecurrentLIFState(v, spikes))


def recurrent_lif_step(current: Tensor, state: RecurrentLIFState,
                       params: RecurrentLIFParameters,
                       surrogate: Surrogate = _DEFAULT_SURROGATE, *,
                       recurrent_weight: Tensor, decay: Value | None = None,
                       threshold: Value | None = None) -> tuple[Tensor, RecurrentLIFState]:
    """One recurrent LIF step; ``recurrent_weight`` is ``W_rec`` ``(n, n)``, row ``j``
    holding the weights onto neuron ``j`` (``nn.Linear``'s layout)::

        U  = decay · v + I + W_rec · s_prev
        s  = H(U - θ)
        v' = U · (1 - s̄)   or   U - θ · s̄
        s_prev' = s
    """
    spikes, _, new = _recurrent_lif(current, state, params, surrogate, recurrent_weight,
                                    decay, threshold)
    return spikes, new


# ---------------------------------------------------------------------------- modules


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _inverse_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class NeuronCell(nn.Module):
    """Base of the cell modules: holds the parameters (and learned ones), never state.

    Subclasses set the class attributes below and ``_kernel``, the private form of their
    step function that also returns the membrane before reset (:class:`CellStep`).
    """

    name: ClassVar[str]
    Parameters: ClassVar[type[Any]]
    State: ClassVar[type[Any]]
    #: Hardware targets that can build this cell (:func:`check_target`).
    targets: ClassVar[frozenset[str]] = frozenset()
    #: Parameter fields that ``learn_decay`` turns into per-neuron parameters.
    decay_fields: ClassVar[tuple[str, ...]] = ()
    #: The field ``learn_threshold`` learns (None: the cell has no threshold to learn).
    threshold_field: ClassVar[str | None] = "threshold"
    #: The field a network's ``NeuronSpec.decay`` sets in :func:`make_cell` (None: none).
    membrane_decay_field: ClassVar[str | None] = None
    #: Why the cell has no decay / threshold to learn (completes the error message).
    no_decay_reason: ClassVar[str] = ""
    no_threshold_reason: ClassVar[str] = ""
    #: One step in words and the source, for :data:`CELL_DESCRIPTIONS`.
    equations: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    _kernel: ClassVar[Callable[..., CellStep]]

    def __init__(self, n: int, params: Any, surrogate: Surrogate | None = None,
                 learn_decay: bool = False, learn_threshold: bool = False) -> None:
        super().__init__()
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ConfigError(f"{self.name} cell: n = {n!r} is not allowed: it must be an "
                              f"integer >= 1 (neurons in the layer)")
        self.n = n
        self.params = params
        self.surrogate = surrogate or FastSigmoid()
        self.learn_decay = bool(learn_decay)
        self.learn_threshold = bool(learn_threshold)
        if learn_decay:
            if not self.decay_fields:
                raise ConfigError(f"learn_decay: the {self.name!r} cell has no decay to learn"
                                  f"{self.no_decay_reason}; cells with one: "
                                  f"{', '.join(_cells_with('decay'))}")
            for field in self.decay_fields:
                value = getattr(params, field)
                # A sigmoid never reaches 1, so a decay of 1 cannot be a learned decay.
                _need(value < 1.0, self.name, field, value,
                      "< 1 with learn_decay (a learned decay is a sigmoid, inside (0, 1))")
                raw = torch.full((n,), _logit(value), dtype=torch.float64)
                self.register_parameter(f"{field}_logit",
                                        nn.Parameter(raw.to(torch.get_default_dtype())))
        if learn_threshold:
            if self.threshold_field is None:
                raise ConfigError(f"learn_threshold: the {self.name!r} cell has no threshold "
                                  f"to learn{self.no_threshold_reason}; cells with one: "
                                  f"{', '.join(_cells_with('threshold'))}")
            value = getattr(params, self.threshold_field)
            raw = torch.full((n,), _inverse_softplus(value), dtype=torch.float64)
            self.threshold_raw = nn.Parameter(raw.to(torch.get_default_dtype()))

    def learned_values(self) -> dict[str, Tensor]:
        """The learned per-neuron values now in effect, ``(n,)`` each, by field name:
        ``sigmoid(<field>_logit)`` for decays, ``softplus(threshold_raw)`` for the
        threshold. Empty without ``learn_decay`` / ``learn_threshold``."""
        values: dict[str, Tensor] = {}
        if self.learn_decay:
            for field in self.decay_fields:
                values[field] = torch.sigmoid(getattr(self, f"{field}_logit"))
        if self.learn_threshold and self.threshold_field is not None:
            values[self.threshold_field] = F.softplus(self.threshold_raw)
        return values

    def effective_parameters(self) -> dict[str, Any]:
        """Every parameter as the step uses it: the dataclass's values, learned ones
        replaced by their per-neuron tensors."""
        return {**dataclasses.asdict(self.params), **self.learned_values()}

    def _like(self, device: torch.device | str | None,
              dtype: torch.dtype | None) -> dict[str, Any]:
        first = next(self.parameters(), None)
        if first is not None:
            device = first.device if device is None else device
            dtype = first.dtype if dtype is None else dtype
        return {"device": device, "dtype": dtype or torch.get_default_dtype()}

    def initial_state(self, batch: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> Any:
        """The state at rest, every field ``(batch, n)`` zeros (device and dtype default
        to the module's parameters', else the default dtype on the CPU)."""
        like = self._like(device, dtype)
        return self.State(*(torch.zeros(batch, self.n, **like) for _ in self.State._fields))

    def _advance(self, current: Tensor, state: Any) -> CellStep:
        return type(self)._kernel(current, state, self.params, self.surrogate,
                                  **self.learned_values())

    def step(self, current: Tensor, state: Any = None) -> CellStep:
        """One step, also returning the membrane before reset ``U`` (:func:`run_cell`)."""
        if current.dim() != 2 or current.shape[-1] != self.n:
            raise ValueError(f"{self.name} cell: current has shape {tuple(current.shape)}, "
                             f"expected (batch, {self.n})")
        if state is None:
            state = self.initial_state(current.shape[0], current.device, current.dtype)
        return self._advance(current, state)

    def forward(self, current: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One time step: ``current`` ``(batch, n)`` and the state (None: at rest) to
        ``(spikes, new_state)``."""
        spikes, _, new = self.step(current, state)
        return spikes, new

    def extra_repr(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.params).items())
        learned = [flag for flag in ("learn_decay", "learn_threshold") if getattr(self, flag)]
        return f"n={self.n}, {fields}" + "".join(f", {flag}=True" for flag in learned)


class LIFCell(NeuronCell):
    """:func:`lif_step` as a module; the same spikes as the fused
    :func:`spikeforge.neurons.lif.lif_sequence` for the same ``NeuronSpec`` (refractory 0)."""

    name = "lif"
    Parameters = LIFParameters
    State = LIFState
    targets = frozenset({"analog", "digital"})
    decay_fields = ("decay",)
    membrane_decay_field = "decay"
    equations = "U = decay·v + I; s = H(U - θ); reset"
    reference = "the hardware contract (spikeforge.spec)"
    _kernel = staticmethod(_lif)

    def __init__(self, n: int, *, decay: float = 0.9, threshold: float = 1.0,
                 reset: str = "zero", surrogate: Surrogate | None = None,
                 learn_decay: bool = False, learn_threshold: bool = False) -> None:
        super().__init__(n, LIFParameters(decay, threshold, reset), surrogate, learn_decay,
                         learn_threshold)


class IFCell(NeuronCell):
    """:func:`if_step` as a module: the LIF with decay 1."""

    name = "if"
    Parameters = IFParameters
    State = IFState
    targets = frozenset({"digital"})
    no_decay_reason = " (it does not leak; use the 'lif' cell to learn a leak)"
    equations = "U = v + I; s = H(U - θ); reset"
    reference = "perfect integrate-and-fire (the contract with decay 1)"
    _kernel = staticmethod(_if)

    def __init__(self, n: int, *, threshold: float = 1.0, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, IFParameters(threshold, reset), surrogate, learn_decay,
                         learn_threshold)


class SynapticCell(NeuronCell):
    """:func:`synaptic_step` as a module; ``learn_decay`` learns ``alpha`` and ``beta``."""

    name = "synaptic"
    Parameters = SynapticParameters
    State = SynapticState
    decay_fields = ("alpha", "beta")
    membrane_decay_field = "beta"
    equations = "i = alpha·i + I; U = beta·v + i; s = H(U - θ); reset"
    reference = "current-based LIF (snnTorch Synaptic, Norse LIF)"
    _kernel = staticmethod(_synaptic)

    def __init__(self, n: int, *, alpha: float = 0.8, beta: float = 0.9,
                 threshold: float = 1.0, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, SynapticParameters(alpha, beta, threshold, reset), surrogate,
                         learn_decay, learn_threshold)


class ALIFCell(NeuronCell):
    """:func:`alif_step` as a module; ``learn_decay`` learns ``decay`` and ``rho``,
    ``learn_threshold`` the baseline ``threshold`` θ0."""

    name = "alif"
    Parameters = ALIFParameters
    State = ALIFState
    decay_fields = ("decay", "rho")
    membrane_decay_field = "decay"
    equations = ("θ = θ0 + beta_a·a; U = decay·v + I; s = H(U - θ); reset; "
                 "a = rho·a + s")
    reference = "Bellec et al. 2018 (LSNN), 2020 (e-prop)"
    _kernel = staticmethod(_alif)

    def __init__(self, n: int, *, decay: float = 0.9, threshold: float = 1.0,
                 beta_a: float = 0.1, rho: float = 0.95, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, ALIFParameters(decay, threshold, beta_a, rho, reset), surrogate,
                         learn_decay, learn_threshold)


class ExpIFCell(NeuronCell):
    """:func:`expif_step` as a module. Its state starts at ``v_rest``. It has nothing to
    learn with ``learn_decay`` / ``learn_threshold``."""

    name = "expif"
    Parameters = ExpIFParameters
    State = ExpIFState
    threshold_field = None
    no_decay_reason = " (its leak is set by tau and dt, not by a decay)"
    no_threshold_reason = (" (v_peak only cuts off the exponential upswing; the effective "
                           "threshold v_T shapes the dynamics)")
    equations = ("U = v + dt/tau·(-(v - v_rest) + delta_T·exp((v - v_T)/delta_T) + R·I); "
                 "s = H(U - v_peak); v = v_reset at a spike")
    reference = "Fourcaud-Trocmé et al. 2003"
    _kernel = staticmethod(_expif)

    def __init__(self, n: int, *, tau: float = 10.0, dt: float = 1.0, v_rest: float = 0.0,
                 v_reset: float = 0.0, v_T: float = 1.0, delta_T: float = 0.25,
                 v_peak: float = 2.0, R: float = 1.0, surrogate: Surrogate | None = None,
                 learn_decay: bool = False, learn_threshold: bool = False) -> None:
        super().__init__(n, ExpIFParameters(tau, dt, v_rest, v_reset, v_T, delta_T, v_peak, R),
                         surrogate, learn_decay, learn_threshold)

    def initial_state(self, batch: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> ExpIFState:
        """At rest: ``v = v_rest``."""
        return ExpIFState(torch.full((batch, self.n), self.params.v_rest,
                                     **self._like(device, dtype)))


class AdExCell(NeuronCell):
    """:func:`adex_step` as a module. Its state starts at ``v = v_rest``, ``w = 0``. It has
    nothing to learn with ``learn_decay`` / ``learn_threshold``."""

    name = "adex"
    Parameters = AdExParameters
    State = AdExState
    threshold_field = None
    no_decay_reason = ExpIFCell.no_decay_reason
    no_threshold_reason = ExpIFCell.no_threshold_reason
    equations = ("U = v + dt/tau·(-(v - v_rest) + delta_T·exp((v - v_T)/delta_T) + R·(I - w)); "
                 "w = w + dt/tau_w·(a·(v - v_rest) - w); s = H(U - v_peak); "
                 "v = v_reset, w += b at a spike")
    reference = "Brette & Gerstner 2005"
    _kernel = staticmethod(_adex)

    def __init__(self, n: int, *, tau: float = 10.0, dt: float = 1.0, v_rest: float = 0.0,
                 v_reset: float = 0.0, v_T: float = 1.0, delta_T: float = 0.25,
                 v_peak: float = 2.0, R: float = 1.0, tau_w: float = 100.0, a: float = 0.1,
                 b: float = 0.2, surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, AdExParameters(tau, dt, v_rest, v_reset, v_T, delta_T, v_peak, R,
                                           tau_w, a, b),
                         surrogate, learn_decay, learn_threshold)

    def initial_state(self, batch: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> AdExState:
        """At rest: ``v = v_rest``, ``w = 0``."""
        like = self._like(device, dtype)
        return AdExState(torch.full((batch, self.n), self.params.v_rest, **like),
                         torch.zeros(batch, self.n, **like))


class LapicqueCell(NeuronCell):
    """:func:`lapicque_step` as a module; ``learn_decay`` learns ``decay = 1 - dt/tau``
    per neuron (that is, tau; R stays fixed)."""

    name = "lapicque"
    Parameters = LapicqueParameters
    State = LapicqueState
    decay_fields = ("decay",)
    equations = "U = v + dt/tau·(-v + R·I) = decay·v + (1 - decay)·R·I; s = H(U - θ); reset"
    reference = "Lapicque 1907 (RC circuit, snnTorch Lapicque)"
    _kernel = staticmethod(_lapicque)

    def __init__(self, n: int, *, tau: float = 5.0, R: float = 5.0, dt: float = 1.0,
                 threshold: float = 1.0, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, LapicqueParameters(tau, R, dt, threshold, reset), surrogate,
                         learn_decay, learn_threshold)


class AlphaCell(NeuronCell):
    """:func:`alpha_step` as a module; ``learn_decay`` learns ``alpha_exc``, ``alpha_inh``
    and ``beta``."""

    name = "alpha"
    Parameters = AlphaParameters
    State = AlphaState
    decay_fields = ("alpha_exc", "alpha_inh", "beta")
    membrane_decay_field = "beta"
    equations = ("i_exc = alpha_exc·i_exc + max(I, 0); i_inh = alpha_inh·i_inh + max(-I, 0); "
                 "U = beta·v + i_exc - i_inh; s = H(U - θ); reset")
    reference = "Rall 1967"
    _kernel = staticmethod(_alpha)

    def __init__(self, n: int, *, alpha_exc: float = 0.8, alpha_inh: float = 0.9,
                 beta: float = 0.9, threshold: float = 1.0, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, AlphaParameters(alpha_exc, alpha_inh, beta, threshold, reset),
                         surrogate, learn_decay, learn_threshold)


class SecondOrderLIFCell(NeuronCell):
    """:func:`second_order_lif_step` as a module; ``learn_decay`` learns ``alpha`` and
    ``beta`` (``gamma`` stays fixed)."""

    name = "second_order_lif"
    Parameters = SecondOrderLIFParameters
    State = SecondOrderLIFState
    decay_fields = ("alpha", "beta")
    membrane_decay_field = "beta"
    equations = "a = alpha·a + I - gamma·v; U = beta·v + a; s = H(U - θ); reset"
    reference = "inertial membrane, a damped oscillator (cf. Izhikevich 2001)"
    _kernel = staticmethod(_second_order_lif)

    def __init__(self, n: int, *, alpha: float = 0.9, beta: float = 0.9, gamma: float = 0.2,
                 threshold: float = 1.0, reset: str = "zero",
                 surrogate: Surrogate | None = None, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
        super().__init__(n, SecondOrderLIFParameters(alpha, beta, gamma, threshold, reset),
                         surrogate, learn_decay, learn_threshold)


class RecurrentLIFCell(NeuronCell):
    """:func:`recurrent_lif_step` as a module, with ``recurrent``, a trainable
    ``nn.Linear(n, n, bias=False)`` (PyTorch's default initialisation) holding ``W_rec``."""

    name = "recurrent_lif"
    Parameters = RecurrentLIFParameters
    State = RecurrentLIFState
    decay_fields = ("decay",)
    membrane_decay_field = "decay"
    equations = "U = decay·v + I + W_rec·s_prev; s = H(U - θ); reset; s_prev = s"
    reference = "recurrent LIF (Norse LIFRecurrent, snnTorch RLeaky)"
    _kernel = staticmethod(_recurrent_lif)

    def __init__(self, n: int, *, decay: float = 0.9, threshold: float = 1.0,
                 reset: str = "zero", surrogate: Surrogate | None = None,
                 learn_decay: bool = False, learn_threshold: bool = False) -> None:
        super().__init__(n, RecurrentLIFParameters(decay, threshold, reset), surrogate,
                         learn_decay, learn_threshold)
        self.recurrent = nn.Linear(n, n, bias=False)

    def _advance(self, current: Tensor, state: Any) -> CellStep:
        return _recurrent_lif(current, state, self.params, self.surrogate,
                              self.recurrent.weight, **self.learned_values())


#: Registry: name (as in ``--neuron``) -> cell module class.
CELLS: dict[str, type[NeuronCell]] = {cls.name: cls for cls in (
    LIFCell, IFCell, SynapticCell, ALIFCell, ExpIFCell, AdExCell, LapicqueCell, AlphaCell,
    SecondOrderLIFCell, RecurrentLIFCell)}


def _cells_with(what: str) -> list[str]:
    if what == "decay":
        return [name for name, cls in CELLS.items() if cls.decay_fields]
    return [name for name, cls in CELLS.items() if cls.threshold_field is not None]


class CellDescription(NamedTuple):
    """One row of the cell table (docs)."""

    name: str
    cls: str
    states: tuple[str, ...]
    equations: str
    targets: tuple[str, ...]
    learnable: tuple[str, ...]
    reference: str


#: Every cell's states, equations, hardware targets and learnable fields, by name.
CELL_DESCRIPTIONS: dict[str, CellDescription] = {
    name: CellDescription(
        name, cls.__name__, tuple(cls.State._fields), cls.equations, tuple(sorted(cls.targets)),
        cls.decay_fields + ((cls.threshold_field,) if cls.threshold_field else ()),
        cls.reference)
    for name, cls in CELLS.items()
}


def describe_cells() -> str:
    """:data:`CELL_DESCRIPTIONS` as a Markdown table."""
    rows = ["| neuron | class | state | one step | targets | learnable | after |",
            "|---|---|---|---|---|---|---|"]
    for d in CELL_DESCRIPTIONS.values():
        rows.append(f"| `{d.name}` | {d.cls} | {', '.join(d.states)} | {d.equations} | "
                    f"{', '.join(d.targets) or 'none'} | {', '.join(d.learnable) or '-'} | "
                    f"{d.reference} |")
    return "\n".join(rows)


# -------------------------------------------------------------------------- functions


def cell_class(name: str) -> type[NeuronCell]:
    """The cell class registered as ``name``; :class:`ConfigError` naming the choices."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"neuron = {name!r} is unknown: choose one of "
                          f"{', '.join(CELLS)}") from None


def make_cell(name: str, n: int, neuron: NeuronSpec | None = None,
              surrogate: Surrogate | None = None, params: Mapping[str, Any] | None = None, *,
              learn_decay: bool = False, learn_threshold: bool = False) -> NeuronCell:
    """A cell by registry name for a layer of ``n`` neurons.

    ``neuron`` (a network's contract constants) sets the cell's membrane decay
    (``membrane_decay_field``: ``decay`` or ``beta``), ``threshold`` and ``reset`` where the
    cell has them; ``params`` (keyword arguments of the cell) override those. A refractory
    period is refused: only the fused LIF (:mod:`spikeforge.neurons.lif`) has one.
    """
    cls = cell_class(name)
    fields = [f.name for f in dataclasses.fields(cls.Parameters)]
    kwargs: dict[str, Any] = {}
    if neuron is not None:
        if neuron.refractory:
            raise ConfigError(f"neuron.refractory = {neuron.refractory!r} is not allowed with "
                              f"the {name!r} cell: it has no refractory period; use "
                              f"refractory = 0, or the plain lif without learned parameters")
        if cls.membrane_decay_field is not None:
            kwargs[cls.membrane_decay_field] = neuron.decay
        for key in ("threshold", "reset"):
            if key in fields:
                kwargs[key] = getattr(neuron, key)
    unknown = sorted(set(params or {}) - set(fields))
    if unknown:
        raise ConfigError(f"the {name!r} cell has no parameter {', '.join(unknown)}: its "
                          f"parameters are {', '.join(fields)}")
    kwargs.update(params or {})
    return cls(n, **kwargs, surrogate=surrogate, learn_decay=learn_decay,
               learn_threshold=learn_threshold)


def run_cell(cell: NeuronCell, current: Tensor, timesteps: int,
             state: Any = None) -> tuple[Tensor, Tensor, Any]:
    """Run ``cell`` for ``timesteps`` steps.

    current: ``(T, batch, n)``, or ``(batch, n)`` for a current held at every step.
    state:   the state to start from (None: the cell's ``initial_state``, at rest).

    Returns the spikes ``(T, batch, n)``, the membrane *before* reset ``U[t]`` ``(T, batch,
    n)`` (as :mod:`spikeforge.spec`'s ``U``: what the threshold was compared with; after a
    reset the state's ``v`` no longer shows how far above threshold it was), and the final
    state.
    """
    if not (isinstance(timesteps, int) and timesteps >= 1):
        raise ValueError(f"timesteps = {timesteps!r}: expected an integer >= 1")
    if current.dim() == 3 and current.shape[0] != timesteps:
        raise ValueError(f"current has {current.shape[0]} time steps, expected {timesteps}")
    if current.dim() not in (2, 3):
        raise ValueError(f"current has shape {tuple(current.shape)}: expected (T, batch, n) "
                         f"or (batch, n)")
    spikes, membrane = [], []
    for t in range(timesteps):
        s, u, state = cell.step(current if current.dim() == 2 else current[t], state)
        spikes.append(s)
        membrane.append(u)
    return torch.stack(spikes), torch.stack(membrane), state


def check_target(cell_name: str, target: str, learn_decay: bool = False,
                 learn_threshold: bool = False) -> None:
    """Refuse, with the reason and the fix, a neuron that ``target`` cannot build.

    The hardware contract is one LIF neuron with a single decay and threshold per network:
    ``lif`` builds on both targets, ``if`` on the digital target only (the analog board's
    leak resistor cannot be removed), every other cell on none, and per-neuron learned
    decays or thresholds on none. Raises :class:`ConfigError`; returns None when buildable.
    """
    cls = cell_class(cell_name)
    if target not in TARGETS:
        raise ConfigError(f"target = {target!r} is unknown: choose one of {', '.join(TARGETS)}")
    flags = [flag for flag, on in (("--learn-decay", learn_decay),
                                   ("--learn-threshold", learn_threshold)) if on]
    without = f" and without {' / '.join(flags)}" if flags else ""
    if target not in cls.targets:
        if cell_name == "if" and target == "analog":
            why = ("the analog board's leak resistor cannot be removed, so a neuron without "
                   "leak (decay 1) cannot be built")
        else:
            why = (f"the hardware contract is one LIF neuron with a single decay and threshold "
                   f"per network, and the {cell_name!r} cell's dynamics (state: "
                   f"{', '.join(cls.State._fields)}) have no circuit")
        fix = "--neuron lif" if target == "analog" else "--neuron lif (or --neuron if)"
        raise ConfigError(f"neuron {cell_name!r} cannot be built on the {target} target: "
                          f"{why}. Retrain with {fix}{without}")
    if flags:
        learned = " and ".join(f for f, on in (("decay", learn_decay),
                                               ("threshold", learn_threshold)) if on)
        raise ConfigError(f"neuron {cell_name!r} with a learned per-neuron {learned} cannot be "
                          f"built on the {target} target: the hardware contract is one LIF "
                          f"neuron with a single decay and threshold per network. Retrain "
                          f"with --neuron {cell_name}{without}")
