"""The SPICE proof of the analog target: the whole board as an ngspice netlist.

:func:`write_netlist` turns an :class:`~spikeforge.hardware.circuit.AnalogCircuit` into a
component-level ngspice netlist of the whole network (every synapse and bias resistor at
its nominal value, every neuron's integrator, reset switch, comparator and flip-flop, the
threshold dividers, the gated spike lines and the two-phase clock); :func:`run_ngspice`
runs it in batch mode and reads back every neuron's spike train; :func:`spice_check`
compares them with the hardware twin, spike by spike; :func:`neuron_rate_curve` does the
same for one neuron under a held input current. :func:`spice_bundle` does it all for a
bundle folder and its dataset.

One neuron (subcircuit ``lif``; ``sum`` is the op-amp's inverting input, ``m`` its output,
the membrane ``V_m``)::

    lines --R_ij--+ sum --+--- C_m ---+          KCL at sum (a virtual ground):
                  |       +--- R_m ---+          C_m dV_m/dt = -V_m / R_m + I,
                  |       +-- S(R_on) +          I = sum_j (-V_line,j) / R_ij
                  |       +-- clamp --+
                  +--[-A]------------ m --> comparator (V_m >= V_th) --> D flip-flop --> q

- op-amp: an ideal voltage-controlled source ``V_m = clip(-A · V_sum)`` with open-loop gain
  ``A`` (``SpiceOptions.opamp_gain``). How the membrane saturates at ``±output_swing`` is
  ``SpiceOptions.saturation``: ``"clamp"`` (default) limits the voltage on ``C_m`` with a
  stiff feedback clamp (anti-windup), so the summing node stays a virtual ground and the
  membrane after a clock is ``clip(U, -swing, swing)``, exactly the twin's
  (:func:`spikeforge.kernels.lif_spikes_board`); ``"rail"`` has only the op-amp's output
  rail at ``±swing``: the summing node then leaves virtual ground and ``C_m`` winds up
  beyond the swing, so a neuron driven into negative saturation recovers later than the
  twin says (what a board without a clamp does; an ideal op-amp sliding along its rail
  can also stall ngspice on big boards).
- reset switch: a conductance ``1 / R_on`` across ``C_m`` (``R_on`` =
  ``options.switch_on_resistance``), closed for ``t_reset`` after a clock in which the
  neuron spiked; ``C_m`` then discharges through ``R_on ∥ R_m``, which leaves
  ``residual = exp(-t_reset / (C_m R_on∥R_m) + t_reset / τ)`` of the membrane, as in
  :func:`~spikeforge.hardware.circuit.draw_boards`.
- comparator and flip-flop: XSPICE digital models. An ``adc_bridge`` reads ``V_m - V_th``
  (strobed: it only looks around the clock edge, so a membrane crossing the threshold
  mid-clock costs no time steps), a ``d_dff`` latches it at the clock edge and a
  ``dac_bridge`` makes its output ``q`` a 0/1 V level: the spike is a one-clock pulse
  decided by the membrane at the end of the integrate phase.

Lines (each layer ``l`` has its reference ``V_ref,l``, ``AnalogLayer.v_ref``): neuron ``j``
of layer ``l - 1`` drives a direct line ``V_ref,l · q_j · g`` and an inverted copy ``-V_ref,l
· q_j · g`` (``g``: the integrate-phase gate); input ``j`` the lines ``±x_j · V_ref,1`` in
the integrate phase of the image's first ``T`` clocks (the encoding's scale is folded into
the first layer's resistors); layer ``l``'s bias line ``±V_ref,l`` in the integrate phases
of that layer's ``T`` clocks. An excitatory resistor (sign +1) hangs on the inverted line
(the integrator inverts), an inhibitory one on the direct line. With ``τ = R_m C_m`` and
a drive current ``I`` during ``t_int``, one clock gives (circuit.py)::

    U[t] = decay · V[t-1] + k · R_m · I[t],  decay = exp(-dt / τ),  k = 1 - exp(-t_int / τ)

and the clock period is ``circuit.dt`` to the last digit.

Timing, with ``e = SpiceOptions.edge_fraction · dt`` (about 1 ns) the rise and fall time
of every gate (so the simulator never meets a step). Clock ``g`` spans
``[dt/2 + g·dt, dt/2 + (g+1)·dt]`` (the first half clock lets the DC operating point settle
at all-zero); its reset phase is its first ``t_reset``, its edge ``E`` its end. The
integrate gate ramps symmetrically about the phase boundaries, so every line carries
exactly ``V · t_int`` volt-seconds per clock and the membrane at ``E + e/2`` is ``U``. The
flip-flop clock crosses at ``E + e``; its outputs settle by ``E + 3.3e``; the reset gate
then closes at ``E + 5e`` (see :func:`_reset_gate`), and every window (which clocks an
input, a bias line or the spike lines are live, and the clear) switches with it, while
every line is off.

Pipelining: layer ``l`` (1-based) computes its step ``t`` in run clock ``c = t + l - 1``
(its input spikes come out of the previous layer's flip-flops), so an inference takes
``T + L - 1`` run clocks. Each image starts with ``n_clear`` clear clocks (every line off,
every reset switch closed: the membranes start at the contract's ``V[0] = 0``). ngspice's
output is interpolated onto a grid of ``dt`` (``.options interp``): grid point ``g + 2``
lies half a clock after edge ``g``, where ``q`` holds the spike latched there.
:func:`run_ngspice` undoes the pipeline and returns each layer's ``(T, n, out)`` spikes,
aligned with the twin's.

Precision: with the defaults (Gear integration, at most ``dt / 50`` per step, ``reltol``
1e-4, ``A = 1e9``) SPICE's membrane at each decision is within about 4e-6 threshold units
of the twin's recurrence (``tests/test_spice.py`` checks 2e-5), so a spike can only
differ where a membrane lies that close to its threshold.
"""


from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.spec import NetworkSpec, decode

if TYPE_CHECKING:
    from spikeforge.hardware.bundle import Bundle
    from spikeforge.hardware.circuit import AnalogCircuit
    from spikeforge.hardware.simulate import TwinResult

