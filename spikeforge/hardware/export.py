"""``spikeforge export``: a training run becomes a deployment bundle.

Steps: load the run -> map the weights onto the target (digital: integers; analog: float64
as trained) -> score exactly these weights with the hardware twin on the run's test set ->
write the bundle (spec.json, weights.npz, CSV, network.nir, README.md) atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge import __version__
from spikeforge.config import TrainConfig
from spikeforge.data.datasets import Dataset, load_dataset
from spikeforge.errors import SpikeforgeError
from spikeforge.hardware.bundle import TARGETS, Bundle, part_counts, write_bundle
from spikeforge.hardware.circuit import (
    AnalogCircuit,
    CircuitOptions,
    bill_of_materials,
    design_circuit,
    draw_boards,
    part_summary,
    placement_rows,
)
from spikeforge.hardware.quantize import to_digital
from spikeforge.hardware.simulate import monte_carlo, run_board, run_twin, score, twin_inputs
from spikeforge.spec import NetworkSpec


def check_buildable(config: TrainConfig, target: str) -> None:
    """Refuse, by name and with the fix, a run that ``target`` cannot build: the targets
    build fully connected LIF networks (IF too, on the digital target) fed constant
    currents; the rest of the training toolkit is software only."""
    from spikeforge.neurons.cells import check_target

    if config.model != "mlp":
        raise SpikeforgeError(f"the {target} target builds fully connected networks; this run "
                              f"trained model = {config.model!r} (a ConvSpikingNet, software "
                              f"only). Retrain with --model mlp to export it")
    check_target(config.neuron, target, config.learn_decay, config.learn_threshold)
    if config.loss == "ce_membrane":
        raise SpikeforgeError(f"the {target} target decodes a class from output spike counts; "
                              f"this run was trained (loss = ce_membrane) and scored on the "
                              f"accumulated membrane, which no target reads out. Retrain with "
                              f"--loss ce_count (or mse_rate) to export it")
    if config.encoding not in ("constant_current", "events"):
        raise SpikeforgeError(f"the {target} target feeds its inputs as constant currents; this "
                              f"run trained on {config.encoding} input, which needs a spike "
                              f"generator per input line that spikeforge does not build. "
                              f"Retrain with --encoding constant_current to export it")


def bundle_from_run(run_dir: str | os.PathLike, target: str, weight_bits: int = 8,
                    decay_shift: int = 8, circuit_options: CircuitOptions | None = None
                    ) -> tuple[Bundle, list[str], TrainConfig]:
    """The bundle for a run (not yet scored or written), notes for the builder, and the
    run's config. The analog target maps every weight onto a real resistor
    (:func:`spikeforge.hardware.circuit.design_circuit`) and holds the realised values."""
    from spikeforge.train import load_run, reported_accuracy

    if target not in TARGETS:
        raise SpikeforgeError(f"target = {target!r} is unknown: choose one of "
                              f"{', '.join(TARGETS)}")
    config, spec, model, state = load_run(run_dir)
    check_buildable(config, target)
    weights, biases = model.weights()
    weights = [w.double().numpy() for w in weights]
    biases = [None if b is None else b.double().numpy() for b in biases]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    notes: list[str] = []
    info: dict[str, Any] = {"trained": {
        "run_dir": str(Path(run_dir).resolve()), "dataset": config.dataset,
        "epochs": int(state["epoch"]), "float_test_accuracy": reported_accuracy(run_dir),
        "quantize_bits": config.quantize_bits,
        "downsample": int(getattr(config, "downsample", 1) or 1)}}
    if target == "analog":
        circuit, weights, biases = design_circuit(spec, weights, biases, names,
                                                  circuit_options)
        notes += realisation_notes(circuit)
        trained_series = getattr(config, "series", None)
        o = circuit.options
        if trained_series and (trained_series != o.series
                               or tuple(config.r_range) != (o.r_min, o.r_max)):
            notes.append(f"trained on {trained_series} resistors in {config.r_range} Ω but "
                         f"exported with {o.series} in ({o.r_min:g}, {o.r_max:g}) Ω: weights "
                         f"were snapped twice")
        info["analog"] = {"weights": "float64, model units, as the nominal parts realise "
                                     "them: one unit of current moves the membrane by one "
                                     "unit (V_unit volts) per clock",
                          "circuit": circuit.to_json()}
        return (Bundle(spec, target, weights, biases, names, info, circuit.arrays()), notes,
                config)
    q = to_digital(spec, weights, biases, weight_bits, decay_shift)
    if q.spec.neuron.decay != spec.neuron.decay:
        notes.append(f"decay {spec.neuron.decay} is realised as {q.spec.digital.decay_num}/"
                     f"2^{decay_shift} = {q.spec.neuron.decay}; train with --decay "
                     f"{q.spec.neuron.decay} to train with exactly the hardware's decay")
    if config.quantize_bits not in (None, weight_bits):
        notes.append(f"trained with --quantize-bits {config.quantize_bits} but exported with "
                     f"--bits {weight_bits}")
    info["digital"] = {"layers": [
        {"weight_scale": s, "current_quantum": q_l, "membrane_bits": m}
        for s, q_l, m in zip(q.weight_scales, q.current_quanta, q.membrane_bits, strict=True)]}
    return Bundle(q.spec, target, q.weights, q.biases, names, info), notes, config


def bundle_dataset(bundle: Bundle, dataset: str | None = None, data_dir: str | None = None,
                   limit: int | None = None, progress: bool = False) -> Dataset:
    """The test data a bundle runs on: its training dataset (or ``dataset``) through the
    same input front-end (``downsample``) as in training, first ``limit`` test samples."""
    if limit is not None and limit < 1:  # a negative slice would quietly drop samples
        raise SpikeforgeError(f"limit = {limit}: score at least 1 test sample (--limit / "
                              f"--inputs N with N >= 1), or leave it out for all")
    trained = bundle.info.get("trained", {})
    name = dataset or bundle.info.get("accuracy", {}).get("dataset") or \
        trained.get("dataset", "mnist")
    # a bundle is scored on test samples only: no training set to pool (or to bin)
    data = load_dataset(name, data_dir, progress=progress, timesteps=bundle.spec.timesteps,
                        limit_train=0, limit_test=limit).limit(0, limit)
    data = data.downsample(int(trained.get("downsample") or 1))
    if data.n_features != bundle.spec.layer_sizes[0]:
        raise SpikeforgeError(f"{name} has {data.n_features} input features but the bundle's "
                              f"first layer takes {bundle.spec.layer_sizes[0]}: score it on "
                              f"the dataset it was trained on (--dataset)")
    return data


def score_bundle(bundle: Bundle, dataset: str | None = None, data_dir: str | None = None,
                 limit: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Twin accuracy of exactly these weights on a dataset's test split."""
    data = bundle_dataset(bundle, dataset, data_dir, limit, progress)
    result = run_twin(bundle.spec, bundle.weights, bundle.biases,
                      twin_inputs(bundle.spec, data.test_x))
    return {"dataset": data.name, "split": "test", **score(result, data.test_y)}


