"""The analog target: weights become real resistors, the twin runs drawn boards, and the
Monte Carlo tells what a board of real parts scores."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.circuit import (
    AnalogError,
    CircuitOptions,
    design_circuit,
    draw_boards,
    part_summary,
    placement_rows,
)
from spikeforge.hardware.components import E_SERIES, layer_levels, snap_magnitudes
from spikeforge.hardware.export import export
from spikeforge.hardware.simulate import monte_carlo, run_board, run_boards, run_twin
from spikeforge.spec import NetworkSpec, NeuronSpec


def _network(seed: int = 0, sizes: tuple[int, ...] = (64, 32, 10)):
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(sizes, timesteps=25)
    weights = [rng.normal(0, 2.0 / math.sqrt(i), (o, i)) for o, i in spec.weight_shapes]
    biases = [rng.normal(0, 0.05, o) for o, _ in spec.weight_shapes]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    return spec, weights, biases, names, rng.uniform(0, 1, (300, sizes[0]))


def _is_series_value(r: float, series: str) -> bool:
    mantissa = r / 10 ** math.floor(math.log10(r) + 1e-12)
    return any(math.isclose(mantissa, m, rel_tol=1e-9) for m in E_SERIES[series])


@pytest.mark.parametrize("series", ["E12", "E24", "E96"])
def test_every_synapse_is_one_series_resistor_in_range(series):
    spec, weights, biases, names, _ = _network()
    options = CircuitOptions(series=series, r_min=10e3, r_max=1e6)
    circuit, realised, _ = design_circuit(spec, weights, biases, names, options)
    for layer, w, w_real in zip(circuit.layers, weights, realised, strict=True):
        r = layer.resistance[layer.resistance > 0]
        assert r.min() >= 10e3 and r.max() <= 1e6
        assert all(_is_series_value(v, series) for v in np.unique(r))
        # a part exists exactly where the realised weight is non-zero, with its sign
        assert np.array_equal(layer.resistance > 0, w_real != 0)
        assert np.array_equal(np.sign(w_real), layer.sign)
        assert np.all(np.sign(w_real)[w_real != 0] == np.sign(w)[w_real != 0])
        # realised magnitude = R_unit / R (the resistor law), for the built R_unit
        np.testing.assert_allclose(np.abs(w_real[w_real != 0]),
                                   layer.r_unit / layer.resistance[layer.resistance > 0],
                                   rtol=1e-12)


def test_clipped_and_pruned_weights_are_counted_never_silent():
    spec, weights, biases, names, _ = _network()
    r_unit = 20e3  # magnitudes above 2.0 clip, below 0.02 prune
    options = CircuitOptions(r_unit=r_unit, r_min=10e3, r_max=1e6)
    circuit, _, _ = design_circuit(spec, weights, biases, names, options)
    for w, report in zip(weights, circuit.report["layers"], strict=True):
        levels = np.sort(r_unit / np.array([v for v in _series_in(10e3, 1e6)]))
        _, status = snap_magnitudes(np.abs(w), levels)
        assert report["clipped"] == int((status == 1).sum())
        assert report["pruned"] == int((status == 2).sum())
    assert sum(r["clipped"] + r["pruned"] for r in circuit.report["layers"]) > 0


def _series_in(lo: float, hi: float) -> list[float]:
    from spikeforge.hardware.components import series_values

    return list(series_values("E24", lo, hi))


def test_decay_comes_from_the_exact_exponential_of_the_parts():
    spec, weights, biases, names, _ = _network()
    circuit, _, _ = design_circuit(spec, weights, biases, names)
    assert math.exp(-circuit.dt / (circuit.r_m * circuit.c_m)) == pytest.approx(0.9, rel=1e-12)
    # R_m C_m = 9.491 dt for decay 0.9, not the Euler 10 dt
    assert circuit.r_m * circuit.c_m / circuit.dt == pytest.approx(9.4912, rel=1e-4)
    assert _is_series_value(circuit.r_m, "E24") and _is_series_value(circuit.c_m, "E12")


def test_the_nominal_ideal_board_is_the_bundle_and_the_contract():
    spec, weights, biases, names, x = _network()
    circuit, realised, realised_b = design_circuit(spec, weights, biases, names)
    ideal = draw_boards(circuit, 1, ideal=True)
    for w, w_board in zip(realised, ideal.weights, strict=True):
        np.testing.assert_array_equal(w_board[0], w)
    twin = run_twin(spec, realised, realised_b, x, record=True)
    board = run_board(spec, ideal, 0, x, record=True)
    for a, b in zip(twin.spikes, board.spikes, strict=True):
        np.testing.assert_array_equal(a, b)


def _board_reference(spec, boards, x):
    """Plain step-by-step board model: per-neuron decay and threshold, incomplete reset,
    saturation (what lif_spikes_board must compute)."""
    s = x * spec.encoding.scale
    v = [np.zeros((len(x), w.shape[1])) for w in boards.weights]
    counts = np.zeros((len(x), boards.weights[-1].shape[1]), int)
    for _ in range(spec.timesteps):
        inp = s
        for layer in range(len(boards.weights)):
            i = inp @ boards.weights[layer][0].T + boards.biases[layer][0]
            u = np.clip(boards.decay[layer][0] * v[layer] + i, boards.v_low[layer],
                        boards.v_high[layer])
            fired = u >= boards.threshold[layer][0]
            v[layer] = np.where(fired, boards.residual[layer][0] * u, u)
            inp = fired.astype(float)
        counts += fired
    return counts


def test_a_drawn_board_runs_its_own_parts_step_by_step():
    spec, weights, biases, names, x = _network(1)
    circuit, _, _ = design_circuit(spec, weights, biases, names,
                                   CircuitOptions(output_swing=1.5, supply=5.0))
    boards = draw_boards(circuit, 3, seed=7, resistor_tolerance=0.05,
                         switch_on_resistance=2000.0)
    assert boards.residual[0].max() > 1e-3  # a visibly incomplete reset
    one = boards.board(2)
    np.testing.assert_array_equal(run_board(spec, boards, 2, x).counts,
                                  _board_reference(spec, one, x))


@pytest.mark.parametrize("batch_size", [None, 37])
def test_boards_run_together_spike_for_spike_as_one_at_a_time(batch_size):
    """run_boards (vectorised over boards and inputs, the Monte Carlo's engine) equals
    run_board board by board in every spike of every layer, and in the spike totals."""
    spec, weights, biases, names, x = _network(4, (64, 32, 16, 10))
    circuit, _, _ = design_circuit(spec, weights, biases, names)
    boards = draw_boards(circuit, 5, seed=11, resistor_tolerance=0.05)
    together = run_boards(spec, boards, x, record=True, batch_size=batch_size)
    assert len(together) == 5
    for k, result in enumerate(together):
        alone = run_board(spec, boards, k, x, record=True, batch_size=64)
        for layer, (a, b) in enumerate(zip(result.spikes, alone.spikes, strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"board {k}, layer {layer}")
        np.testing.assert_array_equal(result.counts, alone.counts)
        np.testing.assert_array_equal(result.total_spikes, alone.total_spikes)
    assert len({r.counts.tobytes() for r in together}) == 5  # the boards differ


@pytest.mark.parametrize("sizes", [(64, 32, 10), (64, 32, 16, 10)])
def test_boards_count_without_spike_trains_as_the_recorded_run(monkeypatch, sizes):
    """Without recording (the Monte Carlo), run_boards runs the last two layers of all
    boards as one kernel that writes only counts and sums the output currents in another
    order. With the drawn weights put on a 2^-8 grid those sums are exact in any order, so
    the counts and totals must be the recorded, layer-by-layer run's."""
    from spikeforge import kernels

    spec, weights, biases, names, x = _network(6, sizes)
    circuit, _, _ = design_circuit(spec, weights, biases, names)
    boards = draw_boards(circuit, 3, seed=5, resistor_tolerance=0.05)
    boards.weights = [np.round(w * 256) / 256 for w in boards.weights]
    boards.biases = [None if b is None else np.round(b * 256) / 256 for b in boards.biases]
    calls = []
    fused_kernel = kernels.lif_readout_counts_board

    def spy(*args):
        calls.append(args[3])  # the number of boards
        return fused_kernel(*args)

    monkeypatch.setattr(kernels, "lif_readout_counts_board", spy)
    fused = run_boards(spec, boards, x, batch_size=37)
    recorded = run_boards(spec, boards, x, record=True, batch_size=37)
    assert calls == [3] * 9  # 300 inputs in batches of 37: the fused kernel ran on each
    for a, b in zip(fused, recorded, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.total_spikes, b.total_spikes)
        assert 0 < b.spikes[-1].mean() < 0.95 and 0.05 < b.spikes[-2].mean() < 0.95


def test_monte_carlo_is_seeded_and_tolerance_costs_accuracy():
    spec, weights, biases, names, x = _network(2)
    circuit, realised, realised_b = design_circuit(spec, weights, biases, names)
    labels = run_twin(spec, realised, realised_b, x).predictions  # the ideal board's answers
    exact = monte_carlo(spec, circuit, x, labels, 4, resistor_tolerance=0.0,
                        capacitor_tolerance=0.0, reference_tolerance=0.0,
                        comparator_offset=0.0, switch_on_resistance=0.0, output_swing=4.9,
                        inverter_tolerance=0.0)
    assert exact.accuracies.min() > 0.99
    a = monte_carlo(spec, circuit, x, labels, 6, seed=3, resistor_tolerance=0.05)
    b = monte_carlo(spec, circuit, x, labels, 6, seed=3, resistor_tolerance=0.05)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    sloppy = monte_carlo(spec, circuit, x, labels, 6, seed=3, resistor_tolerance=0.3)
    assert sloppy.accuracies.mean() < a.accuracies.mean() <= 1.0


@pytest.mark.parametrize("neuron, message", [
    (NeuronSpec(reset="subtract"), "reset"),
    (NeuronSpec(refractory=2), "refractory"),
    (NeuronSpec(decay=1.0), "decay"),
])
def test_what_the_analog_neuron_cannot_build_is_refused(neuron, message):
    spec, weights, biases, names, _ = _network()
    spec = NetworkSpec(spec.layer_sizes, spec.timesteps, neuron)
    with pytest.raises(AnalogError, match=message):
        design_circuit(spec, weights, biases, names)


def test_an_impossible_threshold_voltage_names_the_fix():
    spec, weights, biases, names, _ = _network()
    with pytest.raises(AnalogError, match="threshold voltage.*--r-m"):
        design_circuit(spec, weights, biases, names, CircuitOptions(r_m=10e6))


def test_series_aware_levels_are_the_export_rule():
    w = np.array([0.5, 0.2, 0.0031, 0.004])
    levels = layer_levels(0.5, "E24", 10e3, 1e6)
    assert levels[-1] == pytest.approx(0.5) and levels[0] == pytest.approx(0.005)
    magnitude, status = snap_magnitudes(w, levels)
    assert magnitude[0] == pytest.approx(0.5) and magnitude[2] == 0 and status[2] == 2
    # a range that does not start on a series value: the largest weight still gets a part
    # (the smallest series value in range, 12k), never a clip
    levels = layer_levels(0.5, "E12", 10.5e3, 1e6)
    assert levels[-1] == pytest.approx(0.5) and levels[0] == pytest.approx(0.5 * 12e3 / 1e6)


@pytest.fixture(scope="module")
def analog_bundle(small_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("analog") / "bundle"
    export(small_run[0], out, "analog", circuit_options=CircuitOptions(series="E24"))
    return out


def test_analog_bundle_holds_bom_placement_and_the_circuit(analog_bundle):
    bundle = load_bundle(analog_bundle)
    circuit = bundle.circuit()
    rows = list(csv.DictReader((analog_bundle / "placement.csv").open()))
    assert len(rows) == len(placement_rows(circuit))
    summary = part_summary(circuit, bundle.spec.layer_sizes[0])
    assert len(rows) == summary["synapse_resistors"] + summary["bias_resistors"]
    bom = list(csv.DictReader((analog_bundle / "bom.csv").open()))
    assert {"part", "value", "tolerance", "count"} <= set(bom[0])
    assert sum(int(r["count"]) for r in bom) == summary["total_parts"]
    # every placed resistor is in the BOM, value for value
    synapse_bom = sum(int(r["count"]) for r in bom if r["role"] == "synapse / bias")
    assert synapse_bom == len(rows)
    # the weights are what the placed resistors realise
    layer = circuit.layers[0]
    row = next(r for r in rows if r["layer"] == layer.name and r["pre"] != "bias")
    w = bundle.weights[0][int(row["post"]), int(row["pre"])]
    assert abs(w) == pytest.approx(layer.r_unit / float(row["ohms"]), rel=1e-12)
    assert (w > 0) == (row["line"] == "inverted")
    spec_json = json.loads((analog_bundle / "spec.json").read_text())
    assert spec_json["analog"]["circuit"]["clock_hz"] == pytest.approx(1 / circuit.dt)


def test_cli_monte_carlo_prints_mean_p5_worst_and_plots(analog_bundle, tmp_path, capsys):
    plot = tmp_path / "mc.png"
    code = main(["simulate", str(analog_bundle), "--monte-carlo", "5", "--limit", "200",
                 "--tolerance", "1%", "--plot", str(plot), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["boards"] == 5 and out["n"] == 200
    assert out["worst"] <= out["p5"] <= out["median"] <= out["best"]
    assert out["options"]["resistor_tolerance"] == 0.01
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["simulate", str(analog_bundle), "--monte-carlo", "2", "--limit", "50",
                 "--tolerance", "200%"]) == 2


def test_a_series_trained_run_exports_without_moving_a_weight(tmp_path):
    """Series-aware training snaps with the export's own rule: the bundle holds the trained
    network, resistor for resistor, within the budget it was pruned to."""
    from spikeforge.config import TrainConfig
    from spikeforge.train import fit, load_run

    config = TrainConfig.from_dict({"limit_train": 2000, "limit_test": 200, "epochs": 2,
                                    "downsample": 4, "hidden": 16, "series": "E12",
                                    "r_range": [10e3, 1e6], "max_synapses": 300})
    fit(config, tmp_path / "run", progress=False, plots=False)
    export(tmp_path / "run", tmp_path / "bundle", "analog",
           circuit_options=CircuitOptions(series="E12"))
    _, _, model, _ = load_run(tmp_path / "run")
    trained, _ = model.weights()
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.info["parts"]["synapse_resistors"] <= 300
    for w_trained, w_bundle in zip(trained, bundle.weights, strict=True):
        w_trained = w_trained.double().numpy()
        assert np.array_equal(w_trained != 0, w_bundle != 0)
        np.testing.assert_allclose(w_bundle, w_trained, rtol=1e-6, atol=0)


def test_a_finite_gain_op_amp_leaks_through_its_summing_node():
    """Open-loop gain A: the summing node is not quite a virtual ground, so every resistor
    on it leaks the membrane (shorter τ, smaller drive); A -> ∞ is the ideal integrator."""
    spec, weights, biases, names, _ = _network()
    circuit, _, _ = design_circuit(spec, weights, biases, names)
    ideal = draw_boards(circuit, 1, seed=None)
    huge = draw_boards(circuit, 1, seed=None, opamp_gain=1e15)
    low = draw_boards(circuit, 1, seed=None, opamp_gain=1e3)
    np.testing.assert_allclose(huge.weights[0], ideal.weights[0], rtol=1e-9)
    np.testing.assert_allclose(huge.decay[0], ideal.decay[0], rtol=1e-12)
    assert np.all(low.decay[0] < ideal.decay[0])
    nonzero = ideal.weights[0] != 0
    assert np.all(np.abs(low.weights[0][nonzero]) < np.abs(ideal.weights[0][nonzero]))
