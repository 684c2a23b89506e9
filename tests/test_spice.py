"""The SPICE proof of the analog target: ngspice, running the generated netlist of the whole
board, fires exactly the spikes of the hardware twin (the nominal board), and its membranes
follow the twin's recurrence; one neuron's rate curve matches across its whole range.

Networks are tiny (a few neurons, T = 12) so the whole file runs in seconds. Tests that
run ngspice are skipped only when it is not installed (CI installs the Debian package)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from spikeforge.hardware import spice
from spikeforge.hardware.bundle import Bundle
from spikeforge.hardware.circuit import AnalogCircuit, CircuitOptions, design_circuit, draw_boards
from spikeforge.hardware.simulate import encode_inputs, layer_currents
from spikeforge.hardware.spice import (
    SpiceError,
    SpiceOptions,
    compare_with_twin,
    neuron_rate_curve,
    run_ngspice,
    spice_check,
    twin_reference,
    write_netlist,
)
from spikeforge.spec import EncodingSpec, NetworkSpec, NeuronSpec

needs_ngspice = pytest.mark.skipif(
    shutil.which("ngspice") is None,
    reason="ngspice is not installed (Debian package `ngspice`: apt-get install ngspice)")


def _network(sizes=(6, 5, 3), T=12, seed=0, encoding="constant_current", decay=0.9,
             **options) -> tuple[NetworkSpec, AnalogCircuit, np.ndarray]:
    """A small random network built as a circuit, and 3 inputs (pixels or spikes). The
    weights are large enough that some membranes hit the op-amp's swing."""
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(sizes, T, NeuronSpec(decay, 1.0), EncodingSpec(encoding))
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    weights = [rng.normal(0, 2.5 / np.sqrt(i), (o, i)) for i, o in pairs]
    biases = [rng.normal(0, 0.1, o) for o in sizes[1:]]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    circuit, _, _ = design_circuit(spec, weights, biases, names, CircuitOptions(**options))
    x = (rng.random((T, 3, sizes[0])) < 0.4).astype(np.float64) if encoding == "spikes" \
        else rng.random((3, sizes[0]))
    return spec, circuit, x


def _twin_membranes(spec: NetworkSpec, circuit: AnalogCircuit, x: np.ndarray,
                    spikes: list[np.ndarray]) -> list[np.ndarray]:
    """Each layer's membrane U at every step (model units), by the board's recurrence
    ``U = clip(decay V + I)``, ``V = residual U`` after a spike, fed the twin's spikes."""
    boards = draw_boards(circuit, 1, seed=None)
    s = encode_inputs(spec, x)
    out = []
    for layer in range(spec.n_layers):
        b = boards.biases[layer]
        current = layer_currents(s, boards.weights[layer][0], None if b is None else b[0])
        v = np.zeros(current.shape[-2:])
        u_all = np.empty((spec.timesteps, *v.shape))
        for t in range(spec.timesteps):
            i = current if current.ndim == 2 else current[t]
            u = np.clip(boards.decay[layer][0] * v + i, boards.v_low[layer],
                        boards.v_high[layer])
            u_all[t] = u
            v = np.where(spikes[layer][t], boards.residual[layer][0] * u, u)
        out.append(u_all)
        s = spikes[layer]
    return out


# ------------------------------------------------------------------ the netlist itself