def monte_carlo_bundle(bundle: Bundle, x: np.ndarray, labels: np.ndarray, n_boards: int,
                       seed: int = 0, progress: bool = False, **overrides: Any
                       ) -> dict[str, Any]:
    """Accuracy of ``n_boards`` boards built from an analog bundle's parts, each part off
    nominal within its tolerance (``overrides`` replace the bundle's options), beside the
    ideal parts (the bundle's weights) and the nominal parts (with the switch's
    on-resistance and the op-amp's swing)."""
    circuit = bundle.circuit()
    spec = bundle.spec
    result = monte_carlo(spec, circuit, x, labels, n_boards, seed, progress=progress,
                         **overrides)
    ideal = run_twin(spec, bundle.weights, bundle.biases, x).predictions
    nominal = run_board(spec, draw_boards(circuit, 1, seed=None, **overrides), 0, x)
    return {**result.summary(), "ideal": float((ideal == labels).mean()),
            "nominal": float((nominal.predictions == labels).mean()),
            "options": result.options, "accuracies": result.accuracies.tolist()}


def realisation_notes(circuit: AnalogCircuit) -> list[str]:
    """What the part mapping changed, layer by layer: never silent."""
    notes = []
    for r in circuit.report["layers"]:
        changed = [f"{r[k]} {k.replace('_', ' ')}" for k in
                   ("clipped", "pruned", "bias_clipped", "bias_pruned") if r.get(k)]
        if changed:
            lo, hi = r["realisable_magnitudes"]
            what = [text for key, text in (
                ("clipped", "clipped weights got the smallest resistor"),
                ("pruned", "pruned ones no part")) if r.get(key) or r.get(f"bias_{key}")]
            notes.append(f"{r['layer']}: {', '.join(changed)} (realisable weight magnitudes "
                         f"{lo:.3g}..{hi:.3g}: {', '.join(what)}); {r['realised']} weights "
                         f"realised, largest change {r['max_relative_error']:.1%}; widen "
                         f"--r-range or train with --series to avoid it")
    return notes