#: the Debian / Ubuntu package that provides ``ngspice`` with its XSPICE code models
NGSPICE_PACKAGE = "ngspice"
SATURATION_MODES = ("clamp", "rail")
#: the smallest switch on-resistance simulated (Ω): an ideal switch (0 Ω) as 1 mΩ
_MIN_R_ON = 1e-3
#: after a clock edge, in units of the edge time e, the reset gate and every window
#: switch (ramp midpoint): the flip-flops latch at ~1e and their outputs settle by ~3.3e
_GATE = 5.0
#: the clamp's corner is rounded over this many volts (see _neuron_subckt)
_CLAMP_EPS = 1e-8


class SpiceError(SpikeforgeError):
    """ngspice is missing, failed, or was given something it cannot simulate."""


@dataclass(frozen=True)
class SpiceOptions:
    """How the netlist is simulated (the circuit itself is the ``AnalogCircuit``'s).

    opamp_gain:       open-loop gain ``A`` of every integrator op-amp. The leak grows by
                      ``R_m ΣG / A`` (``ΣG``: the conductance of every resistor on the summing
                      node; ``R_m ΣG`` is ~500 on a trained 196-input layer), so the membrane
                      errs by about ``R_m ΣG / (A (1 - decay))`` of itself: 1e9 keeps that
                      near 1e-6; a real op-amp's 1e5 .. 1e6 shows what finite gain does.
    saturation:       ``"clamp"`` (the membrane clipped at ±output_swing by an anti-windup
                      clamp across C_m: the twin's model) or ``"rail"`` (only the op-amp's
                      output rails: the integrator winds up).
    clamp_conductance: the clamp's slope beyond the swing (S); overshoot = I / G.
    steps_per_clock:  the simulator's largest step is ``dt / steps_per_clock``.
    edge_fraction:    rise and fall time ``e`` of every gate and clock, as a share of ``dt``.
                      Much shorter edges (1e-6) upset XSPICE's event timing; the membrane
                      leaks ``e / τ`` (1e-6) of itself between its end and the decision.
    reltol, vntol:    ngspice's relative and absolute (V) tolerances. ``reltol`` 1e-4 is
                      enough: the integrate phase's accuracy comes from the step limit, and a
                      tighter one only resolves a reset's stiff tail (3x the time).
    method:           ``"gear"`` (default) or ``"trap"``: trapezoidal integration rings on
                      the clamp's stiff pole (``C_m / G``) and can stall ngspice.
    n_clear:          clear clocks before each image; ``None``: enough for the reset
                      switch to take every membrane below 1e-9 of itself.
    record_membranes: also return every membrane at each decision (full-resolution output:
                      for diagnosis on small networks).
    timeout:          seconds before ngspice is stopped.
    """

    opamp_gain: float = 1e9
    saturation: str = "clamp"
    clamp_conductance: float = 100.0
    steps_per_clock: int = 50
    edge_fraction: float = 1e-5
    reltol: float = 1e-4
    vntol: float = 1e-9
    method: str = "gear"
    n_clear: int | None = None
    record_membranes: bool = False
    timeout: float = 1800.0

    def __post_init__(self) -> None:
        if self.method not in ("gear", "trap"):
            raise SpiceError(f"method = {self.method!r}: choose 'gear' or 'trap'")
        if self.saturation not in SATURATION_MODES:
            raise SpiceError(f"saturation = {self.saturation!r}: choose one of "
                             f"{', '.join(SATURATION_MODES)}")
        for name in ("opamp_gain", "clamp_conductance", "edge_fraction", "reltol", "vntol",
                     "timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise SpiceError(f"SPICE option {name} = {value!r}: it must be a number > 0")
        if not (isinstance(self.steps_per_clock, int) and self.steps_per_clock >= 4):
            raise SpiceError(f"steps_per_clock = {self.steps_per_clock!r}: it must be an "
                             f"integer >= 4")
        if self.edge_fraction > 1e-3:
            raise SpiceError(f"edge_fraction = {self.edge_fraction}: keep edges below 1e-3 "
                             f"of the clock, or the gates stop being square")
        if self.n_clear is not None and not (isinstance(self.n_clear, int) and self.n_clear >= 1):
            raise SpiceError(f"n_clear = {self.n_clear!r}: it must be an integer >= 1")


@dataclass
class SpiceNetlist:
    """A netlist and what :func:`run_ngspice` needs to read its output.

    text:          the netlist (``.cir``); output file names in it are relative to the
                   working directory ngspice runs in.
    dt:            clock period (s). n_images, timesteps: images and steps per image.
    layer_sizes:   neurons per layer (outputs only, in order).
    n_clear:       clear clocks at the start of every image.
    outputs:       ``(file, vectors)`` pairs that ngspice writes with ``wrdata``.
    spike_vectors, membrane_vectors: per layer, the vector name of each neuron's ``q``
                   (and of its membrane when membranes are recorded).
    """

    text: str
    dt: float
    edge: float
    n_images: int
    timesteps: int
    layer_sizes: list[int]
    n_clear: int
    outputs: list[tuple[str, list[str]]]
    spike_vectors: list[list[str]]
    membrane_vectors: list[list[str]] | None = None
    interpolated: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def clocks_per_image(self) -> int:
        """``n_clear + T + L - 1``."""
        return self.n_clear + self.timesteps + self.n_layers - 1

    def sample_clock(self, image: int, layer: int, step: int) -> int:
        """Global clock ``g`` whose edge latches layer ``layer``'s (0-based) spike of time
        step ``step`` (0-based) of ``image``: run clock ``c = step + layer + 1``."""
        return image * self.clocks_per_image + self.n_clear + step + layer

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.text)
        return path


@dataclass
class SpiceResult:
    """What ngspice computed: ``spikes`` per layer ``(T, n, out)`` (bool), aligned with the
    twin's time steps; ``membranes`` per layer ``(T, n, out)`` in volts at each comparator
    decision (only with ``record_membranes``); the run's wall time and log."""

    spikes: list[np.ndarray]
    seconds: float
    log: str
    membranes: list[np.ndarray] | None = None

    @property
    def counts(self) -> np.ndarray:
        """Output spike counts ``(n, classes)``."""
        return self.spikes[-1].sum(0)

    @property
    def predictions(self) -> np.ndarray:
        return decode(self.counts)


# ------------------------------------------------------------------------- helpers


