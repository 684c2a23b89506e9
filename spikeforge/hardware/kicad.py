"""The analog board as a KiCad netlist (``.net``), ready to import into a PCB layout.

:func:`kicad_netlist` writes every part of the board and every connection in KiCad's
s-expression netlist format, version D, the one Eeschema 5 writes and Pcbnew of every
later KiCad still reads (``File > Import > Netlist``)::

    (export (version "D") (design ...) (components (comp ...) ...)
            (libparts (libpart ...) ...) (nets (net (code "1") (name "GND") (node ...)) ...))

Why not skidl: skidl 3.0 does build such a netlist offline from ``Part(tool=SKIDL, ...)``
templates, but as a library call it misbehaves (measured on a 1,000-resistor board): its
import prints a dozen warnings about missing KiCad symbol and footprint tables, every part
without a hand-made tag logs another, it writes ``<script>.log``, ``.erc`` and
``<script>_sklib.py`` into the caller's working directory, and the netlist carries the
wall-clock date and random tags, so two exports of one bundle differ. It also needs about
2 ms per part (minutes and ~80 MB of text for the 100k resistors of a 784-128-10 board)
and pulls in a dozen packages. The format is small and documented, so it is written here
directly: deterministic (same circuit, same bytes), no dependency; a 784-128-10 board
(98k synapse resistors) takes about 2 s and 38 MB.

What the netlist holds: part for part the
:func:`~spikeforge.hardware.circuit.bill_of_materials`, plus connectors, except that every
layer with biases has a bias line of its own (each layer's lines have their own ``V_ref``):

- synapse and bias resistors ``R1 .. RN`` numbered exactly as
  :func:`~spikeforge.hardware.circuit.placement_rows` (``ref`` column), pin 1 on the
  presynaptic line, pin 2 on the summing node; then each neuron's leak resistor R_m, then
  each layer's threshold divider (``r_top`` from VCC, ``r_bottom`` to GND);
- per neuron: C_m, the integrating op-amp, two zeners back to back across C_m (the
  anti-windup clamp), the reset switch across C_m, the comparator
  and the D flip-flop; per presynaptic line (inputs, hidden neurons, the bias line of each
  layer with biases): the line gate and the inverter that makes the negated copy; per
  layer the voltage reference of its input lines (``V_ref`` is a layer's own);
- connectors ``J``: power and clock, the inputs, the output spikes (headers of at most 40
  pins).

Net names (indices from 0, as in placement.csv; layer ``l`` is ``circuit.layers[l - 1]``):

==================  ===========================================================
``IN12``            input 12 as the front end delivers it (``x · V_ref`` of layer 1)
``IN12_P/_N``       its gated direct line (0..+V_ref) and the inverted copy (0..-V_ref)
``L1N5_P/_N``       the same for neuron 5 of layer 1 (the first hidden layer), at layer 2's
                    ``V_ref``
``L1_BIAS_P/_N``    layer 1's always-on bias line (drives in every integration phase)
``L1_VREF``         layer 1's reference: the amplitude of the lines into layer 1
``L1N5_SUM``        summing node (op-amp inverting input, a virtual ground)
``L1N5_VM``         membrane (op-amp output); ``L1N5_CMP`` comparator output
``L1N5_Q``          flip-flop output: the spike, one clock long
``L1_VTH``          the layer's threshold, from its divider on VCC
``VCC/VEE/GND``     the ±supply rails and ground
``CLK``             the flip-flops' clock (rising edge at the end of the integration phase)
``PHI_RST/PHI_INT`` the two clock phases (reset, integration)
==================  ===========================================================

The switches close on the AND of two controls (``IN`` and ``EN``): the line gate of a
hidden neuron on ``Q · PHI_INT``, of an input or the bias line on ``PHI_INT`` alone (``IN``
tied to VCC), the reset switch on ``Q · PHI_RST``. A line gate is a changeover: ``COM``
follows ``NO`` (the reference, or the input) while closed and ``NC`` (ground) otherwise.

Symbols and footprints are generic (library ``spikeforge``): the pin numbers are this
module's, with the footprint of a common package for each function; check them against the
parts chosen for the build before routing (the BOM names functions, not part numbers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from spikeforge.hardware.circuit import (
    AnalogCircuit,
    AnalogError,
    placement_rows,
)
from spikeforge.hardware.components import format_value
from spikeforge.io import write_text

#: KiCad library footprints per part kind (override through ``kicad_netlist(footprints=)``)
FOOTPRINTS: dict[str, str] = {
    "R": "Resistor_SMD:R_0805_2012Metric",
    "C": "Capacitor_SMD:C_0805_2012Metric",
    "OPAMP": "Package_TO_SOT_SMD:SOT-23-5",
    "COMPARATOR": "Package_TO_SOT_SMD:SOT-23-6",
    "SW_GATE": "Package_TO_SOT_SMD:SOT-23-8",
    "SW_RESET": "Package_TO_SOT_SMD:SOT-23-8",
    "DFF": "Package_TO_SOT_SMD:SOT-23-5",
    "INVERTER": "Package_TO_SOT_SMD:SOT-23-5",
    "VREF": "Package_TO_SOT_SMD:SOT-23",
    "D_ZENER": "Diode_SMD:D_SOD-323",
}

#: pins per connector header: long headers are split so they exist as real parts
HEADER_PINS = 40

LIBRARY = "spikeforge"


@dataclass(frozen=True)
class Symbol:
    """A generic schematic symbol: its pins as ``(number, name, electrical type)``."""

    name: str
    description: str
    pins: tuple[tuple[str, str, str], ...]

    def keys(self) -> dict[str, str]:
        """Pin number by the key a connection names it with: its name, or its number where
        it has none (``~``: the two ends of a resistor)."""
        return {num if name == "~" else name: num for num, name, _ in self.pins}


_PASSIVE = (("1", "~", "passive"), ("2", "~", "passive"))
SYMBOLS: dict[str, Symbol] = {s.name: s for s in (
    Symbol("R", "Resistor", _PASSIVE),
    Symbol("C", "Capacitor (C0G or film: the membrane)", _PASSIVE),
    Symbol("OPAMP", "Op-amp, FET input (the leaky integrator)",
           (("1", "OUT", "output"), ("2", "V-", "power_in"), ("3", "+", "input"),
            ("4", "-", "input"), ("5", "V+", "power_in"))),
    Symbol("COMPARATOR", "Comparator, output referred to GND (logic levels)",
           (("1", "OUT", "output"), ("2", "V-", "power_in"), ("3", "+", "input"),
            ("4", "-", "input"), ("5", "GND", "power_in"), ("6", "V+", "power_in"))),
    Symbol("SW_GATE", "Analog changeover switch: COM-NO while IN and EN, else COM-NC",
           (("1", "COM", "passive"), ("2", "NO", "passive"), ("3", "NC", "passive"),
            ("4", "IN", "input"), ("5", "EN", "input"), ("6", "V+", "power_in"),
            ("7", "V-", "power_in"), ("8", "GND", "power_in"))),
    Symbol("SW_RESET", "Analog switch: A-B closed while IN and EN (the membrane reset)",
           (("1", "A", "passive"), ("2", "B", "passive"), ("3", "IN", "input"),
            ("4", "EN", "input"), ("5", "V+", "power_in"), ("6", "V-", "power_in"),
            ("7", "GND", "power_in"))),
    Symbol("DFF", "D flip-flop, rising edge (pinout of a 74LVC1G79)",
           (("1", "D", "input"), ("2", "CLK", "input"), ("3", "GND", "power_in"),
            ("4", "Q", "output"), ("5", "VCC", "power_in"))),
    Symbol("INVERTER", "Analog inverter, gain -1 (the negated spike line)",
           (("1", "OUT", "output"), ("2", "V-", "power_in"), ("3", "GND", "power_in"),
            ("4", "IN", "input"), ("5", "V+", "power_in"))),
    Symbol("D_ZENER", "Zener diode (half of the anti-windup clamp across C_m)",
           (("1", "K", "passive"), ("2", "A", "passive"))),
    Symbol("VREF", "Voltage reference (the spike amplitude V_ref)",
           (("1", "IN", "power_in"), ("2", "OUT", "power_out"), ("3", "GND", "power_in"))),
)}


def line_net(layer_index: int, pre: int | str, inverted: bool) -> str:
    """Net of a presynaptic line of ``circuit.layers[layer_index]``: input ``pre`` (first
    layer), neuron ``pre`` of the previous layer, or ``"bias"``; ``inverted`` picks the
    negated copy (``_N``, where excitatory synapses hang) over the direct line (``_P``)."""
    suffix = "_N" if inverted else "_P"
    if pre == "bias":
        return f"L{layer_index + 1}_BIAS{suffix}"
    if layer_index == 0:
        return f"IN{pre}{suffix}"
    return f"{neuron_net(layer_index - 1, int(pre))}{suffix}"


def neuron_net(layer_index: int, neuron: int) -> str:
    """Net-name stem of a neuron: ``L<layer_index + 1>N<neuron>``, e.g. ``L1N5``."""
    return f"L{layer_index + 1}N{neuron}"


@dataclass
class _Comp:
    ref: str
    symbol: str
    value: str
    footprint: str
    fields: tuple[tuple[str, str], ...]
    pins: dict[str, str]  # pin key (Symbol.keys: a name, or a number) -> net


class _Board:
    """Components in designator order and the nets they touch, in order of first use."""

    def __init__(self, footprints: Mapping[str, str]) -> None:
        self.footprints = footprints
        self.comps: list[_Comp] = []
        self.counters: dict[str, int] = {}

    def add(self, prefix: str, symbol: str, value: str, pins: Mapping[str, str],
            fields: Iterable[tuple[str, str]] = (), ref: str | None = None,
            footprint: str | None = None) -> str:
        if ref is None:
            n = self.counters.get(prefix, 0) + 1
            self.counters[prefix] = n
            ref = f"{prefix}{n}"
        sym = SYMBOLS.get(symbol)
        if sym is not None and set(pins) != set(sym.keys()):
            raise AssertionError(f"{ref}: pins {sorted(pins)} do not match {symbol}")
        self.comps.append(_Comp(ref, symbol, value,
                                footprint if footprint is not None
                                else self.footprints[symbol], tuple(fields), dict(pins)))
        return ref


def kicad_netlist(circuit: AnalogCircuit, n_inputs: int, path: str | os.PathLike,
                  *, footprints: Mapping[str, str] | None = None) -> Path:
    """Write the whole board of ``circuit`` as a KiCad netlist (version D) to ``path``.

    ``n_inputs`` is the number of input lines (the first layer's fan-in). ``footprints``
    overrides entries of :data:`FOOTPRINTS` by symbol name (``"R"``, ``"C"``, ...).
    The file is written atomically; returns the path.
    """
    if not circuit.layers:
        raise AnalogError("the circuit has no layers")
    fan_in = circuit.layers[0].resistance.shape[1]
    if n_inputs != fan_in:
        raise AnalogError(f"n_inputs = {n_inputs}, but the first layer "
                          f"{circuit.layers[0].name} has {fan_in} inputs")
    board = _build(circuit, n_inputs, {**FOOTPRINTS, **(footprints or {})})
    path = Path(path)
    write_text(path, _render(board, source=path.name))
    return path


def _build(circuit: AnalogCircuit, n_inputs: int, footprints: Mapping[str, str]) -> _Board:
    """Every part, in designator order: synapse/bias resistors first (placement order)."""
    o = circuit.options
    board = _Board(footprints)
    res_tol = f"{o.resistor_tolerance:.0%}"
    cap_tol = f"{o.capacitor_tolerance:.0%}"
    supplies = {"V+": "VCC", "V-": "VEE", "GND": "GND"}

    # synapse and bias resistors: the placement table's designators, verbatim
    for row in placement_rows(circuit):
        k = next(i for i, layer in enumerate(circuit.layers) if layer.name == row["layer"])
        line = line_net(k, row["pre"], inverted=row["line"] == "inverted")
        role = (f"bias {row['layer']}[{row['post']}]" if row["pre"] == "bias" else
                f"synapse {row['layer']}[{row['post']},{row['pre']}]")
        board.add("R", "R", row["value"], {"1": line, "2": f"{neuron_net(k, row['post'])}_SUM"},
                  (("Tolerance", res_tol), ("Role", f"{role} {row['sign']} {row['line']}")),
                  ref=row["ref"])
    board.counters["R"] = len(board.comps)

    # leak resistors, then the threshold dividers
    r_m = format_value(circuit.r_m)
    for k, layer in enumerate(circuit.layers):
        for i in range(layer.resistance.shape[0]):
            me = neuron_net(k, i)
            board.add("R", "R", r_m, {"1": f"{me}_SUM", "2": f"{me}_VM"},
                      (("Tolerance", res_tol), ("Role", f"leak R_m {me}")))
    for k, layer in enumerate(circuit.layers):
        vth = f"L{k + 1}_VTH"
        r_top, r_bottom = layer.divider
        board.add("R", "R", format_value(r_top), {"1": "VCC", "2": vth},
                  (("Tolerance", res_tol), ("Role", f"threshold divider r_top L{k + 1}")))
        board.add("R", "R", format_value(r_bottom), {"1": vth, "2": "GND"},
                  (("Tolerance", res_tol), ("Role", f"threshold divider r_bottom L{k + 1}")))

    # the references (one per layer: its input lines' amplitude), then the line gates and
    # inverters of the inputs and of each layer's bias line
    for k, layer in enumerate(circuit.layers):
        board.add("U", "VREF", f"{layer.v_ref:.4g} V",
                  {"IN": "VCC", "OUT": f"L{k + 1}_VREF", "GND": "GND"},
                  (("Tolerance", f"{o.reference_tolerance:.1%}"),
                   ("Role", f"line amplitude V_ref L{k + 1}")))

    def line_pair(stem: str, source: str, select: str) -> None:
        board.add("U", "SW_GATE", "", {"COM": f"{stem}_P", "NO": source, "NC": "GND",
                                       "IN": select, "EN": "PHI_INT", **supplies},
                  (("Role", f"line gate {stem}"),))
        board.add("U", "INVERTER", "gain -1", {"IN": f"{stem}_P", "OUT": f"{stem}_N",
                                               **supplies},
                  (("Role", f"inverted line {stem}_N"),))

    for j in range(n_inputs):
        line_pair(f"IN{j}", f"IN{j}", "VCC")
    for k, layer in enumerate(circuit.layers):
        if layer.bias_resistance is not None:
            line_pair(f"L{k + 1}_BIAS", f"L{k + 1}_VREF", "VCC")

    # every neuron: C_m, integrator, clamp, reset switch, comparator, flip-flop (+ its line)
    c_m = format_value(circuit.c_m, "F")
    last = len(circuit.layers) - 1
    for k, layer in enumerate(circuit.layers):
        for i in range(layer.resistance.shape[0]):
            me = neuron_net(k, i)
            board.add("C", "C", c_m, {"1": f"{me}_SUM", "2": f"{me}_VM"},
                      (("Tolerance", cap_tol), ("Role", f"membrane C_m {me}")))
            board.add("U", "OPAMP", "FET input", {"-": f"{me}_SUM", "+": "GND",
                                                  "OUT": f"{me}_VM", "V+": "VCC",
                                                  "V-": "VEE"},
                      (("Role", f"leaky integrator {me}"),))
            # back-to-back zeners across C_m: the membrane stops at the swing, no windup
            zener = f"{o.output_swing:g} V"
            board.add("D", "D_ZENER", zener, {"A": f"{me}_SUM", "K": f"{me}_CLAMP"},
                      (("Role", f"anti-windup clamp {me}"),))
            board.add("D", "D_ZENER", zener, {"A": f"{me}_VM", "K": f"{me}_CLAMP"},
                      (("Role", f"anti-windup clamp {me}"),))
            board.add("U", "SW_RESET", f"R_on {o.switch_on_resistance:g} Ω",
                      {"A": f"{me}_SUM", "B": f"{me}_VM", "IN": f"{me}_Q", "EN": "PHI_RST",
                       **supplies}, (("Role", f"membrane reset {me}"),))
            board.add("U", "COMPARATOR", f"offset {o.comparator_offset * 1e3:g} mV",
                      {"+": f"{me}_VM", "-": f"L{k + 1}_VTH", "OUT": f"{me}_CMP",
                       **supplies}, (("Role", f"threshold {me}"),))
            board.add("U", "DFF", "", {"D": f"{me}_CMP", "CLK": "CLK", "Q": f"{me}_Q",
                                       "VCC": "VCC", "GND": "GND"},
                      (("Role", f"spike register {me}"),))
            if k < last:
                line_pair(me, f"L{k + 2}_VREF", f"{me}_Q")  # the next layer's V_ref

    # connectors: power and clock, the inputs, the output spikes
    # L1_VREF goes out too: the front end scales the inputs to it
    _header(board, "power and clock",
            ["VCC", "VEE", "GND", "CLK", "PHI_RST", "PHI_INT", "L1_VREF"])
    _header(board, "inputs", [f"IN{j}" for j in range(n_inputs)])
    _header(board, "output spikes",
            [f"{neuron_net(last, i)}_Q" for i in range(circuit.layers[-1].resistance.shape[0])])
    return board


def _header(board: _Board, role: str, nets: list[str]) -> None:
    """Pin headers of at most :data:`HEADER_PINS` pins carrying ``nets`` in order."""
    for start in range(0, len(nets), HEADER_PINS):
        chunk = nets[start:start + HEADER_PINS]
        n = len(chunk)
        board.add("J", f"CONN_1x{n:02d}", f"{role} {start + 1}-{start + n}"
                  if len(nets) > HEADER_PINS else role,
                  {f"Pin_{p + 1}": net for p, net in enumerate(chunk)}, (("Role", role),),
                  footprint=f"Connector_PinHeader_2.54mm:PinHeader_1x{n:02d}_P2.54mm_Vertical")


def _q(text: str) -> str:
    """A quoted s-expression string (KiCad's lexer: backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _symbol_of(name: str) -> Symbol:
    if name in SYMBOLS:
        return SYMBOLS[name]
    n = int(name.split("x")[1])  # a connector header CONN_1xNN
    return Symbol(name, f"Pin header, 1x{n}",
                  tuple((str(p), f"Pin_{p}", "passive") for p in range(1, n + 1)))


def _render(board: _Board, source: str) -> str:
    from spikeforge import __version__

    out = ['(export (version "D")',
           f'  (design (source {_q(source)}) (tool {_q(f"spikeforge {__version__}")}))',
           "  (components"]
    used: dict[str, Symbol] = {}
    nets: dict[str, list[tuple[str, str]]] = {}
    for n, c in enumerate(board.comps, 1):
        sym = used.get(c.symbol) or used.setdefault(c.symbol, _symbol_of(c.symbol))
        fields = "".join(f" (field (name {_q(k)}) {_q(v)})" for k, v in c.fields)
        out.append(f"    (comp (ref {_q(c.ref)}) (value {_q(c.value or '~')})"
                   f" (footprint {_q(c.footprint)})"
                   + (f" (fields{fields})" if fields else "")
                   + f" (libsource (lib {_q(LIBRARY)}) (part {_q(c.symbol)})"
                   f" (description {_q(sym.description)}))"
                   f' (sheetpath (names "/") (tstamps "/")) (tstamp "{n:08X}"))')
        numbers = sym.keys()
        for key, net in c.pins.items():
            nets.setdefault(net, []).append((c.ref, numbers[key]))
    out.append("  )")
    out.append("  (libparts")
    for sym in used.values():
        pins = " ".join(f"(pin (num {_q(num)}) (name {_q(name)}) (type {_q(kind)}))"
                        for num, name, kind in sym.pins)
        out.append(f"    (libpart (lib {_q(LIBRARY)}) (part {_q(sym.name)})"
                   f" (description {_q(sym.description)})"
                   f" (fields (field (name \"Reference\") {_q(_prefix(sym.name))})"
                   f" (field (name \"Value\") {_q(sym.name)}))"
                   f" (pins {pins}))")
    out.append("  )")
    out.append("  (nets")
    for code, (name, nodes) in enumerate(nets.items(), 1):
        body = " ".join(f"(node (ref {_q(ref)}) (pin {_q(pin)}))" for ref, pin in nodes)
        out.append(f'    (net (code "{code}") (name {_q(name)}) {body})')
    out.append("  )")
    out.append(")")
    return "\n".join(out) + "\n"


def _prefix(symbol: str) -> str:
    return {"R": "R", "C": "C"}.get(symbol, "J" if symbol.startswith("CONN") else "U")