def test_netlist_holds_every_part_at_its_value_and_the_clock_is_dt():
    spec, circuit, x = _network()
    text = write_netlist(circuit, spec, x).text
    for li, layer in enumerate(circuit.layers):
        found = {}
        for m in re.finditer(rf"^R{li}_(\d+)_(\d+) s{li}_\1 (\S+) (\S+)$", text, re.M):
            found[int(m[1]), int(m[2])] = (m[3], float(m[4]))
        assert set(found) == set(zip(*np.nonzero(layer.resistance), strict=True))
        for (i, j), (node, ohms) in found.items():
            assert ohms == layer.resistance[i, j]  # the nominal part, to the last digit
            inverted = node.startswith("in") if li == 0 else node.startswith("n")
            assert inverted == (layer.sign[i, j] > 0)  # excitatory: on the inverted line
        for i in np.nonzero(layer.bias_resistance)[0]:
            node, ohms = re.search(rf"^Rb{li}_{i} s{li}_{i} (\S+) (\S+)$", text, re.M).groups()
            assert float(ohms) == layer.bias_resistance[i]
            assert node == (f"bn{li}" if layer.bias_sign[i] > 0 else f"bp{li}")
        top, bottom = re.search(rf"^Rth{li}a vdd th{li} (\S+)$\nRth{li}b th{li} 0 (\S+)$",
                                text, re.M).groups()
        assert (float(top), float(bottom)) == layer.divider
        assert re.search(rf"^Vref{li} vref{li} 0 (\S+)$", text, re.M)[1] == repr(layer.v_ref)
    period = re.search(r"^Vclk clk 0 PULSE\((.*)\)$", text, re.M)[1].split()[-1]
    assert float(period) == circuit.dt
    assert re.search(r"^Rm sum m (\S+)$", text, re.M)[1] == repr(circuit.r_m)
    assert re.search(r"^Cm sum m (\S+)$", text, re.M)[1] == repr(circuit.c_m)
    assert len(re.findall(r"^X\d+_\d+ .* lif$", text, re.M)) == sum(spec.layer_sizes[1:])


def test_bad_inputs_are_refused_by_name():
    spec, circuit, x = _network()
    with pytest.raises(SpiceError, match=r"shape \(n, 6\)"):
        write_netlist(circuit, spec, x[:, :4])
    with pytest.raises(SpiceError, match="saturation"):
        SpiceOptions(saturation="soft")


# ------------------------------------------------------------------------- ngspice


@needs_ngspice
def test_every_spike_and_membrane_equals_the_twin(tmp_path):
    spec, circuit, x = _network()
    netlist = write_netlist(circuit, spec, x, SpiceOptions(record_membranes=True))
    result = run_ngspice(netlist, tmp_path)
    twin = twin_reference(circuit, spec, x, "board")
    for layer, (ours, theirs) in enumerate(zip(result.spikes, twin.spikes, strict=True)):
        np.testing.assert_array_equal(ours, theirs, err_msg=f"layer {layer}")
        assert 0.05 < theirs.mean() < 0.95
    expected = _twin_membranes(spec, circuit, x, twin.spikes)
    for layer, (volts, units) in enumerate(zip(result.membranes, expected, strict=True)):
        spice_units = volts / circuit.layers[layer].v_unit
        np.testing.assert_allclose(spice_units, units, rtol=0, atol=2e-5,
                                   err_msg=f"layer {layer}")
    # the clamp was exercised: some membranes sat at the swing
    swing = [circuit.options.output_swing / layer.v_unit for layer in circuit.layers]
    assert any(np.isclose(u, -s).any() for u, s in zip(expected, swing, strict=True))
    report = compare_with_twin(result, twin)
    assert report["identical_counts"] == report["identical_predictions"] == 3
    assert report["differing_spikes"] == [0, 0]


@needs_ngspice
@pytest.mark.parametrize(("encoding", "decay", "r_on"),
                         [("spikes", 0.8, 2000.0), ("constant_current", 0.9, 0.0)])
def test_spike_inputs_an_incomplete_reset_and_an_ideal_switch(tmp_path, encoding, decay, r_on):
    """A 2 kΩ switch leaves ~60 % of the membrane after a reset; 0 Ω leaves nothing."""
    spec, circuit, x = _network((5, 4, 3), encoding=encoding, decay=decay, seed=1,
                                switch_on_resistance=r_on)
    result = run_ngspice(write_netlist(circuit, spec, x), tmp_path)
    twin = twin_reference(circuit, spec, x, "board")
    for layer, (ours, theirs) in enumerate(zip(result.spikes, twin.spikes, strict=True)):
        np.testing.assert_array_equal(ours, theirs, err_msg=f"layer {layer}")