def ngspice_path() -> str:
    """The ``ngspice`` executable, or a :class:`SpiceError` that says how to install it."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise SpiceError(f"ngspice is not installed (no `ngspice` on PATH): install the "
                         f"Debian/Ubuntu package `{NGSPICE_PACKAGE}` (`sudo apt-get install "
                         f"{NGSPICE_PACKAGE}`; it includes the XSPICE digital models this "
                         f"netlist uses), or your system's ngspice >= 35 with XSPICE")
    return exe


def _num(value: float) -> str:
    """A number exactly as Python holds it (17 significant digits), for ngspice."""
    return repr(float(value))


def _pwl(points: Sequence[tuple[float, float]]) -> str:
    """``PWL(t1 v1 t2 v2 ...)`` wrapped onto continuation lines."""
    pairs = [f"{_num(t)} {_num(v)}" for t, v in points]
    lines = ["  ".join(pairs[i:i + 6]) for i in range(0, len(pairs), 6)]
    return "PWL(" + "\n+ ".join(lines) + ")"


class _Schedule:
    """Times of the two-phase clock (module docstring): clock ``g`` starts at
    ``dt/2 + g·dt``; windows change with the reset gate, while every line is off."""

    def __init__(self, dt: float, t_reset: float, edge: float) -> None:
        self.dt, self.t_reset, self.edge = dt, t_reset, edge
        self.shift = dt / 2

    def start(self, g: int) -> float:
        return self.shift + g * self.dt

    def window(self, on: np.ndarray) -> list[tuple[float, float]]:
        """PWL points of a 0/1 window, ``on[g]`` for clock ``g`` (see :meth:`levels`)."""
        return self.levels(np.asarray(on, np.float64))

    def levels(self, values: np.ndarray) -> list[tuple[float, float]]:
        """PWL points of a level that is ``values[g]`` in clock ``g`` (held after the last
        clock). It ramps over ``[start + 4.5e, start + 5.5e]``, with the reset gate: every
        line is off then, the flip-flops have latched (at ``start + e``; a clear that began
        earlier would discharge a membrane before it is sampled), and sharing the reset
        gate's breakpoints saves time steps."""
        e = self.edge
        points = [(0.0, float(values[0]) if len(values) else 0.0)]
        previous = points[0][1]
        for g in range(1, len(values)):
            v = float(values[g])
            if v != previous:
                t = self.start(g)
                points += [(t + (_GATE - 0.5) * e, previous), (t + (_GATE + 0.5) * e, v)]
                previous = v
        return points


def _neuron_subckt(circuit: AnalogCircuit, options: SpiceOptions) -> list[str]:
    """The ``lif`` subcircuit (module docstring): ports ``sum q vth dclk grst clr strobe``
    (summing node, spike output, threshold, digital clock, reset gate, clear, strobe)."""
    o = circuit.options
    g_on = 1.0 / max(o.switch_on_resistance, _MIN_R_ON)
    swing = o.output_swing
    a = options.opamp_gain
    lines = [
        "* one neuron: inverting leaky integrator (op-amp, C_m || R_m, reset switch across",
        "* C_m), comparator against the layer's V_th, D flip-flop clocked at each clock edge",
        ".subckt lif sum q vth dclk grst clr strobe",
        f"Rm sum m {_num(circuit.r_m)}",
        f"Cm sum m {_num(circuit.c_m)}",
        "* reset switch: closed in the reset phase after a spike, and while clearing",
        f"Bsw sum m I = V(sum,m) * {_num(g_on)} * min(1, V(q)*V(grst) + V(clr))",
    ]
    if options.saturation == "rail":
        # an ideal op-amp (no bandwidth limit) at its rail: the summing node can slide
        # along the rail's edge, which ngspice sometimes cannot resolve on big boards
        # (a smooth corner does not help); the clamp of the default never rails
        lines += ["* op-amp: gain A, output rails at +-output_swing (the integrator winds up)",
                  f"Bop m 0 V = min(max({_num(-a)}*V(sum), {_num(-swing)}), {_num(swing)})"]
    else:
        g_clamp = options.clamp_conductance
        # max(u, 0) as (u + sqrt(u^2 + eps^2)) / 2: a hard kink of 100 S makes ngspice
        # retry one time point forever; with eps = 10 nV the clamp leaks 2.5e-12 A a
        # millivolt inside the swing (25 pV per clock) and nothing at all beyond ~1 V
        eps2 = _num(_CLAMP_EPS**2)
        hi, lo = f"(V(m,sum)-{_num(swing)})", f"(V(m,sum)+{_num(swing)})"
        lines += [
            "* op-amp: gain A, rails at the supply; a feedback clamp holds |V(C_m)| <= swing",
            f"Bop m 0 V = min(max({_num(-a)}*V(sum), {_num(-o.supply)}), {_num(o.supply)})",
            f"Bclamp m sum I = {_num(g_clamp / 2)}*({hi} + sqrt({hi}^2 + {eps2})"
            f" + {lo} - sqrt({lo}^2 + {eps2}))",
        ]
    lines += [
        "* comparator V_m >= V_th (strobed), sampled by the flip-flop at the clock edge",
        "Bcmp c 0 V = V(strobe)*V(m,vth)",
        "Acmp [c] [d] cmp_bridge",
        "Aff d dclk NULL NULL dq NULL spike_dff",
        "Adac [dq] [q] spike_dac",
        ".ends lif",
    ]
    return lines


