"""Builder's drawings of the analog board: the neuron schematic and the KiCad netlist."""

from __future__ import annotations

import math
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spikeforge.hardware.circuit import (
    AnalogCircuit,
    AnalogError,
    bill_of_materials,
    design_circuit,
    placement_rows,
)
from spikeforge.hardware.components import format_value
from spikeforge.hardware.drawings import kicad_netlist, neuron_schematic, pick_neuron
from spikeforge.spec import NetworkSpec

# ------------------------------------------------------------------------------ helpers


def _circuit(sizes: tuple[int, ...] = (16, 8, 4), bias: bool = True, seed: int = 0,
             density: float = 1.0) -> AnalogCircuit:
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(sizes, timesteps=25, bias=bias)
    weights = [rng.normal(0, 2.0 / math.sqrt(i), (o, i)) * (rng.random((o, i)) < density)
               for o, i in spec.weight_shapes]
    biases = [rng.normal(0, 0.1, o) if bias else None for o, _ in spec.weight_shapes]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    return design_circuit(spec, weights, biases, names)[0]


@pytest.fixture(scope="module")
def circuit() -> AnalogCircuit:
    return _circuit()


def _sexp(text: str) -> list[Any]:
    """Parse one s-expression (KiCad's lexer: quoted strings with backslash escapes);
    fail on unbalanced parentheses or anything after the expression."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[()]|[^\s()"]+', text)
    assert "".join(tokens).count('"') % 2 == 0
    stack: list[list[Any]] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            assert len(stack) > 1, "unbalanced ')'"
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(re.sub(r"\\(.)", r"\1", tok[1:-1]) if tok[0] == '"' else tok)
    assert len(stack) == 1, "unbalanced '('"
    assert len(stack[0]) == 1, "more than one top-level expression"
    return stack[0][0]


def _find(node: list[Any], key: str) -> list[Any]:
    """The child lists of ``node`` whose head is ``key``."""
    return [c for c in node[1:] if isinstance(c, list) and c and c[0] == key]


def _one(node: list[Any], key: str) -> Any:
    found = _find(node, key)
    assert len(found) == 1, (key, node[:3])
    return found[0][1]


def _netlist(circuit: AnalogCircuit, path: Path) -> dict[str, Any]:
    n_inputs = circuit.layers[0].resistance.shape[1]
    kicad_netlist(circuit, n_inputs, path)
    tree = _sexp(path.read_text())
    assert tree[0] == "export" and _one(tree, "version") == "D"
    comps = {}
    for comp in _find(_find(tree, "components")[0], "comp"):
        ref = _one(comp, "ref")
        assert ref not in comps, f"duplicate {ref}"
        lib = _find(comp, "libsource")[0]
        fields = {f[1][1]: f[2] for f in _find(_find(comp, "fields")[0], "field")}
        comps[ref] = {"value": _one(comp, "value"), "footprint": _one(comp, "footprint"),
                      "part": _one(lib, "part"), "fields": fields}
    libparts = {}
    for lp in _find(_find(tree, "libparts")[0], "libpart"):
        pins = [_one(p, "num") for p in _find(_find(lp, "pins")[0], "pin")]
        libparts[_one(lp, "part")] = pins
    pin_net: dict[tuple[str, str], str] = {}
    for net in _find(_find(tree, "nets")[0], "net"):
        name = _one(net, "name")
        for node in _find(net, "node"):
            key = (_one(node, "ref"), _one(node, "pin"))
            assert key not in pin_net, f"{key} in two nets"
            pin_net[key] = name
    return {"comps": comps, "libparts": libparts, "pin_net": pin_net}


def _expected_line(layer_index: int, pre: int | str, line: str) -> str:
    """The net naming rule, restated: IN<j>, L<l>N<i> (layers from 1), L<l>_BIAS."""
    suffix = "_N" if line == "inverted" else "_P"
    if pre == "bias":
        return f"L{layer_index + 1}_BIAS{suffix}"
    return (f"IN{pre}" if layer_index == 0 else f"L{layer_index}N{pre}") + suffix


# -------------------------------------------------------------------------- schematic


def test_schematic_svg_is_valid_and_carries_the_neurons_real_parts(circuit, tmp_path):
    path = neuron_schematic(circuit, 0, tmp_path / "neuron.svg")
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = "\n".join("".join(e.itertext()) for e in root.iter()
                     if e.tag.endswith("text"))
    layer = circuit.layers[0]
    neuron = pick_neuron(circuit, 0)
    for value in (format_value(circuit.r_m, "Ω"), format_value(circuit.c_m, "F"),
                  format_value(layer.divider[0], "Ω"), format_value(layer.divider[1], "Ω")):
        assert value in text
    assert f"{layer.v_threshold:.3g}" in text
    # every drawn synapse is labelled with its placement-table designator and value
    rows = [r for r in placement_rows(circuit) if r["layer"] == layer.name
            and r["post"] == neuron]
    drawn = [r for r in rows if re.search(rf"\b{r['ref']}\b", text)]
    assert len(drawn) >= 3
    for r in drawn:
        assert f"{r['ref']}  {format_value(r['ohms'], 'Ω')}" in text
    assert {r["line"] for r in drawn} == {"inverted", "direct"}
    assert any(r["pre"] == "bias" for r in drawn)
    assert f"L1N{neuron}_P" in text and f"L1N{neuron}_N" in text
    assert [p.name for p in tmp_path.iterdir()] == ["neuron.svg"]  # no temporary left


def test_schematic_png_renders_headless(circuit, tmp_path):
    import matplotlib.image

    path = neuron_schematic(circuit, len(circuit.layers) - 1, tmp_path / "out.png",
                            neuron=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 800
    assert image[..., :3].min() < 0.2 and image[..., :3].mean() > 0.8  # ink on white


def test_schematic_refuses_what_it_cannot_draw(circuit, tmp_path):
    with pytest.raises(AnalogError, match="svg or .png"):
        neuron_schematic(circuit, 0, tmp_path / "neuron.pdf")
    with pytest.raises(AnalogError, match="layers 0..1"):
        neuron_schematic(circuit, 2, tmp_path / "neuron.svg")
    with pytest.raises(AnalogError, match="neurons 0..7"):
        neuron_schematic(circuit, 0, tmp_path / "neuron.svg", neuron=8)


def test_schematic_of_a_neuron_without_parts(tmp_path):
    rng = np.random.default_rng(1)
    spec = NetworkSpec((6, 3, 2), timesteps=25, bias=False)
    weights = [rng.normal(0, 1.0, (3, 6)), rng.normal(0, 1.0, (2, 3))]
    weights[0][1] = 0.0  # neuron 1 of the first layer has no synapse left
    circuit = design_circuit(spec, weights, [None, None], ["a", "b"])[0]
    path = neuron_schematic(circuit, 0, tmp_path / "n.svg", neuron=1)
    assert "all pruned" in path.read_text()


# ---------------------------------------------------------------------------- netlist


def test_netlist_has_every_placement_resistor_on_its_line_and_summing_node(circuit,
                                                                           tmp_path):
    net = _netlist(circuit, tmp_path / "board.net")
    comps, pin_net = net["comps"], net["pin_net"]
    layer_of = {layer.name: k for k, layer in enumerate(circuit.layers)}
    rows = placement_rows(circuit)
    assert [f"R{n}" for n in range(1, len(rows) + 1)] == [r["ref"] for r in rows]
    for r in rows:
        comp = comps[r["ref"]]
        assert comp["value"] == r["value"]
        assert comp["footprint"] == "Resistor_SMD:R_0805_2012Metric"
        k = layer_of[r["layer"]]
        assert pin_net[(r["ref"], "1")] == _expected_line(k, r["pre"], r["line"])
        assert pin_net[(r["ref"], "2")] == f"L{k + 1}N{r['post']}_SUM"


def test_netlist_every_pin_is_in_exactly_one_net(circuit, tmp_path):
    net = _netlist(circuit, tmp_path / "board.net")
    expected = {(ref, pin) for ref, c in net["comps"].items()
                for pin in net["libparts"][c["part"]]}
    assert set(net["pin_net"]) == expected  # no pin left open, no node on a missing pin
    # every net joins at least two pins, but for a copy of a line that no synapse uses
    # (an inverted line whose neuron only inhibits, say: the BOM still counts its inverter)
    sizes = Counter(net["pin_net"].values())
    lonely = [n for n, s in sizes.items() if s < 2]
    assert all(re.fullmatch(r"(IN\d+|L\d+N\d+|L\d+_BIAS)_[PN]", n) for n in lonely), lonely


def test_netlist_parts_match_the_bill_of_materials(circuit, tmp_path):
    net = _netlist(circuit, tmp_path / "board.net")
    n_inputs = circuit.layers[0].resistance.shape[1]
    bom = Counter()
    for row in bill_of_materials(circuit, n_inputs):
        bom[row["role"].split(" (")[0]] += row["count"]
    parts = Counter(c["part"] for c in net["comps"].values())
    n_neurons = sum(layer.resistance.shape[0] for layer in circuit.layers)
    resistors = sum(bom[r] for r in ("synapse / bias", "threshold divider", "leak R_m"))
    assert parts["R"] == resistors
    assert parts["C"] == bom["membrane C_m"] == n_neurons
    assert parts["OPAMP"] == bom["leaky integrator"]
    assert parts["D_ZENER"] == bom["anti-windup clamp across C_m"] == 2 * n_neurons
    assert parts["COMPARATOR"] == bom["threshold"]
    assert parts["SW_RESET"] == bom["membrane reset"]
    assert parts["DFF"] == bom["spike register"]
    assert parts["VREF"] == bom["line amplitude V_ref"] == len(circuit.layers)
    # one gate and one inverter per input and hidden neuron, and one bias line per layer
    # (each layer's lines have their own V_ref, so the bias lines cannot be shared)
    lines = n_inputs + sum(layer.resistance.shape[0] for layer in circuit.layers[:-1])
    assert parts["SW_GATE"] == parts["INVERTER"] == lines + len(circuit.layers)


def test_netlist_without_bias_and_sparse(tmp_path):
    circuit = _circuit((12, 6, 3), bias=False, density=0.4, seed=3)
    net = _netlist(circuit, tmp_path / "board.net")
    assert not any("BIAS" in name for name in net["pin_net"].values())
    rows = placement_rows(circuit)
    assert sum(c["part"] == "R" for c in net["comps"].values()) == len(rows) + 6 + 3 + 4


def test_netlist_is_deterministic_and_checks_its_inputs(circuit, tmp_path):
    a, b = tmp_path / "a" / "board.net", tmp_path / "b" / "board.net"
    kicad_netlist(circuit, 16, a)
    kicad_netlist(circuit, 16, b)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(AnalogError, match="16 inputs"):
        kicad_netlist(circuit, 15, a)


def test_netlist_of_a_thousand_resistor_board_takes_seconds(tmp_path):
    circuit = _circuit((64, 16, 10))
    n = len(placement_rows(circuit))
    assert 1000 <= n <= 1300
    start = time.perf_counter()
    net = _netlist(circuit, tmp_path / "board.net")
    assert time.perf_counter() - start < 10
    assert sum(c["part"] == "R" for c in net["comps"].values()) > n