def export(run_dir: str | os.PathLike, out: str | os.PathLike, target: str,
           weight_bits: int = 8, decay_shift: int = 8, data_dir: str | None = None,
           force: bool = False, circuit_options: CircuitOptions | None = None
           ) -> tuple[Bundle, list[str]]:
    """Export a run as a bundle folder; returns the bundle and the builder's notes."""
    from spikeforge.hardware.nir_io import to_nir

    out = Path(out)
    if out.exists() and not force:  # refuse before the work, not after it
        raise SpikeforgeError(f"{out} exists; pass --force to replace it, or choose another "
                              f"--out")
    bundle, notes, config = bundle_from_run(run_dir, target, weight_bits, decay_shift,
                                            circuit_options)
    bundle.info["accuracy"] = score_bundle(bundle, config.dataset, data_dir or config.data_dir,
                                           config.limit_test)
    if config.encoding == "events":
        from spikeforge.events.datasets import event_input_info

        bundle.info["input"] = event_input_info(config.timesteps, config.downsample)
    bundle.info["parts"] = part_counts(bundle)
    files = {}
    if target == "analog":
        circuit = bundle.circuit()
        n_inputs = bundle.spec.layer_sizes[0]
        bundle.info["parts"].update(part_summary(circuit, n_inputs))
        files["bom.csv"] = _table_csv(bill_of_materials(circuit, n_inputs))
        files["placement.csv"] = _table_csv(placement_rows(circuit))
        files.update(_drawings(circuit, n_inputs))
    bundle.info["created_by"] = {"spikeforge": __version__}
    write_bundle(bundle, out, render_readme(bundle, notes), to_nir(bundle), force=force,
                 files=files)
    return bundle, notes


def _drawings(circuit: AnalogCircuit, n_inputs: int) -> dict[str, str]:
    """``neuron.svg`` (one neuron of the first layer, with its real values) and
    ``board.net`` (the KiCad netlist of the whole board), as text for the bundle."""
    import tempfile

    from spikeforge.hardware.drawings import neuron_schematic
    from spikeforge.hardware.kicad import kicad_netlist

    with tempfile.TemporaryDirectory() as tmp:
        neuron_schematic(circuit, 0, Path(tmp) / "neuron.svg")
        kicad_netlist(circuit, n_inputs, Path(tmp) / "board.net")
        return {name: (Path(tmp) / name).read_text() for name in ("neuron.svg", "board.net")}