def _header(circuit: AnalogCircuit, options: SpiceOptions, schedule: _Schedule,
            title: str) -> list[str]:
    """Title, digital models, supplies, clock and the periodic phase gates."""
    o = circuit.options
    dt, t_reset, e = circuit.dt, circuit.t_reset, schedule.edge
    t_int = dt - t_reset
    delay = e / 10  # digital delays well inside the edge, so q settles within ~2e
    s = schedule.shift
    return [
        f"* {title}",
        f"* clock dt = {dt:.9g} s (decay {circuit.decay:g} = exp(-dt/(R_m C_m))), "
        f"t_reset = {t_reset:.6g} s, t_int = {t_int:.6g} s",
        f"* R_m = {circuit.r_m:g} ohm, C_m = {circuit.c_m:g} F, "
        f"supply = +-{o.supply:g} V, swing = +-{o.output_swing:g} V, "
        f"R_on = {o.switch_on_resistance:g} ohm",
        f".model cmp_bridge adc_bridge(in_low=0 in_high=0 rise_delay={_num(delay)} "
        f"fall_delay={_num(delay)})",
        f".model clk_bridge adc_bridge(in_low=0.5 in_high=0.5 rise_delay={_num(delay)} "
        f"fall_delay={_num(delay)})",
        f".model spike_dff d_dff(clk_delay={_num(delay)} set_delay={_num(delay)} "
        f"reset_delay={_num(delay)})",
        f".model spike_dac dac_bridge(out_low=0 out_high=1 out_undef=0.5 t_rise={_num(e)} "
        f"t_fall={_num(e)})",
        "",
        f"Vsupply vdd 0 {_num(o.supply)}",
        "* integrate-phase gate: ramps centred on the phase boundaries (area exactly t_int)",
        f"Vgint gint 0 PULSE(0 1 {_num(s + t_reset - e / 2)} {_num(e)} {_num(e)} "
        f"{_num(t_int - e)} {_num(dt)})",
        *_reset_gate(circuit, s, e),
        "* flip-flop clock: rises just after each clock edge (the end of t_int)",
        f"Vclk clk 0 PULSE(0 1 {_num(s + dt + e / 2)} {_num(e)} {_num(e)} {_num(dt / 2)} "
        f"{_num(dt)})",
        "Aclk [clk] [dclk] clk_bridge",
        "* comparator strobe: the comparators only look around the edge, so a membrane",
        "* crossing V_th mid-clock makes no digital event (and no extra time steps)",
        f"Vstrobe strobe 0 PULSE(0 1 {_num(s + dt - e / 2)} {_num(e)} {_num(e)} "
        f"{_num((_GATE - 1) * e)} {_num(dt)})",
    ]


def _residual(circuit: AnalogCircuit) -> float:
    """What a reset leaves of the membrane, relative to a plain leak (the twin's
    :func:`~spikeforge.hardware.circuit.reset_residual` of the nominal parts)."""
    from spikeforge.hardware.circuit import reset_residual

    r_on = max(circuit.options.switch_on_resistance, _MIN_R_ON)
    return float(reset_residual(circuit.t_reset, circuit.tau, circuit.r_m, circuit.c_m, r_on))


def _reset_gate(circuit: AnalogCircuit, shift: float, e: float) -> list[str]:
    """The reset-phase gate. It must not close before ``q`` has settled (the flip-flop
    latches at ``~e`` after the edge and its output ramps until ``~3.3e``: a gate that
    opened earlier would reset, a little, a neuron whose last spike is one clock old), so
    it closes at ``_GATE · e`` (ramp midpoint). Where a reset leaves something
    (``residual > 1e-12``) it then stays closed for exactly ``t_reset``, overlapping the
    integrate phase by ``_GATE · e``: the residual is the twin's to the last digit, and
    the closed switch diverts only ``_GATE e / (2 C_m R_on)`` of the overlap's drive (below
    1e-7 of a clock's drive). Where the reset is complete anyway (a near-ideal switch,
    which would swallow the overlap's drive) it opens at ``t_reset``."""
    t_reset = circuit.t_reset
    complete = _residual(circuit) < 1e-12
    width = t_reset - (_GATE + 1) * e if complete else t_reset - e
    return [f"* reset-phase gate: closes once q has settled after the edge (midpoint "
            f"{_GATE:g}e), " + ("opens at t_int (a complete reset)" if complete
                                else "stays closed for exactly t_reset"),
            f"Vgrst grst 0 PULSE(0 1 {_num(shift + (_GATE - 0.5) * e)} {_num(e)} {_num(e)} "
            f"{_num(width)} {_num(circuit.dt)})"]


def _control(circuit: AnalogCircuit, options: SpiceOptions, tstop: float,
             outputs: list[tuple[str, list[str]]]) -> list[str]:
    """Options, the transient run and the ``wrdata`` lines. (XSPICE sets ``trtol`` to 1;
    ``xtrtol=7`` would halve the run time but quadruple the membrane error, to ~1.4e-5.)"""
    dt = circuit.dt
    lines = [
        f".options reltol={_num(options.reltol)} vntol={_num(options.vntol)} "
        f"method={options.method}" + ("" if options.record_membranes else " interp"),
        ".control",
        "set wr_singlescale",
        "set wr_vecnames",
        "option numdgt=12",
        f"tran {_num(dt)} {_num(tstop)} 0 {_num(dt / options.steps_per_clock)}",
    ]
    lines += [f"wrdata {name} " + " ".join(vectors) for name, vectors in outputs]
    lines += ["quit", ".endc", ".end"]
    return lines


def _n_clear(circuit: AnalogCircuit, options: SpiceOptions) -> int:
    """Clear clocks that take a membrane below 1e-9 of itself through ``R_on ∥ R_m``."""
    if options.n_clear is not None:
        return options.n_clear
    r_on = max(circuit.options.switch_on_resistance, _MIN_R_ON)
    tau_on = circuit.c_m * r_on * circuit.r_m / (r_on + circuit.r_m)
    return max(1, math.ceil(math.log(1e9) * tau_on / circuit.dt))


def _chunks(names: list[str], size: int = 100) -> list[list[str]]:
    return [names[i:i + size] for i in range(0, len(names), size)] or [[]]


# ---------------------------------------------------------------------- the netlist


