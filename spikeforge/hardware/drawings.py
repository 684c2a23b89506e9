"""Drawings of the analog target for a builder: one neuron as a schematic.

:func:`neuron_schematic` draws one neuron of a layer of an :class:`AnalogCircuit` with
schemdraw, labelled with the parts the board really carries (reference designators from
:func:`~spikeforge.hardware.circuit.placement_rows`, values from
:func:`~spikeforge.hardware.components.format_value`): a few of its synapse resistors (an
excitatory one on an inverted line, an inhibitory one on a direct line, the bias resistor),
the summing node, the inverting leaky integrator with C_m, R_m and the reset switch across
C_m, the comparator against the layer's threshold divider, the D flip-flop on the clock,
and the spike line with its inverted copy that feeds the next layer.

Net names are those of the board's KiCad netlist (:mod:`spikeforge.hardware.kicad`), so the
drawing and the netlist can be read side by side.

Rendering is headless: SVG through schemdraw's own SVG backend (text stays text, so the
values can be searched in the file), PNG through a bare matplotlib ``Figure`` on the Agg
canvas (never pyplot, which could pick an interactive backend).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import schemdraw
import schemdraw.elements as elm
import schemdraw.logic as logic

from spikeforge.hardware.circuit import AnalogCircuit, AnalogError, AnalogLayer
from spikeforge.hardware.components import format_value
from spikeforge.hardware.kicad import kicad_netlist, line_net, neuron_net
from spikeforge.io import atomic_open

__all__ = ["kicad_netlist", "neuron_schematic", "pick_neuron"]

#: the drawing's colours: excitatory, inhibitory, neutral text
_EXC, _INH, _NOTE = "#b8290f", "#1f5fa8", "#555555"


def pick_neuron(circuit: AnalogCircuit, layer_index: int) -> int:
    """The neuron a drawing shows by default: the first one that has an excitatory and an
    inhibitory synapse (and a bias resistor, where the layer has biases), so every kind of
    part appears; failing that, the neuron with the most synapse resistors."""
    layer = _layer(circuit, layer_index)
    exc = (layer.sign > 0).any(axis=1)
    inh = (layer.sign < 0).any(axis=1)
    ok = exc & inh
    if layer.bias_resistance is not None:
        ok &= layer.bias_resistance > 0
    if ok.any():
        return int(np.argmax(ok))
    return int(np.argmax(np.count_nonzero(layer.resistance, axis=1)))


def neuron_schematic(circuit: AnalogCircuit, layer_index: int, path: str | os.PathLike,
                     *, neuron: int | None = None, max_synapses: int = 3) -> Path:
    """Draw one neuron of ``circuit.layers[layer_index]`` and write it to ``path``.

    The format follows the suffix: ``.svg`` or ``.png``. ``neuron`` picks the neuron
    (default: :func:`pick_neuron`); at most ``max_synapses`` of its synapse resistors are
    drawn (the strongest excitatory and inhibitory ones first), the rest are summarised.
    The file is written atomically. Returns the path written.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise AnalogError(f"neuron_schematic writes .svg or .png, not {path.name!r}")
    layer = _layer(circuit, layer_index)
    n_out = layer.resistance.shape[0]
    i = pick_neuron(circuit, layer_index) if neuron is None else int(neuron)
    if not 0 <= i < n_out:
        raise AnalogError(f"layer {layer.name} has neurons 0..{n_out - 1}, not {i}")
    rows = _neuron_rows(circuit, layer_index, i, max_synapses)
    if fmt == "svg":
        drawing = schemdraw.Drawing(canvas="svg", show=False)
        _draw(drawing, circuit, layer_index, i, rows)
        data = drawing.get_imagedata("svg")
    else:
        data = _png(circuit, layer_index, i, rows)
    with atomic_open(path, "wb") as f:
        f.write(data)
    return path


# ------------------------------------------------------------------------- choosing parts


def _layer(circuit: AnalogCircuit, layer_index: int) -> AnalogLayer:
    if not 0 <= layer_index < len(circuit.layers):
        raise AnalogError(f"the circuit has layers 0..{len(circuit.layers) - 1}, "
                          f"not {layer_index}")
    return circuit.layers[layer_index]