def _table_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def render_readme(bundle: Bundle, notes: list[str]) -> str:
    """The hardware specification in words and figures."""
    spec: NetworkSpec = bundle.spec
    acc = bundle.info.get("accuracy", {})
    trained = _pct(bundle.info.get("trained", {}).get("float_test_accuracy"))
    parts = bundle.info.get("parts", part_counts(bundle))
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    n = spec.neuron
    lines = [
        f"# Hardware specification: {sizes} spiking network ({bundle.target} target)",
        "",
        "Written by `spikeforge export`. Everything the hardware needs is in `spec.json` and "
        "`weights.npz` (the same matrices as CSV in `csv/`); `network.nir` holds the network "
        "for NIR tools.",
        "",
        "## Accuracy of exactly these weights",
        "",
        f"{_pct(acc.get('accuracy'))} on the {acc.get('n', '?')} {acc.get('dataset', '?')} "
        f"test images ({acc.get('correct', '?')} correct), scored by spikeforge's hardware "
        f"twin; {acc.get('mean_spikes_per_inference', float('nan')):.0f} spikes per inference "
        f"on average. The trained float model scored {trained}.",
        "",
        "## Topology",
        "",
        "| layer | neurons | inputs | non-zero weights | bias |",
        "|---|---|---|---|---|",
    ]
    for name, w, b in zip(bundle.layer_names, bundle.weights, bundle.biases, strict=True):
        lines.append(f"| {name} | {w.shape[0]} | {w.shape[1]} | {np.count_nonzero(w)} | "
                     f"{'yes' if b is not None else 'no'} |")
    lines += [
        "",
        "## Neuron (every layer)",
        "",
        "Clocked leaky integrate-and-fire, once per clock `t = 1..T`:",
        "",
        "```",
        "I[t] = W · s_in[t] + b",
        "U[t] = decay · V[t-1] + I[t]          (V[0] = 0)",
        "s[t] = 1 if U[t] >= threshold",
        "V[t] = 0 where s[t] = 1 (reset to zero), else U[t]" if n.reset == "zero" else
        "V[t] = U[t] - threshold where s[t] = 1 (reset by subtraction), else U[t]",
        "```",
        "",
        f"- decay: {n.decay}",
        f"- threshold: {n.threshold} (model units)",
        f"- reset: {n.reset}; refractory clocks: {n.refractory}",
        "",
        "## Timing",
        "",
        f"T = {spec.timesteps} clocks per inference; all neurons update on the same clock "
        "edge; the state is cleared before each inference.",
        "",
        "## Input encoding",
        "",
    ]
    if spec.encoding.type == "constant_current":
        if spec.digital is not None:
            lines.append(f"Each input x in [0, 1] is the integer code round(x * "
                         f"{spec.digital.input_max}), applied on every clock.")
        else:
            lines.append(f"Each input x in [0, 1] is a current {spec.encoding.scale} * x held "
                         "for all T clocks.")
    else:
        lines.append("Each input line carries a spike (0/1) per clock.")
        event_input = bundle.info.get("input", {})
        if event_input.get("kind") == "events":
            lines += ["", f"Event-camera input: {event_input['sensor']}; "
                          f"{event_input['lines']} spike lines, line index "
                          f"`{event_input['line_index']}`.",
                      f"One clock per {event_input['clock_us']:.6g} µs of recording "
                      f"({event_input['window_us']} µs in all): {event_input['rule']}."]
    lines += [
        "",
        "## Output decoding",
        "",
        "Count each output neuron's spikes over the T clocks; the class is the neuron with "
        "the most spikes, ties going to the lowest index (a priority encoder).",
        "",
    ]
    if spec.digital is not None:
        d = spec.digital
        layers = bundle.info["digital"]["layers"]
        lines += [
            "## Digital arithmetic",
            "",
            f"- weights: signed {d.weight_bits}-bit integers; biases and thresholds: integers",
            f"- decay: V <- floor(V * {d.decay_num} / 2^{d.decay_shift}) (arithmetic right "
            f"shift by {d.decay_shift})",
            "",
            "| layer | threshold | membrane bits | weight scale | current per unit |",
            "|---|---|---|---|---|",
        ]
        for name, t, layer in zip(bundle.layer_names, d.thresholds, layers, strict=True):
            lines.append(f"| {name} | {t} | {layer['membrane_bits']} | "
                         f"{layer['weight_scale']:.6g} | {layer['current_quantum']:.6g} |")
        lines.append("")
    if bundle.target == "analog" and (bundle.info.get("analog") or {}).get("circuit"):
        lines += _analog_section(bundle.circuit())
    lines += ["## Part counts", "", "| item | count |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in parts.items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _analog_section(circuit: AnalogCircuit) -> list[str]:
    """The circuit constants a builder needs (docs/analog.md explains the circuit)."""
    from spikeforge.hardware.components import format_value as fv

    o = circuit.options
    lines = [
        "## Analog circuit (docs/analog.md)",
        "",
        "Every neuron: an inverting leaky integrator (op-amp, C_m in parallel with R_m, an "
        "analog switch across C_m for the reset), a comparator against the layer's threshold "
        "divider, and a D flip-flop that holds the spike for one clock. Every synapse is one "
        "resistor; `placement.csv` says where each goes and `bom.csv` lists the parts.",
        "",
        f"- clock: {1 / circuit.dt:.6g} Hz (dt = {fv(circuit.dt, 's')}); each period starts "
        f"with a reset phase of {fv(circuit.t_reset, 's')} (lines off, reset switches of "
        f"neurons that spiked closed), then {fv(circuit.t_int, 's')} of integration",
        f"- R_m = {fv(circuit.r_m, 'Ω')}, C_m = {fv(circuit.c_m, 'F')}: tau = "
        f"{fv(circuit.tau, 's')}, decay = exp(-dt / R_m C_m) = {circuit.decay}",
        f"- synapse resistors: {o.series}, {fv(o.r_min, 'Ω')} to {fv(o.r_max, 'Ω')}, "
        f"{o.resistor_tolerance:.0%}; excitatory (w > 0) on the inverted line (-V_ref), "
        "inhibitory on the direct line (+V_ref)",
        f"- supply ±{o.supply:g} V; op-amp swing ±{o.output_swing:g} V",
        "",
        "| layer | R_unit (Ω per unit weight) | line amplitude V_ref | V_threshold | divider "
        "(top / bottom, on +supply) | volts per model unit |",
        "|---|---|---|---|---|---|",
    ]
    for layer in circuit.layers:
        lines.append(f"| {layer.name} | {fv(layer.r_unit, 'Ω')} | {layer.v_ref:.4g} V | "
                     f"{layer.v_threshold:.4g} V | {fv(layer.divider[0], 'Ω')} / "
                     f"{fv(layer.divider[1], 'Ω')} | {layer.v_unit:.4g} |")
    lines += ["", f"An inference takes T + {len(circuit.layers) - 1} clocks: each layer works "
              "one clock behind the one before it (its input spikes come out of flip-flops).",
              ""]
    return lines


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"