def write_netlist(circuit: AnalogCircuit, spec: NetworkSpec, x: np.ndarray,
                  options: SpiceOptions | None = None,
                  path: str | os.PathLike | None = None) -> SpiceNetlist:
    """The whole network as an ngspice netlist, running the inputs ``x`` one after another.

    ``x``: ``(n, features)`` pixels in [0, 1] for a constant-current input (line ``j`` is
    held at ``x_j · V_ref`` during the integrate phase of the image's first ``T`` clocks;
    the encoding's scale is folded into the first layer's resistors), or ``(T, n,
    features)`` spikes for a spike input (``V_ref`` in the clocks where ``s_0 = 1``).
    ``path``: also write the text there.
    """
    options = options or SpiceOptions()
    sizes = list(spec.layer_sizes)
    if len(circuit.layers) != spec.n_layers:
        raise SpiceError(f"the circuit has {len(circuit.layers)} layers, the spec "
                         f"{spec.n_layers}: they come from different networks")
    for layer, (o, i) in zip(circuit.layers, spec.weight_shapes, strict=True):
        if layer.resistance.shape != (o, i):
            raise SpiceError(f"layer {layer.name}: resistor array {layer.resistance.shape} "
                             f"does not match the spec's {(o, i)}")
    T, L = spec.timesteps, spec.n_layers
    spike_input = spec.encoding.type == "spikes"
    x = np.asarray(x, np.float64)
    if spike_input:
        if x.ndim != 3 or x.shape[0] != T or x.shape[2] != sizes[0]:
            raise SpiceError(f"spike inputs must have shape (T={T}, n, {sizes[0]}), got "
                             f"{x.shape}")
        n = x.shape[1]
    else:
        if x.ndim != 2 or x.shape[1] != sizes[0]:
            raise SpiceError(f"inputs must have shape (n, {sizes[0]}), got {x.shape}")
        n = x.shape[0]
    if n == 0 or not np.all(np.isfinite(x)):
        raise SpiceError("inputs must be at least one sample of finite values")

    dt = circuit.dt
    edge = options.edge_fraction * dt
    schedule = _Schedule(dt, circuit.t_reset, edge)
    n_clear = _n_clear(circuit, options)
    P = n_clear + T + L - 1
    total = n * P
    run_clock = np.arange(total) % P - n_clear + 1  # run clock c (<= 0 while clearing)
    lines = _header(circuit, options, schedule,
                    f"spikeforge analog board {'-'.join(map(str, sizes))}, {n} inputs, "
                    f"T = {T}, {n_clear} clear + {T + L - 1} run clocks each")
    lines += ["", *_neuron_subckt(circuit, options), ""]
    lines += ["* each layer's line reference: its input lines (and bias line) swing +-V_ref",
              *(f"Vref{li} vref{li} 0 {_num(layer.v_ref)}"
                for li, layer in enumerate(circuit.layers)), ""]
    lines += ["* windows: which clocks are live (they switch with the reset gate, lines off)",
              f"Vrun run 0 {_pwl(schedule.window(run_clock >= 1))}",
              f"Vclr clr 0 {_pwl(schedule.window(run_clock <= 0))}",
              f"Vwin win 0 {_pwl(schedule.window((run_clock >= 1) & (run_clock <= T)))}",
              "Bgsp gsp 0 V = V(gint)*V(run)",
              "Bgin gin 0 V = V(gint)*V(win)", ""]

    # input lines: a level source per input (changing between images or, for spike
    # inputs, between clocks), gated; only the copies some resistor hangs on
    first = circuit.layers[0]
    lines.append("* input lines: +-x_j V_ref while the input window is live")
    input_nodes: list[tuple[str | None, str | None]] = []
    for j in range(sizes[0]):
        col_sign = first.sign[:, j][first.resistance[:, j] > 0]
        if col_sign.size == 0:
            input_nodes.append((None, None))
            continue
        if spike_input:
            level = np.zeros(total)
            for img in range(n):
                base = img * P + n_clear
                level[base:base + T] = x[:, img, j]
        else:
            level = np.repeat(x[:, j], P)
        if not level.any():  # a line that never moves is ground (e.g. an MNIST border)
            input_nodes.append(("0", "0"))
            continue
        lines.append(f"Vx{j} x{j} 0 {_pwl(schedule.levels(level))}")
        lines.append(f"Bi{j} i{j} 0 V = V(vref0)*V(x{j})*V(gin)")
        inverted = f"in{j}" if (col_sign > 0).any() else None
        if inverted:
            lines.append(f"Ei{j} in{j} 0 i{j} 0 -1")
        input_nodes.append((f"i{j}", inverted))
    lines.append("")

    spike_vectors: list[list[str]] = []
    membrane_vectors: list[list[str]] = []
    n_resistors = 0
    for li, layer in enumerate(circuit.layers):
        n_out = layer.resistance.shape[0]
        lo, hi = li + 1, T + li  # this layer's run clocks (1-based layer li + 1)
        r_top, r_bottom = layer.divider
        lines += [f"* ---- layer {layer.name}: {n_out} neurons, V_th = {layer.v_threshold:.6g} V, "
                  f"input lines +-{layer.v_ref:.6g} V",
                  f"Rth{li}a vdd th{li} {_num(r_top)}", f"Rth{li}b th{li} 0 {_num(r_bottom)}"]
        if layer.bias_resistance is not None and np.any(layer.bias_resistance > 0):
            live = (run_clock >= lo) & (run_clock <= hi)
            lines += [f"Vwb{li} wb{li} 0 {_pwl(schedule.window(live))}",
                      f"Bbp{li} bp{li} 0 V = V(vref{li})*V(gint)*V(wb{li})",
                      f"Ebn{li} bn{li} 0 bp{li} 0 -1"]
        q_names, m_names = [], []
        for i in range(n_out):
            node = f"s{li}_{i}"
            lines.append(f"X{li}_{i} {node} q{li}_{i} th{li} dclk grst clr strobe lif")
            q_names.append(f"v(q{li}_{i})")
            m_names.append(f"v(x{li}_{i}.m)")
            for j in np.nonzero(layer.resistance[i])[0].tolist():
                if li == 0:
                    direct, inverted = input_nodes[j]
                else:
                    direct, inverted = f"p{li - 1}_{j}", f"n{li - 1}_{j}"
                line = inverted if layer.sign[i, j] > 0 else direct
                lines.append(f"R{li}_{i}_{j} {node} {line} {_num(layer.resistance[i, j])}")
                n_resistors += 1
            if layer.bias_resistance is not None and layer.bias_resistance[i] > 0:
                line = f"bn{li}" if layer.bias_sign[i] > 0 else f"bp{li}"
                lines.append(f"Rb{li}_{i} {node} {line} {_num(layer.bias_resistance[i])}")
                n_resistors += 1
        if li + 1 < L:  # spike lines of this layer for the next one
            nxt = circuit.layers[li + 1]
            for i in range(n_out):
                col = nxt.sign[:, i][nxt.resistance[:, i] > 0]
                if col.size == 0:
                    continue
                lines.append(f"Bp{li}_{i} p{li}_{i} 0 V = V(vref{li + 1})*V(q{li}_{i})*V(gsp)")
                if (col > 0).any():
                    lines.append(f"En{li}_{i} n{li}_{i} 0 p{li}_{i} 0 -1")
        lines.append("")
        spike_vectors.append(q_names)
        membrane_vectors.append(m_names)

    outputs = [(f"spikes_{li}_{k}.txt", chunk) for li, names in enumerate(spike_vectors)
               for k, chunk in enumerate(_chunks(names))]
    if options.record_membranes:
        outputs += [(f"membranes_{li}_{k}.txt", chunk)
                    for li, names in enumerate(membrane_vectors)
                    for k, chunk in enumerate(_chunks(names))]
    # the last latch is read half a clock after the last edge
    tstop = (total + 1.25) * dt
    lines += _control(circuit, options, tstop, outputs)
    netlist = SpiceNetlist("\n".join(lines) + "\n", dt, edge, n, T, sizes[1:], n_clear,
                           outputs, spike_vectors,
                           membrane_vectors if options.record_membranes else None,
                           interpolated=not options.record_membranes,
                           info={"resistors": n_resistors, "neurons": sum(sizes[1:]),
                                 "clocks": total, "simulated_seconds": tstop,
                                 "saturation": options.saturation,
                                 "opamp_gain": options.opamp_gain,
                                 "timeout": options.timeout})
    if path is not None:
        netlist.write(path)
    return netlist


