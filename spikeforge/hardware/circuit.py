"""The analog target: a trained network as a circuit of discrete parts.

One neuron (docs/analog.md has the drawing)::

    spike lines --R_ij--+-------------+                 inverting leaky integrator
    (±V_ref, gated)     |   C_m  R_m  |                 (op-amp, C_m ∥ R_m in feedback,
                        +--||----/\\/--+                 reset switch S across C_m)
                        |-----/ S ----|
                        +--[op-amp -]-+--> V_m --[comparator +]--> D flip-flop --> spike
                                                  V_th (divider) -]       (one-clock pulse)

Clock of period ``dt`` in two phases: for ``t_reset = reset_fraction · dt`` every drive
line is off and the reset switch of each neuron that spiked at the last clock edge is
closed; for the remaining ``t_int = dt - t_reset`` the lines drive. The comparator is
sampled at the clock edge. With ``τ = R_m C_m`` and a drive current ``I`` held during
``t_int``, the membrane after one clock is exactly::

    U[t] = decay · V[t-1] + k · R_m · I[t],   decay = exp(-dt / τ),  k = 1 - exp(-t_int / τ)

so the contract (spikeforge.spec) holds with ``decay = exp(-dt / R_m C_m)`` (the clock is
set to ``dt = R_m C_m · ln(1 / decay)``; never the Euler form ``1 - dt / τ``) and one model
unit of membrane equal to ``V_unit`` volts (per layer). A synapse of weight ``w`` is one
resistor from a spike line that carries ``V_ref`` while the presynaptic neuron spikes
(the lines into each layer have their own reference ``V_ref``)::

    R = R_unit / |w|,   R_unit = k · R_m · V_ref / V_unit

taken from a standard series inside ``[r_min, r_max]``; an excitatory synapse hangs on the
inverted copy of the line (``-V_ref``: the integrator inverts), an inhibitory one on the
line itself. A constant-current input ``x`` in [0, 1] is a line held at ``x · V_ref``
(scaled by the encoding's ``scale``); a bias is a resistor from an always-on line. The
threshold voltage ``V_th = threshold · V_unit`` comes from a divider on the positive
supply, one per layer. Layer ``l`` works one clock behind layer ``l - 1`` (its input
spikes come out of flip-flops), so an inference takes ``T + L - 1`` clocks; this delay
does not change what any neuron computes.

Realisation order: snap every weight with :func:`spikeforge.hardware.components.snap_magnitudes`
(``R_unit`` per layer: given, or :func:`~spikeforge.hardware.components.auto_r_unit`),
choose the threshold divider, and set the layer's reference ``V_ref`` so that
``R_unit = k R_m V_ref / V_unit`` holds for the divider actually built (with a fixed
``V_ref``, the divider defines ``V_unit`` and so ``R_unit`` instead). The bundle's weights
are what these nominal parts realise in model units, so the contract's twin on
``weights.npz`` *is* the ideal board.

Non-idealities of a real board (:func:`draw_boards`): every part off its nominal value
within its tolerance, independently; comparator offset; the reference and supply off
nominal; the reset switch's on-resistance (an incomplete reset); the op-amp's output swing
(the membrane saturates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.hardware.components import (
    CLIPPED,
    PRUNED,
    REALISED,
    auto_r_unit,
    check_series,
    format_value,
    nearest_in_series,
    realisable_magnitudes,
    series_values,
    snap_magnitudes,
    snap_to,
)
from spikeforge.spec import NetworkSpec

DISTRIBUTIONS = ("uniform", "gaussian")
#: the smallest line amplitude an automatic reference may take (V): well above op-amp offsets
V_REF_MIN = 0.05


class AnalogError(SpikeforgeError):
    """A network or an option that the analog target cannot build (a design-rule error)."""


@dataclass(frozen=True)
class CircuitOptions:
    """What the builder chooses; every non-ideality has its usual figure as the default.

    series, r_min, r_max: synapse resistors come from this series within [r_min, r_max] (Ω).
    r_unit:        Ω per unit weight (``R = r_unit / |w|``); ``None``: per layer, the
                   largest weight gets the smallest series value in range (nothing is
                   clipped).
    r_m, c_m:      leak resistor (Ω) and membrane capacitor (F) of every neuron; snapped to
                   the series (R) and to E12 (C). ``dt`` follows from them and the decay.
    v_ref:         amplitude (V) of the lines into every layer, from a reference (pixels
                   span 0..v_ref); the divider then defines the unit, and its ratio error
                   scales the layer's weights. ``None`` (default): each layer's input lines
                   have their own (trimmed) reference, set so that the weights are exactly
                   ``R_unit / R`` with the threshold divider nearest to ``v_threshold``.
    v_threshold:   the threshold voltage aimed at when ``v_ref`` is ``None`` (moved as far
                   as needed when the reference it asks for is out of range).
    supply:        op-amp and comparator rails ±supply (V); the dividers hang on +supply.
    output_swing:  the op-amp output saturates at ±output_swing (V).
    reset_fraction: share of the clock period spent in the reset phase.
    resistor_tolerance, capacitor_tolerance, reference_tolerance: relative part tolerance
                   (0.01 = 1 %); the reference tolerance covers v_ref and the supply.
    inverter_tolerance: gain error of each line's inverter (gain -1 stage with a matched
                   resistor network): the inverted copy is ``-(1 + δ) · V_ref``.
    comparator_offset: standard deviation of a comparator's input offset (V).
    switch_on_resistance: reset switch on-resistance (Ω); 0 = ideal reset.
    opamp_gain:    open-loop gain of the integrators' op-amps; ``None``: ideal (choose parts
                   with >= 120 dB: with ~500 resistor conductances of R_m on a summing node,
                   100 dB already moves a few spikes).
    distribution:  how a part deviates within its tolerance: ``uniform`` over ±tol, or
                   ``gaussian`` with σ = tol / 3.
    """

    series: str = "E24"
    r_min: float = 10e3
    r_max: float = 1e6
    r_unit: float | None = None
    r_m: float = 100e3
    c_m: float = 10e-9
    v_ref: float | None = None
    v_threshold: float = 1.0
    supply: float = 5.0
    output_swing: float = 3.5
    reset_fraction: float = 0.1
    resistor_tolerance: float = 0.01
    capacitor_tolerance: float = 0.05
    reference_tolerance: float = 0.005
    inverter_tolerance: float = 0.002
    comparator_offset: float = 2e-3
    switch_on_resistance: float = 100.0
    opamp_gain: float | None = None
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        check_series(self.series)

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise AnalogError(f"analog option {name} = {getattr(self, name)!r} is not "
                                  f"allowed: it must be {allowed}")

        def positive(name: str) -> None:
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, name,
                 "a finite number > 0")

        for name in ("r_min", "r_max", "r_m", "c_m", "supply", "output_swing", "v_threshold"):
            positive(name)
        if self.v_ref is not None:
            positive("v_ref")
        need(self.r_min < self.r_max, "r_max", f"larger than r_min ({self.r_min:g})")
        if self.r_unit is not None:
            positive("r_unit")
        need(0 < self.reset_fraction < 0.5, "reset_fraction", "in (0, 0.5)")
        for name in ("resistor_tolerance", "capacitor_tolerance", "reference_tolerance",
                     "inverter_tolerance"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v < 0.5, name,
                 "a fraction in [0, 0.5), e.g. 0.01 for 1 %")
        need(self.comparator_offset >= 0, "comparator_offset", "a voltage >= 0")
        need(self.switch_on_resistance >= 0, "switch_on_resistance", "an on-resistance >= 0")
        need(self.opamp_gain is None or self.opamp_gain > 1, "opamp_gain",
             "an open-loop gain > 1 (e.g. 1e6), or absent for an ideal op-amp")
        need(self.output_swing < self.supply, "output_swing", f"below the supply "
             f"({self.supply:g} V)")
        need(self.distribution in DISTRIBUTIONS, "distribution",
             f"one of {', '.join(DISTRIBUTIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CircuitOptions:
        try:
            return cls(**d)
        except TypeError as e:
            raise AnalogError(f"analog options: {e}") from None


@dataclass
class AnalogLayer:
    """One layer as built.

    resistance:  ``(out, in)`` nominal synapse resistors in Ω, 0 where there is no part.
    sign:        ``(out, in)`` +1 excitatory (on the inverted line), -1 inhibitory, 0 none.
    bias_resistance, bias_sign: ``(out,)`` the same for the bias (``None`` without bias).
    r_unit:      Ω per unit of weight as built (after the threshold divider was chosen).
    v_unit:      volts per model unit of membrane; ``v_threshold = threshold · v_unit``.
    divider:     ``(r_top, r_bottom)``: ``v_threshold = supply · r_bottom / (r_top + r_bottom)``.
    input_scale: the encoding's scale folded into this layer's resistors (first layer of a
                 constant-current input), else 1.
    v_ref:       amplitude of this layer's input lines (V).
    """

    name: str
    resistance: np.ndarray
    sign: np.ndarray
    bias_resistance: np.ndarray | None
    bias_sign: np.ndarray | None
    r_unit: float
    v_unit: float
    v_threshold: float
    divider: tuple[float, float]
    input_scale: float = 1.0
    v_ref: float = 1.0


@dataclass
class AnalogCircuit:
    """The whole board: timing, the neuron's parts, and every layer."""

    options: CircuitOptions
    r_m: float
    c_m: float
    dt: float
    decay: float
    threshold: float
    layers: list[AnalogLayer]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def tau(self) -> float:
        return self.r_m * self.c_m

    @property
    def t_reset(self) -> float:
        return self.options.reset_fraction * self.dt

    @property
    def t_int(self) -> float:
        return self.dt - self.t_reset

    @property
    def gain(self) -> float:
        """``k = 1 - exp(-t_int / τ)``: membrane volts per (R_m · drive current)."""
        return -math.expm1(-self.t_int / self.tau)

    def to_json(self) -> dict[str, Any]:
        """The ``analog.circuit`` section of spec.json (resistor arrays live in weights.npz)."""
        return {
            "options": self.options.to_dict(),
            "dt": self.dt, "clock_hz": 1.0 / self.dt, "t_reset": self.t_reset,
            "t_int": self.t_int, "r_m": self.r_m, "c_m": self.c_m, "tau": self.tau,
            "gain": self.gain, "decay": self.decay, "threshold": self.threshold,
            "layers": [{"name": layer.name, "r_unit": layer.r_unit, "v_unit": layer.v_unit,
                        "v_threshold": layer.v_threshold,
                        "divider": {"r_top": layer.divider[0], "r_bottom": layer.divider[1]},
                        "input_scale": layer.input_scale, "v_ref": layer.v_ref,
                        "resistance": f"{layer.name}.weight_ohms",
                        "bias_resistance": None if layer.bias_resistance is None
                        else f"{layer.name}.bias_ohms"}
                       for layer in self.layers],
            "report": self.report,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Signed resistor values for weights.npz: ``sign · R`` (0 = no part)."""
        out = {}
        for layer in self.layers:
            out[f"{layer.name}.weight_ohms"] = layer.sign * layer.resistance
            if layer.bias_resistance is not None:
                out[f"{layer.name}.bias_ohms"] = layer.bias_sign * layer.bias_resistance
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], arrays: dict[str, np.ndarray]) -> AnalogCircuit:
        """Rebuild from spec.json's ``analog.circuit`` and weights.npz. A bundle is outside
        data (edited by hand, damaged in a copy): :class:`AnalogError` names the missing or
        impossible value."""
        fix = "re-export the bundle with `spikeforge export --target analog`"

        def get(obj: Any, key: str, where: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise AnalogError(f"{where} is missing {key!r}; {fix}")
            return obj[key]

        def number(obj: Any, key: str, where: str, upper: float = math.inf) -> float:
            value = get(obj, key, where)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and 0 < value <= upper and math.isfinite(value)):
                limit = "" if upper == math.inf else f" and <= {upper:g}"
                raise AnalogError(f"{where}.{key} = {value!r} is not allowed: it must be a "
                                  f"finite number > 0{limit}; {fix}")
            return float(value)

        def ohms(key: Any, where: str) -> np.ndarray:
            if not isinstance(key, str) or key not in arrays:
                raise AnalogError(f"{where}: weights.npz has no resistor array {key!r}; {fix}")
            if arrays[key].dtype.kind not in "iuf":
                raise AnalogError(f"{where}: {key!r} must hold resistances in ohms, not "
                                  f"{arrays[key].dtype}; {fix}")
            return np.asarray(arrays[key], np.float64)

        where = "analog.circuit"
        entries = get(d, "layers", where)
        if not isinstance(entries, list):
            raise AnalogError(f"{where}.layers must be a list of layers; {fix}")
        layers = []
        for i, entry in enumerate(entries):
            at = f"{where}.layers[{i}]"
            signed = ohms(get(entry, "resistance", at), at)
            bias_key = entry.get("bias_resistance")
            bias = None if not bias_key else ohms(bias_key, at)
            divider = get(entry, "divider", at)
            layers.append(AnalogLayer(
                str(get(entry, "name", at)), np.abs(signed), np.sign(signed).astype(np.int8),
                None if bias is None else np.abs(bias),
                None if bias is None else np.sign(bias).astype(np.int8),
                number(entry, "r_unit", at), number(entry, "v_unit", at),
                number(entry, "v_threshold", at),
                (number(divider, "r_top", f"{at}.divider"),
                 number(divider, "r_bottom", f"{at}.divider")),
                number(entry, "input_scale", at) if "input_scale" in entry else 1.0,
                number(entry, "v_ref", at)))
        options = get(d, "options", where)
        if not isinstance(options, dict):
            raise AnalogError(f"{where}.options must be an object of analog options; {fix}")
        report = d.get("report", {})
        return cls(CircuitOptions.from_dict(options), number(d, "r_m", where),
                   number(d, "c_m", where), number(d, "dt", where),
                   number(d, "decay", where, upper=1.0), number(d, "threshold", where),
                   layers, dict(report) if isinstance(report, dict) else {})


# ------------------------------------------------------------------------ design rules


def check_buildable(spec: NetworkSpec) -> None:
    """Refuse, by name, what the analog neuron cannot build (before any mapping)."""
    n = spec.neuron
    if n.reset != "zero":
        raise AnalogError(f"the analog neuron resets by shorting C_m (reset 'zero'); this "
                          f"network uses reset {n.reset!r}: retrain with --reset zero, or "
                          f"export --target digital")
    if n.refractory:
        raise AnalogError(f"the analog neuron has no refractory counter; this network uses "
                          f"refractory {n.refractory}: retrain with --refractory 0, or "
                          f"export --target digital")
    if n.decay >= 1.0:
        raise AnalogError("decay 1.0 (no leak) needs R_m = infinity; train with a decay "
                          "below 1 for the analog target")


def membrane_parts(options: CircuitOptions, decay: float) -> tuple[float, float, float]:
    """``(R_m, C_m, dt)``: R_m from the resistor series, C_m from E12, and the clock
    period that makes ``exp(-dt / R_m C_m)`` exactly the trained decay."""
    r_m = float(nearest_in_series(options.r_m, options.series))
    c_m = float(nearest_in_series(options.c_m, "E12"))
    return r_m, c_m, r_m * c_m * math.log(1.0 / decay)


def choose_divider(v_out: float, v_in: float, series: str,
                   r_total: float = 100e3) -> tuple[float, float]:
    """The ``(r_top, r_bottom)`` pair from ``series`` whose ratio is nearest to
    ``v_out / v_in``, near ``r_total`` in all (the divider feeds a comparator input)."""
    ratio = v_out / v_in
    if not 0 < ratio < 1:
        raise AnalogError(f"a divider cannot make {v_out:.3g} V from {v_in:.3g} V")
    bottoms = series_values(series, r_total / 100, r_total * 10)
    snapped_top = snap_to(bottoms * (1 - ratio) / ratio, bottoms)  # tops: the same values
    error = np.abs(np.log(bottoms / (snapped_top + bottoms)) - math.log(ratio))
    # prefer exact ratios, then totals near r_total
    score = error + 1e-6 * np.abs(np.log((snapped_top + bottoms) / r_total))
    best = int(np.argmin(score))
    return float(snapped_top[best]), float(bottoms[best])


def _r_units(options: CircuitOptions, weights: Sequence[np.ndarray],
             biases: Sequence[np.ndarray | None], scales: Sequence[float]) -> list[float]:
    if options.r_unit is not None:
        return [float(options.r_unit)] * len(weights)
    units = []
    for w, b, scale in zip(weights, biases, scales, strict=True):
        largest = float(np.abs(w).max()) * scale if w.size else 0.0
        if b is not None and b.size:
            largest = max(largest, float(np.abs(b).max()))
        units.append(auto_r_unit(largest, options.series, options.r_min, options.r_max))
    return units


def design_circuit(spec: NetworkSpec, weights: Sequence[np.ndarray],
                   biases: Sequence[np.ndarray | None], names: Sequence[str],
                   options: CircuitOptions | None = None
                   ) -> tuple[AnalogCircuit, list[np.ndarray], list[np.ndarray | None]]:
    """Map trained weights onto real parts.

    Returns the circuit and the weights and biases that its nominal parts realise, in
    model units (what the bundle's weights.npz holds). Nothing is dropped silently: the
    circuit's ``report`` counts, per layer, the weights realised, clipped to the largest
    realisable magnitude and pruned below the smallest.
    """
    options = options or CircuitOptions()
    check_buildable(spec)
    r_m, c_m, dt = membrane_parts(options, spec.neuron.decay)
    tau = r_m * c_m
    t_int = dt * (1 - options.reset_fraction)
    gain = -math.expm1(-t_int / tau)
    scales = [spec.encoding.scale if i == 0 and spec.encoding.type == "constant_current"
              else 1.0 for i in range(len(weights))]
    r_units = _r_units(options, weights, biases, scales)
    layers, realised_w, realised_b, report_layers = [], [], [], []
    for name, w, b, scale, r_unit in zip(names, weights, biases, scales, r_units,
                                         strict=True):
        w = np.asarray(w, np.float64)
        levels = realisable_magnitudes(options.series, options.r_min, options.r_max, r_unit)
        resistance, sign, magnitude, status = _to_resistors(w * scale, levels, r_unit,
                                                            options.series)
        b_res = b_sign = b_status = None
        if b is not None:
            b = np.asarray(b, np.float64)
            b_res, b_sign, _, b_status = _to_resistors(b, levels, r_unit, options.series)
        if options.v_ref is None:
            # aim at the threshold voltage (moved if the reference it needs is out of range)
            v_th = _threshold_for_reference(options, r_unit, gain * r_m, spec.neuron.threshold)
        else:  # a fixed reference: the threshold voltage follows from it
            v_th = spec.neuron.threshold * gain * r_m * options.v_ref / r_unit
        _check_threshold(name, v_th, options)
        divider = choose_divider(v_th, options.supply, options.series)
        v_threshold = options.supply * divider[1] / (divider[0] + divider[1])
        v_unit = v_threshold / spec.neuron.threshold
        if options.v_ref is None:
            # this layer's own line reference, set so that R_unit is exactly the one the
            # weights were snapped with for the divider actually built (a trimmed
            # reference: the weights stay what series-aware training trained)
            v_ref = r_unit * v_unit / (gain * r_m)
            if not V_REF_MIN <= v_ref <= options.supply - 1.0:
                raise AnalogError(f"layer {name}: its line reference would be {v_ref:.3g} V, "
                                  f"outside {V_REF_MIN:g}..{options.supply - 1:g} V: change "
                                  f"--v-threshold, --r-m or the resistor range (--r-range)")
            r_unit_built = r_unit
        else:  # the built divider defines the unit, and with it R_unit
            v_ref = options.v_ref
            r_unit_built = gain * r_m * v_ref / v_unit
        layer = AnalogLayer(name, resistance, sign, b_res, b_sign, r_unit_built, v_unit,
                            v_threshold, divider, scale, v_ref)
        layers.append(layer)
        nominal = _nominal_layer(layer, r_m, gain)
        realised_w.append(nominal[0])
        realised_b.append(nominal[1])
        counts = {k: int((status == code).sum()) for k, code in
                  (("realised", REALISED), ("clipped", CLIPPED))}
        counts["pruned"] = int(((status == PRUNED) & (w != 0)).sum())
        counts["zero"] = int((w == 0).sum())
        if b_status is not None:
            counts["bias_clipped"] = int((b_status == CLIPPED).sum())
            counts["bias_pruned"] = int(((b_status == PRUNED) & (b != 0)).sum())
        nonzero = (w != 0) & (magnitude > 0)
        rel = np.abs(np.abs(nominal[0][nonzero]) - np.abs(w[nonzero])) / np.abs(w[nonzero])
        counts["max_relative_error"] = float(rel.max()) if rel.size else 0.0
        counts["realisable_magnitudes"] = [float(levels[0] / scale), float(levels[-1] / scale)]
        report_layers.append({"layer": name, **counts})
    circuit = AnalogCircuit(options, r_m, c_m, dt, spec.neuron.decay, spec.neuron.threshold,
                            layers, {"layers": report_layers})
    return circuit, realised_w, realised_b


def _over(numerator: Any, values: np.ndarray) -> np.ndarray:
    """``numerator / values`` where ``values > 0``, else 0 (0 means "no part" throughout)."""
    positive = values > 0
    return np.where(positive, numerator / np.where(positive, values, 1), 0.0)


def _to_resistors(values: np.ndarray, levels: np.ndarray, r_unit: float, series: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights (or biases) as parts: ``(resistance, sign, snapped magnitude, status)``,
    ``resistance = R_unit / |w|`` snapped onto ``levels`` (0 and sign 0 where no part)."""
    magnitude, status = snap_magnitudes(np.abs(values), levels)
    resistance = _exact_series(_over(r_unit, magnitude), series)
    sign = (np.sign(values) * (magnitude > 0)).astype(np.int8)
    return resistance, sign, magnitude, status


def _exact_series(resistance: np.ndarray, series: str) -> np.ndarray:
    """Values that are series values up to float rounding, made exactly the printed value."""
    out = resistance.copy()
    nz = out > 0
    if nz.any():
        out[nz] = nearest_in_series(out[nz], series)
    return out


def _threshold_for_reference(options: CircuitOptions, r_unit: float, gain_r_m: float,
                             threshold: float) -> float:
    """The threshold voltage to aim at: ``options.v_threshold``, unless the line reference
    it needs (``V_ref = R_unit · V_th / (threshold · k R_m)``) would leave the range a
    reference can take; then the threshold moves instead, as far as it must."""
    v_th = options.v_threshold
    v_ref = r_unit * v_th / (threshold * gain_r_m)
    v_ref_max = 0.9 * (options.supply - 1.0)
    if v_ref > v_ref_max:
        v_th *= v_ref_max / v_ref
    elif v_ref < 2 * V_REF_MIN:
        v_th *= 2 * V_REF_MIN / v_ref
    return v_th


def _check_threshold(name: str, v_threshold: float, options: CircuitOptions) -> None:
    low = max(0.02, 10 * options.comparator_offset)
    high = options.output_swing * 0.8
    if not low <= v_threshold <= high:
        side = "above" if v_threshold > high else "below"
        fix = ("lower --r-m or raise the smallest resistor (--r-range)" if side == "above"
               else "raise --r-m or lower the smallest resistor (--r-range)")
        raise AnalogError(f"layer {name}: the threshold voltage would be {v_threshold:.3g} V, "
                          f"{side} the usable range {low:.3g}..{high:.3g} V (comparator "
                          f"offset, op-amp swing {options.output_swing:g} V): {fix}, or "
                          f"set --r-unit")


def _nominal_layer(layer: AnalogLayer, r_m: float, gain: float
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Model-unit weights and biases of the nominal parts (the same arithmetic as a drawn
    board in :func:`draw_boards`, so an unperturbed board equals the bundle exactly)."""
    w = _conductance_weights(layer.resistance, layer.sign, gain * r_m * layer.v_ref,
                             layer.v_unit)
    w = w / layer.input_scale
    b = None
    if layer.bias_resistance is not None:
        b = _conductance_weights(layer.bias_resistance, layer.bias_sign,
                                 gain * r_m * layer.v_ref,
                                 layer.v_unit)
    return w, b


def _conductance_weights(resistance: np.ndarray, sign: np.ndarray, volts_per_siemens: Any,
                         v_unit: float) -> np.ndarray:
    """``sign · (k R_m V_line) / (R · V_unit)``, 0 where there is no part."""
    return sign * _over(1.0, resistance) * volts_per_siemens / v_unit


# -------------------------------------------------------------------------- boards


@dataclass
class Boards:
    """``K`` drawn boards in model units, per layer (leading axis: board).

    weights ``(K, out, in)``, biases ``(K, out)`` or None, decay / threshold / residual
    ``(K, out)`` (``residual``: what a reset leaves of the membrane, relative to a plain
    leak), and the saturation limits ``v_low, v_high`` (model units, one pair per layer).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray | None]
    decay: list[np.ndarray]
    threshold: list[np.ndarray]
    residual: list[np.ndarray]
    v_low: list[float]
    v_high: list[float]

    @property
    def n_boards(self) -> int:
        return self.weights[0].shape[0]

    def board(self, k: int) -> Boards:
        """Board ``k`` alone (``K = 1``)."""
        pick = slice(k, k + 1)
        return Boards([w[pick] for w in self.weights],
                      [None if b is None else b[pick] for b in self.biases],
                      [d[pick] for d in self.decay], [t[pick] for t in self.threshold],
                      [r[pick] for r in self.residual], self.v_low, self.v_high)


def reset_residual(t_reset: float, tau: Any, r_m: Any, c_m: Any, r_on: float) -> Any:
    """What a reset leaves of the membrane, relative to a plain leak over ``t_reset``:
    during the reset phase ``C_m`` discharges through ``R_on ∥ R_m`` instead of the
    leak's time constant ``tau``::

        residual = exp(-t_reset / (C_m · R_on∥R_m) + t_reset / tau)
    """
    return np.exp(-t_reset / (c_m * r_on * r_m / (r_on + r_m)) + t_reset / tau)


def _deviation(rng: np.random.Generator, shape: Any, tolerance: float,
               distribution: str) -> np.ndarray:
    """Relative deviation ``δ`` of parts within ``±tolerance`` (value = nominal · (1 + δ))."""
    if tolerance == 0:
        return np.zeros(shape)
    if distribution == "uniform":
        return rng.uniform(-tolerance, tolerance, shape)
    return rng.normal(0.0, tolerance / 3.0, shape)


def draw_boards(circuit: AnalogCircuit, n_boards: int = 1,
                seed: int | np.random.SeedSequence | None = 0,
                ideal: bool = False, **overrides: Any) -> Boards:
    """``n_boards`` boards, every part drawn independently within its tolerance.

    ``ideal=True`` gives the nominal board with ideal switches and no saturation (exactly
    the bundle's weights); ``n_boards=1, seed=None`` the nominal parts with the
    non-idealities that are not tolerances (switch on-resistance, output swing).
    ``overrides`` replace options, e.g. ``resistor_tolerance=0.05``.
    """
    o = replace(circuit.options, **overrides) if overrides else circuit.options
    rng = np.random.default_rng(seed)
    drawn = seed is not None and not ideal
    K = n_boards

    def dev(shape: Any, tol: float) -> np.ndarray:
        return _deviation(rng, shape, tol, o.distribution) if drawn else np.zeros(shape)

    supply = o.supply * (1 + dev((K, 1), o.reference_tolerance))
    dt, t_reset, t_int = circuit.dt, circuit.t_reset, circuit.t_int
    boards = Boards([], [], [], [], [], [], [])
    for layer in circuit.layers:
        n_out = layer.resistance.shape[0]
        # this layer's line reference: direct (+V_ref) and inverted (-V_ref) copies
        v_pos = layer.v_ref * (1 + dev((K, 1, 1), o.reference_tolerance))
        v_neg = layer.v_ref * (1 + dev((K, 1, 1), o.reference_tolerance))
        # each presynaptic line's inverter adds its own gain error to the inverted copy
        v_neg_line = v_neg * (1 + dev((K, 1, layer.resistance.shape[1]), o.inverter_tolerance))
        v_neg_bias = v_neg[:, :, 0] * (1 + dev((K, 1), o.inverter_tolerance))
        r_m = circuit.r_m * (1 + dev((K, n_out), o.resistor_tolerance))
        c_m = circuit.c_m * (1 + dev((K, n_out), o.capacitor_tolerance))
        resistance = layer.resistance * (1 + dev((K, *layer.resistance.shape),
                                                 o.resistor_tolerance))
        b_res = None
        if layer.bias_resistance is not None:
            b_res = layer.bias_resistance * (1 + dev((K, n_out), o.resistor_tolerance))
        tau = r_m * c_m
        drive = r_m * -np.expm1(-t_int / tau)  # k · R_m: membrane volts per ampere of drive
        if o.opamp_gain is not None and not ideal:
            tau, drive = _finite_gain(o.opamp_gain, r_m, c_m, resistance, b_res, t_int)
        decay = np.exp(-dt / tau)
        if ideal or o.switch_on_resistance == 0:
            residual = np.zeros((K, n_out))
        else:
            residual = reset_residual(t_reset, tau, r_m, c_m, o.switch_on_resistance)
        line = np.where(layer.sign > 0, v_neg_line, v_pos)  # (K, out, in)
        weights = _conductance_weights(resistance, layer.sign, drive[:, :, None] * line,
                                       layer.v_unit)
        weights /= layer.input_scale
        bias = None
        if b_res is not None:
            b_line = np.where(layer.bias_sign > 0, v_neg_bias, v_pos[:, :, 0])
            bias = _conductance_weights(b_res, layer.bias_sign, drive * b_line, layer.v_unit)
        r_top = layer.divider[0] * (1 + dev((K, 1), o.resistor_tolerance))
        r_bottom = layer.divider[1] * (1 + dev((K, 1), o.resistor_tolerance))
        v_th = supply * r_bottom / (r_top + r_bottom)
        if drawn and o.comparator_offset > 0:
            v_th = v_th + rng.normal(0.0, o.comparator_offset, (K, n_out))
        threshold = np.broadcast_to(v_th / layer.v_unit, (K, n_out)).copy()
        if not drawn:  # the nominal threshold is the contract's, to the last bit
            threshold[:] = circuit.threshold
        boards.weights.append(weights)
        boards.biases.append(bias)
        boards.decay.append(decay)
        boards.threshold.append(threshold)
        boards.residual.append(residual)
        swing = math.inf if ideal else o.output_swing / layer.v_unit
        boards.v_low.append(-swing)
        boards.v_high.append(swing)
    return boards


def _finite_gain(a: float, r_m: np.ndarray, c_m: np.ndarray, resistance: np.ndarray,
                 bias_resistance: np.ndarray | None, t_int: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Time constant and drive (V per A) of an integrator whose op-amp has open-loop gain
    ``A``: the summing node sits at ``-V_m / A`` instead of 0 V, so every resistor on it
    (conductance ``g`` in all) leaks a little of the membrane::

        α = 1 + 1/A,   τ' = R_m C_m / (1 + R_m g / (A α)),
        drive = τ' (1 - exp(-t_int / τ')) / (C_m α)

    (``A → ∞`` gives ``τ = R_m C_m`` and ``drive = k R_m``.)"""
    alpha = 1 + 1 / a
    g = _over(1.0, resistance).sum(-1)
    if bias_resistance is not None:
        g = g + _over(1.0, bias_resistance)
    tau = r_m * c_m / (1 + r_m * g / (a * alpha))
    return tau, tau * -np.expm1(-t_int / tau) / (c_m * alpha)


def nominal_decay_matches(circuit: AnalogCircuit) -> bool:
    """Whether the nominal parts give the trained decay (they do, by the choice of dt)."""
    return math.isclose(math.exp(-circuit.dt / circuit.tau), circuit.decay, rel_tol=1e-12)


# ----------------------------------------------------------------- builder's tables


def placement_rows(circuit: AnalogCircuit) -> list[dict[str, Any]]:
    """One row per resistor of the network: reference designator, where it goes, value.

    ``pre`` is the presynaptic line: an input index (first layer), a neuron of the
    previous layer, or ``bias``. ``line`` says which copy of it: ``inverted`` (excitatory,
    the line swings to -V_ref) or ``direct`` (inhibitory, +V_ref).
    """
    rows = []
    n = 0
    for layer in circuit.layers:
        post, pre = np.nonzero(layer.resistance)
        for i, j in zip(post.tolist(), pre.tolist(), strict=True):
            n += 1
            r = float(layer.resistance[i, j])
            s = int(layer.sign[i, j])
            rows.append({"ref": f"R{n}", "layer": layer.name, "post": i, "pre": j,
                         "ohms": r, "value": format_value(r), "sign": "+" if s > 0 else "-",
                         "line": "inverted" if s > 0 else "direct"})
        if layer.bias_resistance is not None:
            for i in np.nonzero(layer.bias_resistance)[0].tolist():
                n += 1
                r = float(layer.bias_resistance[i])
                s = int(layer.bias_sign[i])
                rows.append({"ref": f"R{n}", "layer": layer.name, "post": i, "pre": "bias",
                             "ohms": r, "value": format_value(r),
                             "sign": "+" if s > 0 else "-",
                             "line": "inverted" if s > 0 else "direct"})
    return rows


def bill_of_materials(circuit: AnalogCircuit, n_inputs: int) -> list[dict[str, Any]]:
    """Parts by kind and value: ``part``, ``value``, ``tolerance``, ``count``, ``role``.

    Per neuron: an op-amp (leaky integrator), C_m, R_m, a back-to-back zener clamp across
    C_m (the membrane saturates at the swing without winding up), a comparator, a reset
    switch and a D flip-flop; per presynaptic line (inputs, hidden neurons, each layer's
    bias line) a gating switch and an inverter for the negated copy (every switch closes
    on its control AND a clock phase: a switch with an enable input); per layer a threshold
    divider and a line reference; the synapse and bias resistors by value. Not listed: the input
    front-end that holds each pixel at ``x · V_ref``, and the sequencer (two-phase clock,
    layer enables, output spike counters and the priority encoder).
    """
    o = circuit.options
    res_tol, cap_tol = f"{o.resistor_tolerance:.0%}", f"{o.capacitor_tolerance:.0%}"
    n_neurons = sum(layer.resistance.shape[0] for layer in circuit.layers)
    n_lines = n_inputs + sum(layer.resistance.shape[0] for layer in circuit.layers[:-1])
    n_bias_lines = sum(layer.bias_resistance is not None for layer in circuit.layers)
    values: dict[float, int] = {}
    for layer in circuit.layers:
        for r in layer.resistance[layer.resistance > 0].tolist():
            values[r] = values.get(r, 0) + 1
        if layer.bias_resistance is not None:
            for r in layer.bias_resistance[layer.bias_resistance > 0].tolist():
                values[r] = values.get(r, 0) + 1
    rows = [{"part": "resistor", "value": format_value(r, "Ω"), "tolerance": res_tol,
             "count": c, "role": "synapse / bias"} for r, c in sorted(values.items())]
    dividers: dict[float, int] = {}
    for layer in circuit.layers:
        for r in layer.divider:
            dividers[r] = dividers.get(r, 0) + 1
    rows += [{"part": "resistor", "value": format_value(r, "Ω"), "tolerance": res_tol,
              "count": c, "role": "threshold divider"} for r, c in sorted(dividers.items())]
    rows += [
        {"part": "resistor", "value": format_value(circuit.r_m, "Ω"), "tolerance": res_tol,
         "count": n_neurons, "role": "leak R_m"},
        {"part": "capacitor", "value": format_value(circuit.c_m, "F"), "tolerance": cap_tol,
         "count": n_neurons, "role": "membrane C_m (C0G/film)"},
        {"part": "op-amp", "value": "FET input, open-loop gain >= 120 dB", "tolerance": "",
         "count": n_neurons, "role": "leaky integrator"},
        {"part": "zener diode", "value": f"{o.output_swing:g} V", "tolerance": "",
         "count": 2 * n_neurons, "role": "anti-windup clamp across C_m (membrane swing)"},
        {"part": "comparator", "value": f"offset {o.comparator_offset * 1e3:g} mV",
         "tolerance": "", "count": n_neurons, "role": "threshold"},
        {"part": "analog switch", "value": f"R_on {o.switch_on_resistance:g} Ω, enable",
         "tolerance": "", "count": n_neurons, "role": "membrane reset"},
        {"part": "D flip-flop", "value": "", "tolerance": "", "count": n_neurons,
         "role": "spike register"},
        {"part": "analog switch", "value": "changeover, enable", "tolerance": "",
         "count": n_lines + n_bias_lines, "role": "line gate (+V_ref / 0)"},
        {"part": "inverter", "value": "gain -1",
         "tolerance": f"{o.inverter_tolerance:.1%}", "count": n_lines + n_bias_lines,
         "role": "inverted line (-V_ref / 0)"},

    ]
    references: dict[str, int] = {}
    for layer in circuit.layers:
        key = f"{layer.v_ref:.4g} V"
        references[key] = references.get(key, 0) + 1
    rows += [{"part": "voltage reference", "value": v, "tolerance":
              f"{o.reference_tolerance:.1%}", "count": c, "role": "line amplitude V_ref"}
             for v, c in references.items()]
    return rows


def part_summary(circuit: AnalogCircuit, n_inputs: int) -> dict[str, int]:
    """Counts a builder budgets with."""
    synapses = sum(int(np.count_nonzero(layer.resistance)) for layer in circuit.layers)
    biases = sum(int(np.count_nonzero(layer.bias_resistance)) for layer in circuit.layers
                 if layer.bias_resistance is not None)
    bom = bill_of_materials(circuit, n_inputs)
    return {"synapse_resistors": synapses, "bias_resistors": biases,
            "distinct_resistor_values": len({r["value"] for r in bom
                                             if r["part"] == "resistor"}),
            "total_parts": int(sum(r["count"] for r in bom))}