def _neuron_rows(circuit: AnalogCircuit, layer_index: int, neuron: int,
                 max_synapses: int) -> dict[str, Any]:
    """The resistors of one neuron to draw, with their reference designators.

    The designators follow :func:`placement_rows`' numbering (synapses of a layer in
    row-major order, then its biases), computed from counts rather than by building the
    whole table, which for a 784-128-10 board is 100k dictionaries.
    """
    layer = circuit.layers[layer_index]
    before = 0
    for earlier in circuit.layers[:layer_index]:
        before += int(np.count_nonzero(earlier.resistance))
        if earlier.bias_resistance is not None:
            before += int(np.count_nonzero(earlier.bias_resistance))
    counts = np.count_nonzero(layer.resistance, axis=1)
    first = before + int(counts[:neuron].sum())  # designators before this neuron's synapses
    pres = np.nonzero(layer.resistance[neuron])[0]
    refs = {int(j): f"R{first + k + 1}" for k, j in enumerate(pres.tolist())}
    # weight of each part in model units: sign · R_unit / R (the input scale undone)
    weight = {j: float(layer.sign[neuron, j] * layer.r_unit / layer.resistance[neuron, j]
                       / layer.input_scale) for j in refs}
    exc = sorted((j for j in refs if weight[j] > 0), key=lambda j: -abs(weight[j]))
    inh = sorted((j for j in refs if weight[j] < 0), key=lambda j: -abs(weight[j]))
    chosen: list[int] = []
    # alternate strongest excitatory / inhibitory so both kinds show whenever they exist
    while len(chosen) < max_synapses and (exc or inh):
        for pool in (exc, inh):
            if pool and len(chosen) < max_synapses:
                chosen.append(pool.pop(0))
    chosen.sort()
    synapses = [{"pre": j, "ref": refs[j], "ohms": float(layer.resistance[neuron, j]),
                 "sign": int(layer.sign[neuron, j]), "weight": weight[j],
                 "net": line_net(layer_index, j, inverted=layer.sign[neuron, j] > 0)}
                for j in chosen]
    bias = None
    if layer.bias_resistance is not None and layer.bias_resistance[neuron] > 0:
        b_before = before + int(counts.sum())
        b_ref = b_before + int(np.count_nonzero(layer.bias_resistance[:neuron])) + 1
        r = float(layer.bias_resistance[neuron])
        s = int(layer.bias_sign[neuron])
        bias = {"pre": "bias", "ref": f"R{b_ref}", "ohms": r, "sign": s,
                "weight": s * layer.r_unit / r,
                "net": line_net(layer_index, "bias", inverted=s > 0)}
    return {"synapses": synapses, "bias": bias, "n_synapses": len(refs),
            "n_exc": int((layer.sign[neuron] > 0).sum()),
            "n_inh": int((layer.sign[neuron] < 0).sum())}


# ------------------------------------------------------------------------------ drawing