# ------------------------------------------------------------------------ running it


#: a line of ngspice's operating-point listing ("node   value"), noise in an error's tail
_NODE_LISTING = re.compile(r"^\s*\S+\s+-?[\d.]+(e[-+]?\d+)?\s*$", re.I)


def _log_tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ngspice's log, without its progress lines."""
    kept = [line for line in text.strip().splitlines() if "Reference value" not in line
            and not _NODE_LISTING.match(line)]
    return "\n".join(kept[-lines:])


def _read_wrdata(path: Path, vectors: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(time, values (rows, vectors))`` from a ``wrdata`` file with a header line."""
    with path.open() as f:
        header = f.readline().split()
    names = [h.lower() for h in header[1:]]
    if names != [v.lower() for v in vectors]:
        raise SpiceError(f"{path.name}: ngspice wrote the vectors {names[:4]}..., expected "
                         f"{vectors[:4]}...")
    data = np.loadtxt(path, skiprows=1, ndmin=2)
    return data[:, 0], data[:, 1:]


def run_ngspice(netlist: SpiceNetlist, workdir: str | os.PathLike | None = None,
                timeout: float | None = None) -> SpiceResult:
    """Run ``ngspice -b`` on ``netlist`` in ``workdir`` (a temporary folder if ``None``;
    the netlist, log and output files stay there) and read every neuron's spike train.

    Spikes come back per layer as ``(T, n, out)`` booleans with the pipeline delay undone
    (layer ``l``'s step ``t`` is the flip-flop state latched at the edge of run clock
    ``t + l - 1``), so they line up with :func:`spikeforge.hardware.simulate.run_board`.
    """
    exe = ngspice_path()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="spikeforge-spice-") as tmp:
            return run_ngspice(netlist, tmp, timeout)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    cir = netlist.write(work / "board.cir")
    for name, _ in netlist.outputs:
        (work / name).unlink(missing_ok=True)
    limit = timeout if timeout is not None else float(netlist.info.get("timeout", 1800.0))
    start = time.perf_counter()
    try:
        proc = subprocess.run([exe, "-b", cir.name], cwd=work, capture_output=True,
                              text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        log = out.decode(errors="replace") if isinstance(out, bytes) else out
        raise SpiceError(f"ngspice did not finish within {limit:g} s ({netlist.info.get('clocks')} "
                         f"clocks, {netlist.info.get('resistors')} resistors): simulate fewer "
                         f"inputs, or raise the timeout. Last output:\n{_log_tail(log)}") from None
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    (work / "ngspice.log").write_text(log)
    missing = [name for name, _ in netlist.outputs if not (work / name).is_file()]
    # ngspice exits 0 after an aborted transient and writes what it has: read its log
    aborted = re.search(r"simulation\(s\) aborted|timestep too small", log, re.I)
    if proc.returncode != 0 or missing or aborted:
        hint = ""
        if re.search(r"unknown model type \S*(bridge|dff)|MIF-ERROR", log, re.I):
            hint = (f"\nThis ngspice lacks the XSPICE code models (adc_bridge, d_dff): "
                    f"install the Debian package `{NGSPICE_PACKAGE}`, which includes them.")
        if aborted:
            hint += ("\nThe transient analysis gave up (no convergence at one time point)"
                     + (": an ideal op-amp sliding along its rail; the default "
                        "saturation='clamp' never rails" if "(the integrator winds up)"
                        in netlist.text else ": try SpiceOptions(method='gear'), more "
                        "steps_per_clock or a lower opamp_gain") + ".")
        raise SpiceError(f"ngspice failed (exit code {proc.returncode}"
                         f"{', no output ' + ', '.join(missing) if missing else ''}); "
                         f"netlist and log in {work}. Last lines of its log:\n"
                         f"{_log_tail(log)}{hint}")
    spikes = _parse(netlist, work, "spikes", netlist.spike_vectors)
    membranes = None
    if netlist.membrane_vectors is not None:
        membranes = _parse(netlist, work, "membranes", netlist.membrane_vectors)
    return SpiceResult([s > 0.5 for s in spikes], seconds, log, membranes)


def _parse(netlist: SpiceNetlist, work: Path, kind: str, vectors: list[list[str]]
           ) -> list[np.ndarray]:
    """Per layer ``(T, n, out)`` values: ``q`` half a clock after each latching edge, or the
    membrane at the comparator's decision (``edge + e``)."""
    T, n, dt = netlist.timesteps, netlist.n_images, netlist.dt
    out = []
    for li, names in enumerate(vectors):
        columns = []
        for k, chunk in enumerate(_chunks(names)):
            t, values = _read_wrdata(work / f"{kind}_{li}_{k}.txt", chunk)
            columns.append((t, values))
        g = np.array([[netlist.sample_clock(img, li, step) for img in range(n)]
                      for step in range(T)])  # (T, n)
        edge_time = dt / 2 + (g + 1) * dt  # the edge that latched the spike
        # spikes: grid point (g + 2) dt, where q is flat; membranes: the end of the
        # integrate gate's falling ramp (a breakpoint, so a time point of the run)
        when = edge_time + (dt / 2 if kind == "spikes" else netlist.edge / 2)
        layer = np.empty((T, n, len(names)))
        col = 0
        for t, values in columns:
            if netlist.interpolated and kind == "spikes":
                index = np.rint(when / dt).astype(np.int64)
                if index.max() >= len(t) or not np.allclose(t[index], when, rtol=0,
                                                            atol=dt * 1e-6):
                    raise SpiceError(f"ngspice's output grid does not hold the sample "
                                     f"times ({len(t)} rows): was the run cut short?")
                layer[:, :, col:col + values.shape[1]] = values[index]
            else:
                for c in range(values.shape[1]):
                    layer[:, :, col + c] = np.interp(when, t, values[:, c])
            col += values.shape[1]
        out.append(layer)
    return out


# ------------------------------------------------------------------- the comparison


def twin_reference(circuit: AnalogCircuit, spec: NetworkSpec, x: np.ndarray,
                   against: str = "board") -> TwinResult:
    """The twin that SPICE must equal, with every layer's spikes recorded.

    ``"board"``: the nominal board with the non-idealities that are not tolerances
    (``draw_boards(circuit, 1, seed=None)``: the switch's incomplete reset and the
    membrane's saturation) run by :func:`~spikeforge.hardware.simulate.run_board`.
    ``"ideal"``: the contract itself on the weights the nominal parts realise
    (:func:`~spikeforge.hardware.simulate.run_twin`, exactly the bundle's weights.npz).
    """
    from spikeforge.hardware.circuit import draw_boards
    from spikeforge.hardware.simulate import run_board, run_twin

    if against == "board":
        return run_board(spec, draw_boards(circuit, 1, seed=None), 0, x, record=True)
    if against == "ideal":
        ideal = draw_boards(circuit, 1, ideal=True)
        return run_twin(spec, [w[0] for w in ideal.weights],
                        [None if b is None else b[0] for b in ideal.biases], x, record=True)
    raise SpiceError(f"against = {against!r}: choose 'board' or 'ideal'")


def compare_with_twin(spice: SpiceResult, twin: TwinResult,
                      labels: np.ndarray | None = None) -> dict[str, Any]:
    """Spike-by-spike agreement of a SPICE run with a twin run on the same inputs.

    Per image: whether the output spike counts are identical, whether the prediction is,
    and per layer how many spikes differ (``|s_spice - s_twin|`` summed over neurons and
    time). Totals: ``identical_counts`` and ``identical_predictions`` (images), the
    differing spikes per layer, and the accuracies if ``labels`` are given.
    """
    if twin.spikes is None:
        raise SpiceError("the twin run must record its spikes (record=True)")
    if len(twin.spikes) != len(spice.spikes):
        raise SpiceError("SPICE and twin runs have different numbers of layers")
    diff = [np.logical_xor(s, t).sum(axis=(0, 2)) for s, t in
            zip(spice.spikes, twin.spikes, strict=True)]  # per layer (n,)
    same_counts = np.all(spice.counts == twin.counts, axis=1)
    same_pred = spice.predictions == twin.predictions
    images = []
    for k in range(len(same_counts)):
        row: dict[str, Any] = {
            "image": k, "counts_identical": bool(same_counts[k]),
            "prediction_identical": bool(same_pred[k]),
            "spice_prediction": int(spice.predictions[k]),
            "twin_prediction": int(twin.predictions[k]),
            "differing_spikes": [int(d[k]) for d in diff],
        }
        if not same_counts[k]:
            row["spice_counts"] = spice.counts[k].tolist()
            row["twin_counts"] = twin.counts[k].tolist()
        if labels is not None:
            row["label"] = int(labels[k])
        images.append(row)
    report: dict[str, Any] = {
        "n": len(same_counts),
        "identical_counts": int(same_counts.sum()),
        "identical_predictions": int(same_pred.sum()),
        "differing_spikes": [int(d.sum()) for d in diff],
        "twin_spikes": [int(t.sum()) for t in twin.spikes],
        "spice_spikes": [int(s.sum()) for s in spice.spikes],
        "images": images,
    }
    if labels is not None:
        labels = np.asarray(labels)
        report["accuracy"] = {"spice": float((spice.predictions == labels).mean()),
                              "twin": float((twin.predictions == labels).mean())}
    return report


def spice_check(source: Bundle | AnalogCircuit, spec: NetworkSpec | None, x: np.ndarray,
                labels: np.ndarray | None = None,
                against: Sequence[str] = ("board", "ideal"),
                options: SpiceOptions | None = None,
                workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Simulate a bundle (or a circuit with its ``spec``) in ngspice on inputs ``x`` and
    compare every spike with the twin(s) named in ``against`` (:func:`twin_reference`).

    The verdict ``ok`` is the SPICE proof's bar against the first twin named: every
    prediction identical and identical output spike counts for at least 95 % of the
    images (a spike can flip where a membrane lies within ~1e-7 of its threshold).
    """
    from spikeforge.hardware.circuit import AnalogCircuit

    if isinstance(source, AnalogCircuit):
        if spec is None:
            raise SpiceError("a circuit needs its NetworkSpec (or pass the bundle)")
        circuit = source
    else:
        circuit = source.circuit()
        spec = spec or source.spec
    options = options or SpiceOptions()
    netlist = write_netlist(circuit, spec, x, options)
    spice = run_ngspice(netlist, workdir)
    report: dict[str, Any] = {
        "n": netlist.n_images, "timesteps": spec.timesteps,
        "layer_sizes": list(spec.layer_sizes),
        "ngspice": {"seconds": round(spice.seconds, 3), "resistors": netlist.info["resistors"],
                    "neurons": netlist.info["neurons"], "clocks": netlist.info["clocks"],
                    "saturation": options.saturation, "opamp_gain": options.opamp_gain,
                    "steps_per_clock": options.steps_per_clock,
                    "workdir": None if workdir is None else str(workdir)},
    }
    for name in against:
        report[name] = compare_with_twin(spice, twin_reference(circuit, spec, x, name),
                                         labels)
    first = report[against[0]] if against else None
    report["ok"] = bool(first is not None
                        and first["identical_predictions"] == first["n"]
                        and first["identical_counts"] >= math.ceil(0.95 * first["n"]))
    return report


# --------------------------------------------------------------- one neuron's rate


def neuron_rate_curve(circuit: AnalogCircuit, layer: int = 0,
                      currents: Sequence[float] | np.ndarray | None = None,
                      clocks: int = 100, options: SpiceOptions | None = None,
                      workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Firing rate of one neuron of ``layer`` under a held input current, in SPICE and in
    the twin, from below threshold to the op-amp's saturation.

    ``currents`` are in model units (the contract's ``I``): SPICE drives the summing node
    with an ideal current source of ``I · V_unit / (k R_m)`` amperes during the integrate
    phase of every clock (``k = 1 - exp(-t_int / τ)``), so one clock adds ``I · V_unit``
    volts. The twin runs :func:`spikeforge.kernels.lif_spikes_board` on the nominal board's
    parameters of that layer (``draw_boards(circuit, 1, seed=None)``)::

        U = clip(decay · V + I, -swing, swing),  s = U >= threshold,  V = residual · U if s

    Default currents (with ``θ`` the threshold and ``S = swing / V_unit``): ``-1.2 S`` and
    ``-θ/2`` (silent, one of them saturated), the midpoints of 45 steps from 0 to
    ``1.1 θ`` (below ``(1 - decay) θ`` nothing fires, then the staircase of rates ``1/n``,
    then one spike per clock) and 5 more up to ``1.25 max(θ, S)`` (the membrane clipped at
    the swing).
    Returns ``currents``, ``spice_rate``, ``twin_rate`` (spikes per clock over ``clocks``),
    ``max_abs_difference`` and ``identical`` (every spike count equal).
    """
    from spikeforge import kernels
    from spikeforge.hardware.circuit import draw_boards

    # membranes are not recorded here (the flag would only switch off the output grid)
    options = replace(options or SpiceOptions(), record_membranes=False)
    if not 0 <= layer < len(circuit.layers):
        raise SpiceError(f"layer {layer}: the circuit has {len(circuit.layers)} layers")
    if clocks < 1:
        raise SpiceError("clocks must be >= 1")
    lay = circuit.layers[layer]
    swing_units = circuit.options.output_swing / lay.v_unit
    if currents is None:
        theta = circuit.threshold
        top = 1.25 * max(theta, swing_units)
        # the midpoints of 45 steps: no current lies exactly on the threshold, where
        # U = θ is a tie that SPICE's membrane (a few 1e-6 short) and the twin split
        currents = np.concatenate([[-1.2 * swing_units, -0.5 * theta],
                                   (np.arange(45) + 0.5) * (1.1 * theta / 45),
                                   np.linspace(1.1 * theta, top, 6)[1:]])
    currents = np.asarray(currents, np.float64)
    M = len(currents)

    # twin: the same neuron, M copies, each with its own held current
    board = draw_boards(circuit, 1, seed=None)
    pick = 0  # every neuron of a nominal layer has the same decay, threshold and residual
    spikes = np.empty((clocks, M), dtype=np.bool_)
    counts = np.empty(M, dtype=np.int64)
    kernels.lif_spikes_board(np.ascontiguousarray(currents[None, :]), True, M,
                             np.full(M, board.decay[layer][0][pick]),
                             np.full(M, board.threshold[layer][0][pick]),
                             np.full(M, board.residual[layer][0][pick]),
                             board.v_low[layer], board.v_high[layer], spikes, counts)
    twin_rate = counts / clocks

    # SPICE: one image of `clocks` run clocks after the clear clocks
    dt = circuit.dt
    edge = options.edge_fraction * dt
    schedule = _Schedule(dt, circuit.t_reset, edge)
    n_clear = _n_clear(circuit, options)
    total = n_clear + clocks
    run_clock = np.arange(total) - n_clear + 1
    amps = currents * lay.v_unit / (circuit.gain * circuit.r_m)
    lines = _header(circuit, options, schedule,
                    f"spikeforge rate curve: layer {lay.name}, {M} currents, {clocks} clocks")
    lines += ["", *_neuron_subckt(circuit, options), "",
              f"Vrun run 0 {_pwl(schedule.window(run_clock >= 1))}",
              f"Vclr clr 0 {_pwl(schedule.window(run_clock <= 0))}",
              "Bgsp gsp 0 V = V(gint)*V(run)",
              f"Rtha vdd th {_num(lay.divider[0])}", f"Rthb th 0 {_num(lay.divider[1])}",
              "* each neuron: an ideal current source out of its summing node (I > 0 raises",
              "* the membrane), live in the integrate phase of every run clock"]
    names = []
    for m, amp in enumerate(amps):
        lines += [f"Bin{m} s{m} 0 I = {_num(amp)}*V(gsp)",
                  f"X{m} s{m} q{m} th dclk grst clr strobe lif"]
        names.append(f"v(q{m})")
    outputs = [(f"spikes_0_{k}.txt", chunk) for k, chunk in enumerate(_chunks(names))]
    tstop = (total + 1.25) * dt
    lines += _control(circuit, options, tstop, outputs)
    netlist = SpiceNetlist("\n".join(lines) + "\n", dt, edge, 1, clocks, [M], n_clear,
                           outputs, [names],
                           info={"timeout": options.timeout, "clocks": total,
                                 "resistors": 0})
    result = run_ngspice(netlist, workdir)
    spice_counts = result.spikes[0][:, 0, :].sum(0)
    spice_rate = spice_counts / clocks
    return {"layer": lay.name, "clocks": clocks, "currents": currents.tolist(),
            "spice_rate": spice_rate.tolist(), "twin_rate": twin_rate.tolist(),
            "max_abs_difference": float(np.abs(spice_rate - twin_rate).max()),
            "identical": bool(np.array_equal(spice_counts, counts)),
            "seconds": round(result.seconds, 3)}


# ------------------------------------------------------------------ a bundle folder


def spice_bundle(path: str | os.PathLike, n_inputs: int = 20, dataset: str | None = None,
                 data_dir: str | None = None, against: Sequence[str] = ("board", "ideal"),
                 options: SpiceOptions | None = None,
                 workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`spice_check` on an analog bundle folder and the first ``n_inputs`` test
    samples of its dataset, through the bundle's input front-end (what ``spikeforge
    spice BUNDLE --inputs N`` runs)."""
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.export import bundle_dataset

    if n_inputs < 1:
        raise SpiceError("--inputs must be at least 1")
    bundle = load_bundle(path)
    data = bundle_dataset(bundle, dataset, data_dir, limit=n_inputs)
    from spikeforge.hardware.simulate import twin_inputs

    spike_input = bundle.spec.encoding.type == "spikes"
    x = twin_inputs(bundle.spec, data.test_x[:n_inputs])
    x = x[:, :n_inputs] if spike_input else x
    labels = np.asarray(data.test_y[:n_inputs])
    report = spice_check(bundle, None, x, labels, against, options, workdir)
    return {"bundle": str(path), "dataset": data.name, **report}