@needs_ngspice
def test_rate_curve_matches_the_twin_from_silence_to_saturation(tmp_path):
    _, circuit, _ = _network((3, 2), T=5)
    layer = circuit.layers[0]
    swing = circuit.options.output_swing / layer.v_unit
    currents = np.array([-1.2 * swing, 0.05, 0.12, 0.18, 0.3, 0.45, 0.6, 0.8, 0.97, 1.05,
                         1.1 * swing])
    curve = neuron_rate_curve(circuit, 0, currents, clocks=40, workdir=tmp_path)
    assert curve["identical"], curve
    rates = np.array(curve["spice_rate"])
    assert rates[0] == rates[1] == 0 and rates[-1] == 1 and 0 < rates[4] < 1


@needs_ngspice
def test_spice_check_of_a_bundle_reports_agreement(tmp_path):
    spec, circuit, x = _network()
    ideal = draw_boards(circuit, 1, ideal=True)
    bundle = Bundle(spec, "analog", [w[0] for w in ideal.weights],
                    [b[0] for b in ideal.biases], [layer.name for layer in circuit.layers],
                    {"analog": {"circuit": circuit.to_json()}}, circuit.arrays())
    report = spice_check(bundle, None, x, labels=np.array([0, 1, 2]), workdir=tmp_path)
    assert report["ok"]
    for against in ("board", "ideal"):
        assert report[against]["identical_predictions"] == 3
        assert set(report[against]["accuracy"]) == {"spice", "twin"}
    assert (tmp_path / "board.cir").is_file() and (tmp_path / "ngspice.log").is_file()


@needs_ngspice
def test_without_a_clamp_the_integrator_winds_up_past_the_swing(tmp_path):
    """Why the clamp is the default: with only the op-amp's rail, a neuron driven into
    negative saturation charges C_m beyond the swing (the twin clips at it), and recovers
    later than the twin (in the second layer, whose input spikes come and go)."""
    spec, circuit, x = _network(seed=1)
    options = SpiceOptions(saturation="rail", record_membranes=True)
    netlist = write_netlist(circuit, spec, x, options)
    assert "Bclamp" not in netlist.text
    result = run_ngspice(netlist, tmp_path)
    twin = twin_reference(circuit, spec, x, "board")
    expected = _twin_membranes(spec, circuit, x, twin.spikes)
    errors = [np.abs(v / layer.v_unit - u).max()
              for v, u, layer in zip(result.membranes, expected, circuit.layers, strict=True)]
    assert errors[0] < 2e-5 and errors[1] > 0.05


# ------------------------------------------------------------------ errors that help


def test_missing_ngspice_names_the_package(monkeypatch):
    spec, circuit, x = _network()
    monkeypatch.setattr(spice.shutil, "which", lambda name: None)
    with pytest.raises(SpiceError, match="apt-get install ngspice"):
        run_ngspice(write_netlist(circuit, spec, x))


@needs_ngspice
def test_an_ngspice_failure_shows_its_log(tmp_path):
    spec, circuit, x = _network()
    netlist = write_netlist(circuit, spec, x)
    netlist.text = netlist.text.replace(".subckt lif ", ".subckt lif_renamed ")
    with pytest.raises(SpiceError, match="ngspice failed") as e:
        run_ngspice(netlist, tmp_path)
    assert "lif" in str(e.value) and str(tmp_path) in str(e.value)


@needs_ngspice
def test_a_run_past_its_timeout_is_stopped(tmp_path):
    spec, circuit, x = _network()
    netlist = write_netlist(circuit, spec, x, SpiceOptions(timeout=0.01))
    with pytest.raises(SpiceError, match="did not finish within"):
        run_ngspice(netlist, tmp_path)