def _png(circuit: AnalogCircuit, layer_index: int, neuron: int, rows: dict[str, Any]
         ) -> bytes:
    """Render through a bare matplotlib Figure on the Agg canvas (headless, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    drawing = schemdraw.Drawing(canvas=ax, show=False)
    _draw(drawing, circuit, layer_index, neuron, rows)
    drawing.draw(show=False)
    # schemdraw fits the axes to the parts only; scale the figure as schemdraw does
    # (half an inch per drawing unit, so 11 pt text keeps its size next to the symbols) and
    # let the tight bounding box take in the labels that reach past the parts
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    fig.set_size_inches(abs(x1 - x0) * 0.5, abs(y1 - y0) * 0.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, facecolor="white", bbox_inches="tight",
                pad_inches=0.15)
    return buf.getvalue()


def _s(seconds: float) -> str:
    """A time or frequency as a label, with the micro sign that format_value spells 'u'."""
    return format_value(seconds, "s").replace("us", "\u00b5s")


def _v(volts: float) -> str:
    """A voltage as a label: 1.29 V."""
    return f"{volts:.3g}\u2009V"


def _text(d: schemdraw.Drawing, xy: tuple[float, float], text: str, *, fontsize: float = 9,
          halign: str = "center", valign: str = "center", color: str | None = _NOTE) -> None:
    """Free text with its top, bottom or centre at ``xy``.

    The text itself is always placed centre-aligned, computing the shift from the line
    count: schemdraw's SVG backend and matplotlib disagree on top and bottom alignment (the
    SVG text lands half a line off and runs into the symbols), but agree on the centre.
    """
    height = (text.count("\n") + 1) * fontsize / 36 * 1.25  # units: 0.5 in, 72 pt/in
    y = xy[1] - height / 2 if valign == "top" else (
        xy[1] + height / 2 if valign == "bottom" else xy[1])
    d.add(elm.Label().at((xy[0], y)).label(text, halign=halign, valign="center",
                                          fontsize=fontsize, color=color))


def _draw(d: schemdraw.Drawing, circuit: AnalogCircuit, layer_index: int, neuron: int,
          rows: dict[str, Any]) -> None:
    """Lay the neuron out left to right: synapses, integrator, comparator, flip-flop, lines.

    Every fixed-orientation symbol is placed with ``.right()``: schemdraw otherwise turns
    it to the direction of the previous element (a resistor drawn downwards, say).
    """
    o = circuit.options
    layer = circuit.layers[layer_index]
    me = neuron_net(layer_index, neuron)
    # the margin makes room for the text past the last symbols, which the SVG backend
    # leaves out of its bounding box
    d.config(fontsize=11, unit=2.5, lw=1.3, margin=0.8)

    # --- synapse resistors into the summing node (a vertical bus at x = xs)
    xs, x_term, pitch = 9.5, 1.2, 1.9
    parts = list(rows["synapses"])
    if rows["bias"] is not None:
        parts.append(rows["bias"])
    ys = [-pitch * k for k in range(len(parts))]
    if not parts:  # every synapse pruned: the neuron only leaks
        _text(d, (4.75, 0.4), "no synapse resistors (all pruned)", valign="bottom")
        d.add(elm.Line().at((x_term + 2.0, 0)).to((xs, 0)))
    for y, p in zip(ys, parts, strict=True):
        colour = _EXC if p["sign"] > 0 else _INH
        kind = "bias" if p["pre"] == "bias" else ("excitatory" if p["sign"] > 0
                                                   else "inhibitory")
        level = "\u2212" if p["sign"] > 0 else "+"
        # a spike line is off or at ±V_ref; an input line carries any x · V_ref in between
        swing = (f"0 \u2026 {level}{_v(layer.v_ref)}" if layer_index == 0 and p["pre"] != "bias"
                 else f"{level}{_v(layer.v_ref)} / 0")
        d.add(elm.Dot(open=True).at((x_term, y)).color(colour)
              .label(f"{p['net']}\n{swing}", loc="left", ofst=0.15, fontsize=10))
        d.add(elm.Line().at((x_term, y)).to((3.0, y)).color(colour))
        d.add(elm.Resistor().at((3.0, y)).to((6.5, y)).color(colour))
        _text(d, (4.75, y + 0.4), f"{p['ref']}  {format_value(p['ohms'], 'Ω')}",
              fontsize=11, valign="bottom", color=colour)
        _text(d, (4.75, y - 0.5), f"{kind}, w = {p['weight']:+.3g}", valign="top")
        d.add(elm.Line().at((6.5, y)).to((xs, y)).color(colour))
        if y != 0:
            d.add(elm.Dot().at((xs, y)))
    others = rows["n_synapses"] - len(rows["synapses"])
    if others > 0:
        _text(d, (4.75, min(ys, default=0) - pitch * 0.9),
              f"\u22ee  {others} more synapse resistor{'s' if others != 1 else ''}  "
              f"({rows['n_exc']} excitatory, {rows['n_inh']} inhibitory in all)")
    if len(ys) > 1:
        d.add(elm.Line().at((xs, ys[-1])).to((xs, 0)))

    # --- inverting leaky integrator: op-amp, C_m ∥ R_m ∥ reset switch in feedback
    x_fb, x_in = xs + 1.0, xs + 2.0
    d.add(elm.Line().at((xs, 0)).to((x_in, 0)))
    d.add(elm.Dot().at((xs, 0)))
    _text(d, (xs + 0.15, -0.5), f"{me}_SUM\n(virtual ground)", halign="left",
          valign="top")
    amp = d.add(elm.Opamp(leads=True).right().anchor("in1").at((x_in, 0)))
    _text(d, (amp.center[0], amp.center[1] - 1.6), "op-amp\n(integrator)", valign="top")
    d.add(elm.Line().at(amp.in2).toy(amp.in2[1] - 0.5))
    d.add(elm.Ground())
    x_out, y_out = amp.out
    x_mid = (x_fb + x_out) / 2
    y_cap, y_rm, y_sw = 2.0, 3.9, 5.8
    d.add(elm.Dot().at((x_fb, 0)))
    d.add(elm.Line().at((x_fb, 0)).to((x_fb, y_sw)))
    d.add(elm.Line().at(amp.out).to((x_out, y_sw)))
    for x in (x_fb, x_out):
        for y in (y_cap, y_rm):
            d.add(elm.Dot().at((x, y)))
    d.add(elm.Capacitor().at((x_fb, y_cap)).to((x_out, y_cap)))
    _text(d, (x_mid, y_cap + 0.45), f"C\u2098  {format_value(circuit.c_m, 'F')}",
          fontsize=11, valign="bottom", color=None)
    d.add(elm.Resistor().at((x_fb, y_rm)).to((x_out, y_rm)))
    _text(d, (x_mid, y_rm + 0.4), f"R\u2098  {format_value(circuit.r_m, 'Ω')}",
          fontsize=11, valign="bottom", color=None)
    r_on = (f"R_on {format_value(o.switch_on_resistance, 'Ω')}" if o.switch_on_resistance
            else "ideal")
    d.add(elm.Switch(action="close").at((x_fb, y_sw)).to((x_out, y_sw)))
    _text(d, (x_mid, y_sw + 0.6), f"S reset ({r_on})", fontsize=11, valign="bottom",
          color=None)
    _text(d, (x_mid, y_sw - 0.4), "closed while Q \u00b7 \u03c6_rst", valign="top")
    _text(d, (x_out + 0.5, y_rm), f"\u03c4 = R\u2098C\u2098 = {_s(circuit.tau)}\n"
          f"decay = exp(\u2212dt/\u03c4) = {circuit.decay:.4g}", halign="left")

    # --- comparator: V_m on +, the layer's threshold divider (on +supply) on -
    x_cmp = x_out + 7.0
    d.add(elm.Dot().at(amp.out))
    _text(d, (x_out + 0.3, y_out + 0.15), f"V\u2098  ({me}_VM)", halign="left",
          valign="bottom", color=None)
    cmp_ = d.add(elm.Opamp(leads=True).right().flip().anchor("in2").at((x_cmp, y_out)))
    d.add(elm.Line().at(amp.out).to(cmp_.in2))
    _text(d, (cmp_.center[0], cmp_.center[1] - 1.6), "comparator", valign="top")
    r_top, r_bottom = layer.divider
    x_div, y_th = x_cmp - 1.0, cmp_.in1[1]
    d.add(elm.Line().at(cmp_.in1).to((x_div, y_th)))
    d.add(elm.Dot().at((x_div, y_th)))
    d.add(elm.Resistor().at((x_div - 3.5, y_th)).to((x_div, y_th)))
    _text(d, (x_div - 1.75, y_th + 0.4), f"r_top  {format_value(r_top, 'Ω')}",
          fontsize=10, valign="bottom", color=None)
    d.add(elm.Dot(open=True).at((x_div - 3.5, y_th))
          .label(f"VCC\n+{_v(o.supply)}", loc="left", fontsize=9))
    d.add(elm.Resistor().at((x_div, y_th)).down().to((x_div, y_th - 2.6)))
    _text(d, (x_div + 0.45, y_th - 1.3), f"r_bottom\n{format_value(r_bottom, 'Ω')}",
          fontsize=10, halign="left", color=None)
    d.add(elm.Ground())
    _text(d, (x_div - 0.45, y_th - 0.45),
          f"V_th = {_v(layer.v_threshold)}\n= {circuit.threshold:g} \u00b7 V_unit",
          halign="right", valign="top")

    # --- D flip-flop: samples the comparator at the clock edge, a one-clock spike pulse;
    # schemdraw's DFlipFlop draws an unused Q-bar lead, the board's part has none
    ff = d.add(elm.Ic(pins=[elm.IcPin("D", side="left", slot="2/2"),
                            elm.IcPin(">", side="left", slot="1/2", anchorname="CLK"),
                            elm.IcPin("Q", side="right", slot="2/2")], size=(2, 3))
               .right().anchor("D").at((cmp_.out[0] + 1.5, cmp_.out[1])))
    _text(d, (ff.center[0], ff.center[1] + 1.75), "D flip-flop", valign="bottom")
    d.add(elm.Line().at(cmp_.out).to(ff.D))
    x_clk = ff.CLK[0] - 0.7
    d.add(elm.Line().at(ff.CLK).to((x_clk, ff.CLK[1])))
    d.add(elm.Line().at((x_clk, ff.CLK[1])).to((x_clk, ff.CLK[1] - 1.6)))
    d.add(elm.Dot(open=True))
    _text(d, (x_clk, ff.CLK[1] - 1.85), "CLK  (rising edge\nends \u03c6_int)",
          valign="top", color=None)

    # --- the spike: the neuron's lines into the next layer, or an output count
    x_q = ff.Q[0] + 0.8
    d.add(elm.Line().at(ff.Q).to((x_q, ff.Q[1])))
    _text(d, (ff.Q[0] + 0.1, ff.Q[1] - 0.3), f"spike\n{me}_Q", halign="left",
          valign="top", color=None)
    if layer_index == len(circuit.layers) - 1:  # an output neuron: no line, a count
        d.add(elm.Line().at((x_q, ff.Q[1])).to((x_q + 2.0, ff.Q[1])))
        d.add(elm.Dot(open=True).label("output spike\n(counted over T clocks)",
                                       loc="right", fontsize=10))
    else:
        _spike_lines(d, circuit.layers[layer_index + 1].v_ref, layer_index, neuron,
                     (x_q, ff.Q[1]))

    # --- title
    title = (f"layer {layer.name} (L{layer_index + 1}), neuron {neuron}:  "
             f"dt = {_s(circuit.dt)} ({format_value(1 / circuit.dt, 'Hz')}),  "
             f"t_int = {_s(circuit.t_int)},  "
             f"R_unit = {format_value(layer.r_unit, 'Ω')},  "
             f"V_unit = {_v(layer.v_unit)},  V_ref = {_v(layer.v_ref)}")
    _text(d, (x_term - 3.0, y_sw + 2.0), title, fontsize=12, halign="left", color=None)


def _spike_lines(d: schemdraw.Drawing, v_ref: float, layer_index: int, neuron: int,
                 at: tuple[float, float]) -> None:
    """The line gate (the next layer's ``V_ref`` while ``Q · φ_int``) and the inverter."""
    x_q, y_q = at
    # the switch passes the reference; the spike only closes it (a dashed control line)
    y_v = y_q + 2.2
    x_sw = x_q + 1.5
    d.add(elm.Dot(open=True).at((x_sw - 1.0, y_v)).label(
        f"L{layer_index + 2}_VREF\n+{_v(v_ref)}", loc="left", fontsize=9))
    d.add(elm.Line().at((x_sw - 1.0, y_v)).to((x_sw, y_v)))
    sw = d.add(elm.Switch(action="close").right().at((x_sw, y_v)))
    _text(d, (sw.center[0], y_v + 0.6), "line gate", valign="bottom", color=None)
    d.add(elm.Line(ls="--").at((x_q, y_q)).to((sw.center[0], y_q)))
    d.add(elm.Line(ls="--").at((sw.center[0], y_q)).to((sw.center[0], y_v - 0.25)))
    _text(d, (sw.center[0] + 0.2, y_q + 0.25), "closed while\nQ \u00b7 \u03c6_int",
          halign="left", valign="bottom")
    x_p = sw.end[0] + 0.8
    d.add(elm.Line().at(sw.end).to((x_p, y_v)))
    d.add(elm.Dot())
    x_end = x_p + 3.6
    d.add(elm.Line().at((x_p, y_v)).to((x_end, y_v)).color(_INH))
    d.add(elm.Dot(open=True).color(_INH).label(
        f"{line_net(layer_index + 1, neuron, inverted=False)}\n+{_v(v_ref)} / 0",
        loc="right", fontsize=10))
    y_n = y_q - 0.6
    d.add(elm.Line().at((x_p, y_v)).to((x_p, y_n)))
    inv = d.add(logic.Buf().right().at((x_p, y_n)))
    _text(d, (inv.center[0] - 0.05, y_n), "\u22121", fontsize=8, color=None)
    d.add(elm.Line().at(inv.out).to((x_end, y_n)).color(_EXC))
    d.add(elm.Dot(open=True).color(_EXC).label(
        f"{line_net(layer_index + 1, neuron, inverted=True)}\n\u2212{_v(v_ref)} / 0",
        loc="right", fontsize=10))
    _text(d, (x_p - 0.2, y_n - 1.0), "inverter (gain \u22121)\nto the next layer: "
          "inhibitory synapses on\nthe direct line, excitatory on the inverted",
          halign="left", valign="top", fontsize=8)
