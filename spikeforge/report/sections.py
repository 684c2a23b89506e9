"""What the report says, section by section, from the collected :class:`ReportData`.

Every section is always present with its stable id (:data:`SECTION_IDS`); a piece that is
not available is a :class:`~spikeforge.report.document.Gap` naming the command that makes
it. Numbers are formatted here, once, for both renderers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from spikeforge.hardware.components import format_value
from spikeforge.report import figures
from spikeforge.report.collect import ReportData, schematic_png
from spikeforge.report.document import (
    Block,
    Bullets,
    Code,
    Explorer,
    Figure,
    Gap,
    Section,
    Table,
    Text,
)

#: every section, in order; the HTML ids and Markdown anchors
SECTION_IDS = ("summary", "network", "schematic", "timing", "encoding", "training",
               "confusion", "activity", "receptive-fields", "accuracy", "pareto", "bom",
               "spice", "rtl", "provenance")


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def fv(value: float, unit: str = "") -> str:
    """A part value as printed on parts, with the micro sign."""
    return format_value(value, unit).replace("us", "\u00b5s").replace("uF", "\u00b5F")


def _gap(data: ReportData, key: str, what: str, fallback: str = "", how: str = "") -> Gap:
    """The recorded reason ``key`` is missing (or a bundle's absence, or ``fallback``)."""
    for k in (key, "bundle"):
        if k in data.missing:
            m = data.missing[k]
            return Gap(what, m.why, m.how)
    return Gap(what, fallback or "not recorded by the run or the bundle", how)


def build_sections(data: ReportData) -> list[Section]:
    builders: dict[str, Callable[[ReportData], list[Block]]] = {
        "network": network, "schematic": schematic, "timing": timing, "encoding": encoding,
        "training": training, "confusion": confusion, "activity": activity,
        "receptive-fields": receptive_fields, "accuracy": accuracy, "pareto": pareto,
        "bom": bom, "spice": spice, "rtl": rtl, "provenance": provenance}
    titles = {"network": "Network", "schematic": "Neuron circuit", "timing": "Timing",
              "encoding": "Input encoding and output decoding",
              "training": "Training curves", "confusion": "Confusion matrix",
              "activity": "Spikes and membranes of test images",
              "receptive-fields": "First-layer receptive fields",
              "accuracy": "Accuracy: float model, twin and real boards",
              "pareto": "Accuracy against part count", "bom": "Bill of materials",
              "spice": "SPICE verification", "rtl": "RTL verification",
              "provenance": "Commands and versions"}
    sections = [Section(key, titles[key], builders[key](data)) for key in SECTION_IDS[1:]]
    return [Section("summary", "Summary", summary(data, sections)), *sections]


# ------------------------------------------------------------------------ summary


def summary(data: ReportData, sections: list[Section]) -> list[Block]:
    sources = []
    if data.run_dir is not None:
        sources.append(f"run `{data.run_dir}`")
    if data.bundle_exported:
        sources.append(f"{'an' if data.target == 'analog' else 'a'} {data.target} bundle "
                       f"exported on the fly from the run")
    elif data.bundle_dir is not None:
        sources.append(f"{data.target} bundle `{data.bundle_dir}`")
    blocks: list[Block] = [Text(f"Made from {' and '.join(sources)} on {data.created}.")]
    rows = []
    if data.spec is not None:
        rows.append(["network", " -> ".join(map(str, data.spec.layer_sizes)) +
                     f", T = {data.spec.timesteps} clocks"])
    rows.append(["target", data.target or "none (no bundle)"])
    for entry in data.accuracies:
        rows.append([entry["what"], pct(entry["accuracy"])])
    for mc in data.monte_carlo:
        s = mc.summary
        rows.append([f"boards with {mc.tolerance:.0%} resistors ({s['boards']})",
                     f"median {pct(s['median'])}, 5th percentile {pct(s['p5'])}"])
    if data.part_summary:
        rows.append(["parts on the board", f"{data.part_summary['total_parts']:,} "
                     f"({data.part_summary['synapse_resistors']:,} synapse resistors)"])
    elif data.parts.get("weight_memory_bits"):
        rows.append(["weight memory", f"{data.parts['weight_memory_bits']:,} bits"])
    if data.circuit is not None:
        rows.append(["clock", f"{fv(1 / data.circuit.dt, 'Hz')} (dt = {fv(data.circuit.dt, 's')})"])
    blocks.append(Table(["", ""], rows))
    if data.notes:
        blocks += [Text("Notes:"), Bullets(list(data.notes))]
    contents = [[f"[{s.title}](#{s.id})", "yes" if s.available else "not available"]
                for s in sections]
    blocks.append(Table(["section", "available"], contents, caption="Contents"))
    return blocks


# ------------------------------------------------------------------------ network


def _input_label(data: ReportData) -> str:
    n = data.spec.layer_sizes[0]
    shape = data.image_shape
    if shape is None:
        return f"{n:,} input lines"
    text = f"{n:,} input lines\n({' x '.join(map(str, shape))}"
    if data.downsample > 1:
        text += f", pooled {data.downsample}x{data.downsample}"
    return text + ")"


def network(data: ReportData) -> list[Block]:
    if data.spec is None or not data.layers:
        return [_gap(data, "network", "the network")]
    word = "resistors" if data.analog else "synapses"
    totals = f"{sum(layer.neurons for layer in data.layers):,} neurons"
    if data.part_summary:
        totals += f", {data.part_summary['total_parts']:,} parts on the board"
    elif data.parts.get("weight_memory_bits"):
        totals += f", {data.parts['weight_memory_bits']:,} bits of weight memory"
    title = f"{' -> '.join(map(str, data.spec.layer_sizes))}: {totals}"
    picture = figures.network_figure(data.spec.layer_sizes[0], _input_label(data),
                                     data.layers, word, title)
    header = ["layer", "neurons", "inputs", f"non-zero {word}", "density", "bias parts",
              "largest fan-in"]
    rows = [[layer.name, f"{layer.neurons:,}", f"{layer.inputs:,}", f"{layer.synapses:,}",
             f"{layer.synapses / max(layer.neurons * layer.inputs, 1):.1%}",
             f"{layer.bias_parts:,}", f"{layer.max_fan_in:,}"] for layer in data.layers]
    total = ["all", f"{sum(x.neurons for x in data.layers):,}", "",
             f"{sum(x.synapses for x in data.layers):,}", "",
             f"{sum(x.bias_parts for x in data.layers):,}", ""]
    blocks: list[Block] = [
        Figure("network", "The network as layers; bands are the synapses between them "
               "(on the analog board one resistor each).", png=picture),
        Table(header, rows, total)]
    if data.bundle is None:
        blocks.append(_gap(data, "bundle", "part counts of a board",
                           how="spikeforge export RUN --target analog --out BUNDLE"))
    elif data.part_summary:
        s = data.part_summary
        blocks.append(Text(f"The board: {s['synapse_resistors']:,} synapse and "
                           f"{s['bias_resistors']:,} bias resistors of "
                           f"{s['distinct_resistor_values']} distinct values, "
                           f"{s['total_parts']:,} parts in all (see the bill of materials)."))
    elif data.target == "digital":
        blocks.append(Text(f"The digital design stores {data.parts.get('weights', 0):,} "
                           f"weights ({data.parts.get('nonzero_synapses', 0):,} non-zero) in "
                           f"{data.parts.get('weight_memory_bits', 0):,} bits."))
    return blocks


# ---------------------------------------------------------------------- schematic


def schematic(data: ReportData) -> list[Block]:
    if data.target == "digital":
        return _digital_target(data)
    if data.circuit is None:
        return [_gap(data, "schematic", "the neuron schematic",
                     how="spikeforge export RUN --target analog --out BUNDLE")]
    c = data.circuit
    o = c.options
    circuit = c  # bound for the lazy PNG
    blocks: list[Block] = [
        Figure("neuron", "One neuron of the first layer with the values of the parts the "
               "board carries (reference designators as in placement.csv, net names as in "
               "board.net). Red: excitatory synapses (on the inverted line), blue: "
               "inhibitory (on the direct line).", svg=data.schematic_svg,
               make_png=lambda: schematic_png(circuit)),
        Table(["part", "value", "what it does"], [
            ["R_m", fv(c.r_m, "Ω"), f"membrane leak ({o.resistor_tolerance:.0%})"],
            ["C_m", fv(c.c_m, "F"), f"membrane capacitor, C0G/film "
                                    f"({o.capacitor_tolerance:.0%})"],
            ["τ = R_m C_m", fv(c.tau, "s"), f"decay per clock exp(-dt/τ) = {c.decay:.6g}"],
            ["synapse resistors", f"{o.series}, {fv(o.r_min, 'Ω')} .. {fv(o.r_max, 'Ω')}",
             f"R = R_unit / |w| ({o.resistor_tolerance:.0%})"],
            ["supply", f"±{o.supply:g} V", f"op-amp swing ±{o.output_swing:g} V"],
            ["comparator offset", f"{o.comparator_offset * 1e3:g} mV", "σ, Gaussian"],
            ["reset switch", f"R_on {fv(o.switch_on_resistance, 'Ω')}", "across C_m"],
        ], caption="Every neuron")]
    header = ["layer", "R_unit (Ω per unit weight)", "V_ref (line amplitude)", "V per model unit",
              "V_threshold", "divider top / bottom", "synapse resistors used"]
    rows = []
    for layer in c.layers:
        used = layer.resistance[layer.resistance > 0]
        span = f"{fv(used.min(), 'Ω')} .. {fv(used.max(), 'Ω')}" if used.size else "none"
        rows.append([layer.name, fv(layer.r_unit, "Ω"), f"{layer.v_ref:.4g} V",
                     f"{layer.v_unit:.4g} V", f"{layer.v_threshold:.4g} V",
                     f"{fv(layer.divider[0], 'Ω')} / {fv(layer.divider[1], 'Ω')}", span])
    blocks.append(Table(header, rows, caption="Every layer"))
    report = (c.report or {}).get("layers") or []
    if report:
        blocks.append(Table(
            ["layer", "weights realised", "clipped", "pruned (no part)", "largest change"],
            [[r["layer"], f"{r['realised']:,}", f"{r['clipped'] + r.get('bias_clipped', 0):,}",
              f"{r['pruned'] + r.get('bias_pruned', 0):,}", f"{r['max_relative_error']:.1%}"]
             for r in report], caption="How the trained weights became parts"))
    return blocks


def _digital_target(data: ReportData) -> list[Block]:
    d = data.spec.digital
    layers = (data.bundle.info.get("digital") or {}).get("layers") or []
    blocks: list[Block] = [
        Text(f"This is a digital bundle: the network runs as synchronous integer logic, not "
             f"as analog neurons, so there is no neuron circuit of discrete parts. Each neuron "
             f"is a signed integer membrane register; every clock it is decayed by a "
             f"multiply and shift (`V <- floor(V * {d.decay_num} / 2^{d.decay_shift})`, decay "
             f"{d.decay_num / 2 ** d.decay_shift:.6g}), the {d.weight_bits}-bit weights of "
             f"the lines that spiked are added, and it fires when it reaches its layer's "
             f"integer threshold. `spikeforge rtl BUNDLE --out DIR` writes the Verilog."),
        Table(["", "value"], [["weight bits", str(d.weight_bits)],
                              ["input bits", str(d.input_bits)],
                              ["decay", f"{d.decay_num} / 2^{d.decay_shift}"]]),
    ]
    if layers:
        blocks.append(Table(
            ["layer", "threshold (integer)", "membrane bits", "weight scale",
             "current per integer unit"],
            [[name, str(t), str(lay["membrane_bits"]), f"{lay['weight_scale']:.6g}",
              f"{lay['current_quantum']:.6g}"]
             for name, t, lay in zip(data.bundle.layer_names, d.thresholds, layers,
                                     strict=False)]))
    return blocks


# ---------------------------------------------------------------------- timing


def timing(data: ReportData) -> list[Block]:
    if data.spec is None:
        return [_gap(data, "timing", "the timing")]
    T = data.spec.timesteps
    L = data.spec.n_layers
    rows = [["T, clocks per inference", str(T)],
            ["layers in the pipeline", f"{L}: an inference takes T + {L - 1} = {T + L - 1} "
                                       f"clocks (each layer works one clock behind the last)"]]
    blocks: list[Block] = []
    if data.circuit is not None:
        c = data.circuit
        latency = (T + L - 1) * c.dt
        rows += [["clock", f"{fv(1 / c.dt, 'Hz')}"],
                 ["dt, one clock", f"{fv(c.dt, 's')} = R_m C_m · ln(1 / decay)"],
                 ["reset phase", f"{fv(c.t_reset, 's')} ({c.options.reset_fraction:.0%} of "
                                 f"dt): lines off, reset switches of neurons that spiked closed"],
                 ["integration phase", f"{fv(c.t_int, 's')}"],
                 ["RC = τ = R_m C_m", f"{fv(c.tau, 's')} ({fv(c.r_m, 'Ω')} x "
                                      f"{fv(c.c_m, 'F')})"],
                 ["decay per clock", f"exp(-dt / τ) = {c.decay:.6g}"],
                 ["gain k = 1 - exp(-t_int / τ)", f"{c.gain:.4g}"],
                 ["one inference", f"{fv(latency, 's')} ({1 / latency:,.0f} per second)"]]
        blocks.append(Table(["", ""], rows))
        blocks.append(Text("The clock period is set so that exp(-dt / R_m C_m) is exactly "
                           "the trained decay (never the forward-Euler 1 - dt/τ). Each clock "
                           "starts with the reset phase; the flip-flops sample the comparators "
                           "at the end of the integration phase."))
        return blocks
    n = data.spec.neuron
    rows.append(["decay per clock", f"{n.decay:.6g}"])
    if data.target == "digital":
        d = data.spec.digital
        rows.append(["decay (fixed point)", f"{d.decay_num} / 2^{d.decay_shift}"])
        cycles = (data.rtl or {}).get("cycles_per_inference")
        rows.append(["clock cycles per inference (RTL)",
                     str(cycles) if cycles is not None else "see the RTL section"])
        blocks.append(Table(["", ""], rows))
        blocks.append(Text("The digital design has no analog time constant: the decay is a "
                           "fixed-point multiply per model step, and the clock frequency is "
                           "whatever the logic meets."))
        return blocks
    blocks.append(Table(["", ""], rows))
    blocks.append(_gap(data, "timing", "clock, dt and RC of a board",
                       how="spikeforge export RUN --target analog --out BUNDLE"))
    return blocks


# --------------------------------------------------------------------- encoding


def encoding(data: ReportData) -> list[Block]:
    if data.spec is None:
        return [_gap(data, "encoding", "the encoding")]
    spec = data.spec
    e, n = spec.encoding, spec.neuron
    blocks: list[Block] = []
    if e.type == "spikes":
        text = ("Input: spike lines. Each input line carries a 0/1 spike per clock.")
        info = (data.bundle.info.get("input") if data.bundle is not None else None) or {}
        if info.get("kind") == "events":
            text += (f" Event-camera input: {info.get('sensor')}; {info.get('lines')} lines, "
                     f"line index `{info.get('line_index')}`; one clock per "
                     f"{info.get('clock_us', 0):.6g} µs of recording: {info.get('rule')}.")
        blocks.append(Text(text))
    else:
        text = (f"Input: constant current. A sample x in [0, 1] (a pixel intensity) drives "
                f"the current {e.scale:g} · x into the first layer on every one of the T "
                f"clocks.")
        if data.downsample > 1:
            text += (f" A front-end first averages {data.downsample} x {data.downsample} pixel "
                     f"blocks, so the board has {spec.layer_sizes[0]} input lines.")
        if data.circuit is not None:
            v_ref = data.circuit.layers[0].v_ref
            text += (f" On the board: input line j is held at x_j · {v_ref:.4g} V (the first "
                     f"layer's V_ref) during each integration phase; its inverted copy at "
                     f"-x_j · {v_ref:.4g} V.")
        elif data.target == "digital":
            text += (f" In the digital design: the integer code round(x · "
                     f"{spec.digital.input_max}) ({spec.digital.input_bits} bits; the pixel "
                     f"byte for MNIST).")
        blocks.append(Text(text))
    threshold = (f"{n.threshold:g} (model units)" if spec.digital is None else
                 f"{n.threshold:g} model units; integers per layer: "
                 f"{', '.join(map(str, spec.digital.thresholds))}")
    blocks.append(Table(["neuron (every layer)", ""], [
        ["membrane", "U[t] = decay · V[t-1] + W · s[t] + b, V[0] = 0"],
        ["decay", f"{n.decay:.6g}"], ["threshold", threshold],
        ["reset", "to zero" if n.reset == "zero" else "by subtracting the threshold"],
        ["refractory clocks", str(n.refractory)]]))
    names = data.class_names
    classes = f" ({len(names)} classes: {', '.join(names)})" if names else ""
    blocks.append(Text(f"Output decoding: {spec.decoding.type.replace('_', ' ')}. Each output "
                       f"neuron's spikes are counted over the T = {spec.timesteps} clocks; the "
                       f"class is the neuron with the most spikes, ties going to the lowest "
                       f"index (a priority encoder){classes}."))
    return blocks


# --------------------------------------------------------------------- training


def training(data: ReportData) -> list[Block]:
    if not data.history:
        return [_gap(data, "training", "training curves",
                     "the bundle does not hold its training history and its run was not "
                     "given", how="spikeforge report --run RUN --bundle BUNDLE")]
    from spikeforge.plots import plot_training_curves

    history = data.history
    blocks: list[Block] = [Figure("training_curves", "Training loss and accuracy per epoch.",
                                  png=figures.via_file(plot_training_curves, history))]
    step = max(1, math.ceil(len(history) / 12))
    shown = [h for i, h in enumerate(history) if i % step == 0 or i == len(history) - 1]
    blocks.append(Table(["epoch", "train loss", "train accuracy", "test accuracy",
                         "learning rate", "seconds"],
                        [[str(h["epoch"]), f"{h['train_loss']:.4f}", pct(h["train_accuracy"]),
                          pct(h["test_accuracy"]), f"{h['lr']:.3g}",
                          f"{h['epoch_seconds']:.1f}"] for h in shown]))
    m = data.metrics
    if m:
        blocks.append(Text(f"{m['epochs']} epochs on {m.get('n_train', '?'):,} training "
                           f"images in {m['train_seconds']:.0f} s "
                           f"({m.get('samples_per_second', 0):,.0f} samples/s) on "
                           f"{m.get('device', '?')}."))
    return blocks


# -------------------------------------------------------------------- confusion


def confusion(data: ReportData) -> list[Block]:
    if data.labels is None or data.predictions is None:
        return [_gap(data, "confusion", "the confusion matrix")]
    from spikeforge.plots import plot_confusion_matrix

    labels, predictions = data.labels, data.predictions
    names = data.class_names or [str(i) for i in range(int(max(labels.max(),
                                                                 predictions.max())) + 1)]
    k = len(names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    rows = []
    for i, name in enumerate(names):
        off = matrix[i].copy()
        off[i] = 0
        worst = int(off.argmax())
        rows.append([name, f"{matrix[i].sum():,}", f"{matrix[i, i]:,}",
                     pct(matrix[i, i] / max(matrix[i].sum(), 1)),
                     f"{names[worst]} ({off[worst]})" if off[worst] else "-"])
    return [Figure("confusion_matrix", f"Predictions of {data.predicted_by} on "
                   f"{len(labels):,} test images (rows: true class).",
                   png=figures.via_file(plot_confusion_matrix, labels, predictions, names)),
            Table(["class", "images", "correct", "accuracy", "most often mistaken for"],
                  rows)]


# --------------------------------------------------------------------- activity


def _thresholds(data: ReportData) -> list[float]:
    spec = data.spec
    if spec.digital is not None:
        return [float(t) for t in spec.digital.thresholds]
    return [float(spec.neuron.threshold)] * spec.n_layers


def explorer_payload(data: ReportData) -> dict[str, Any]:
    """The traced images as plain JSON for the page's script: spikes as lists of the
    neurons that fired at each clock, membranes rounded to 4 significant digits."""
    names = data.bundle.layer_names if data.bundle is not None else [
        layer.name for layer in data.layers]
    images = []
    for trace in data.traces:
        picture = figures.input_picture(trace.sample, data.image_shape)
        pic = None
        if picture is not None:
            pic = {"h": int(picture.shape[0]), "w": int(picture.shape[1]),
                   "signed": bool(picture.min() < 0),
                   "values": [float(f"{v:.3g}") for v in picture.ravel()]}
        images.append({
            "index": trace.index, "label": trace.label, "prediction": trace.prediction,
            "picture": pic,
            "neurons": [int(s.shape[1]) for s in trace.spikes],
            "spikes": [[np.nonzero(row)[0].tolist() for row in s] for s in trace.spikes],
            "membranes": [None if m is None else {
                "neurons": c.tolist(),
                "values": [[float(f"{v:.4g}") for v in m[:, k]] for k in range(m.shape[1])]}
                for m, c in zip(trace.membranes, trace.membrane_neurons, strict=True)]})
    return {"T": data.spec.timesteps, "classes": data.class_names, "layers": list(names),
            "thresholds": _thresholds(data),
            "units": data.trace_units or None,
            "swing": data.circuit.options.output_swing if data.circuit is not None else None,
            "images": images}


def activity(data: ReportData) -> list[Block]:
    if not data.traces:
        return [_gap(data, "activity", "spike rasters and membrane traces")]
    thresholds = _thresholds(data)
    fallback = [Figure(f"activity_{t.index}",
                       f"Test image {t.index} (label {data.class_names[t.label]}, predicted "
                       f"{data.class_names[t.prediction]}): spikes of every layer and the "
                       f"output membranes.",
                       png=figures.trace_figure(t, data.class_names, data.image_shape,
                                                thresholds[-1], f"test image {t.index}"))
                for t in data.traces]
    source = ("the bundle's weights" if data.bundle is not None else "the run's weights")
    wrong = [t.index for t in data.traces if t.prediction != t.label]
    text = (f"{len(data.traces)} test images run clock by clock through the contract's step "
            f"function (`spec.lif_step`) on {source}. The membrane is U[t], the value the "
            f"comparator sees at the clock edge (before the reset): a neuron spikes where U "
            f"reaches the threshold.")
    if wrong:
        text += f" Misclassified: test image {', '.join(map(str, wrong))}."
    if data.trace_units:
        text += (" Membrane volts on the board are the model value times the layer's volts "
                 "per model unit (hover a neuron); the op-amp clamps them at "
                 f"±{data.circuit.options.output_swing:g} V, which the twin of the nominal "
                 "board models and the ideal-parts trace here does not.")
    return [Text(text), Explorer(explorer_payload(data), fallback)]


# -------------------------------------------------------------- receptive fields


def receptive_fields(data: ReportData) -> list[Block]:
    if data.first_layer is None:
        return [_gap(data, "receptive-fields", "first-layer receptive fields")]
    from spikeforge.plots import plot_receptive_fields

    weights = data.first_layer
    shape = data.image_shape
    note = ""
    if shape is not None and len(shape) == 3:  # event polarities: ON minus OFF weights
        weights = weights.reshape(len(weights), *shape)
        weights = (weights[:, -1] - weights[:, 0]).reshape(len(weights), -1)
        shape = shape[1:]
        note = " Event input: each picture is the ON line's weight minus the OFF line's."
    n = min(len(weights), 64)
    return [Figure("receptive_fields",
                   f"Weights from the input into the first {n} neurons of the first layer, "
                   f"drawn in input space: red excitatory, blue inhibitory, white no synapse "
                   f"(no resistor on the board).{note}",
                   png=figures.via_file(plot_receptive_fields, weights, shape))]


# --------------------------------------------------------------------- accuracy


def accuracy(data: ReportData) -> list[Block]:
    rows = [[e["what"], pct(e["accuracy"]), f"{e['n']:,}" if e.get("n") else "", e["source"]]
            for e in data.accuracies]
    if data.monte_carlo and data.monte_carlo[0].summary.get("nominal") is not None:
        first = data.monte_carlo[0].summary
        rows.append(["nominal board (every part at its value; switch R_on, op-amp swing)",
                     pct(first["nominal"]), f"{first['n']:,}", data.monte_carlo[0].source])
    for mc in data.monte_carlo:
        s = mc.summary
        rows.append([f"{s['boards']} boards, {mc.tolerance:.0%} resistors: median "
                     f"(5th percentile, worst)", f"{pct(s['median'])} ({pct(s['p5'])}, "
                     f"{pct(s['worst'])})", f"{s['n']:,}", mc.source])
    blocks: list[Block] = []
    if rows:
        blocks.append(Table(["what", "accuracy", "test images", "source"], rows))
    if "twin" in data.missing:
        blocks.append(_gap(data, "twin", "the hardware twin's accuracy"))
    if data.monte_carlo:
        refs = [(e["what"].split(" (")[0], e["accuracy"]) for e in data.accuracies][:2]
        if data.monte_carlo[0].summary.get("nominal") is not None:
            refs.append(("nominal board", data.monte_carlo[0].summary["nominal"]))
        blocks.append(Figure("monte_carlo", "Accuracy of boards built from real parts: every "
                             "resistor, capacitor, reference and comparator drawn within its "
                             "tolerance (docs/analog.md).",
                             png=figures.monte_carlo_figure(data.monte_carlo, refs)))
        o = data.monte_carlo[0].summary.get("options") or {}
        if o:
            blocks.append(Text(f"Besides the resistors: capacitors "
                               f"{o.get('capacitor_tolerance', 0):.0%}, references "
                               f"{o.get('reference_tolerance', 0):.1%}, comparator offset "
                               f"{1e3 * o.get('comparator_offset', 0):g} mV, "
                               f"{o.get('distribution')} deviations."))
    for key in ("monte-carlo", *(f"monte-carlo-{t:.0%}" for t in (0.01, 0.05))):
        if key in data.missing:
            blocks.append(_gap(data, key, "Monte-Carlo boards"))
    if not data.monte_carlo and not any(k.startswith("monte-carlo") for k in data.missing):
        blocks.append(_gap(data, "monte-carlo", "Monte-Carlo boards",
                           "the bundle holds no circuit to draw boards from",
                           "spikeforge export RUN --target analog --out BUNDLE"))
    return blocks


# ----------------------------------------------------------------------- pareto


def pareto(data: ReportData) -> list[Block]:
    if data.pareto_png is not None:
        return [Figure("pareto", f"Accuracy against part count (from {data.pareto_source}).",
                       png=data.pareto_png)]
    if not data.pareto_rows:
        return [_gap(data, "pareto", "the accuracy-vs-part-count Pareto plot")]
    here = None
    p1 = next((mc for mc in data.monte_carlo if math.isclose(mc.tolerance, 0.01)), None)
    if data.part_summary and p1 is not None:
        here = (data.part_summary["total_parts"], p1.summary["p5"])
    rows = data.pareto_rows
    return [Figure("pareto", f"5th percentile and median of boards against all parts on the "
                   f"board (from {data.pareto_source}); the star is this design.",
                   png=figures.pareto_figure(rows, here, "this design (5th percentile)")),
            Table(["budget", "network", "synapse resistors", "all parts", "float model",
                   "median of boards", "5th percentile"],
                  [[str(r.get("budget") or "none"), "-".join(map(str, r["layers"])),
                    f"{r.get('synapse_resistors', 0):,}", f"{r['total_parts']:,}",
                    pct(r.get("float_accuracy")), pct(r["mc_median"]), pct(r["mc_p5"])]
                   for r in rows])]


# -------------------------------------------------------------------------- BOM


def bom(data: ReportData) -> list[Block]:
    if data.bom is not None:
        rows = [[r["part"], r["value"], r["tolerance"], f"{r['count']:,}", r["role"]]
                for r in data.bom]
        by_kind: dict[str, int] = {}
        for r in data.bom:
            by_kind[r["part"]] = by_kind.get(r["part"], 0) + int(r["count"])
        total = ["total", f"{len(data.bom)} lines", "",
                 f"{sum(int(r['count']) for r in data.bom):,}", ""]
        where = (f" `{data.bundle_dir}/bom.csv` and `placement.csv` hold the same and where "
                 f"each resistor goes." if data.bundle_dir is not None else "")
        return [Table(["kind", "count"], [[k, f"{v:,}"] for k, v in by_kind.items()],
                      ["all parts", f"{sum(by_kind.values()):,}"], caption="By kind"),
                Table(["part", "value", "tolerance", "count", "role"], rows, total,
                      caption="Every line"),
                Text("Not listed: the input front-end that holds each input line at x · V_ref, "
                     "and the sequencer (two-phase clock, layer enables, output spike "
                     "counters and the priority encoder)." + where)]
    if data.target == "digital":
        blocks: list[Block] = [Text(
            f"The digital target has no bill of discrete parts: its cost is logic and "
            f"{data.parts.get('weight_memory_bits', 0):,} bits of weight memory.")]
        synthesis = (data.rtl or {}).get("synthesis")
        if synthesis:
            blocks.append(Table(["resource (synthesis)", "count"],
                                [[k.replace("_", " "), f"{v:,}"] for k, v in synthesis.items()
                                 if isinstance(v, int) and not isinstance(v, bool)]))
        elif data.rtl is not None:
            blocks.append(Gap("logic resources", "the stored RTL result has no synthesis "
                              "numbers (`synthesis` is null: synthesis did not run)",
                              "spikeforge rtl BUNDLE --out BUNDLE/rtl --simulate"))
        else:
            blocks.append(_gap(data, "rtl", "logic resources (RTL synthesis)"))
        return blocks
    return [_gap(data, "bom", "the bill of materials",
                 how="spikeforge export RUN --target analog --out BUNDLE")]


# ---------------------------------------------------------------- verification


def spice(data: ReportData) -> list[Block]:
    r = data.spice
    if r is None:
        return [_gap(data, "spice", "the SPICE check")]
    n = r.get("n", 0)
    ng = r.get("ngspice") or {}
    verdict = "PASSED" if r.get("ok") else "FAILED"
    blocks: list[Block] = [Text(
        f"{verdict}: ngspice simulated the whole board ({ng.get('resistors', '?')} resistors, "
        f"{ng.get('neurons', '?')} neurons) on {n} test images of {r.get('dataset', '?')} in "
        f"{ng.get('seconds', 0):.0f} s and compared every spike with the twin "
        f"(from {data.spice_source}).")]
    rows = []
    for key, what in (("board", "nominal board (switch R_on, swing)"),
                      ("ideal", "ideal parts (the bundle's weights)")):
        c = r.get(key)
        if isinstance(c, dict):
            acc = c.get("accuracy") or {}
            rows.append([what, f"{c.get('identical_counts')}/{n}",
                         f"{c.get('identical_predictions')}/{n}",
                         ", ".join(map(str, c.get("differing_spikes", []))),
                         f"{pct(acc.get('spice'))} / {pct(acc.get('twin'))}" if acc else ""])
    if rows:
        blocks.append(Table(["SPICE against the twin of", "identical output counts",
                             "identical predictions", "differing spikes per layer",
                             "accuracy SPICE / twin"], rows))
    curves = r.get("rate_curves") or []
    if curves:
        blocks.append(Table(["rate curve, layer", "identical", "largest rate difference"],
                            [[str(i + 1), "yes" if c.get("identical") else "NO",
                              f"{c.get('max_abs_difference', 0):.3g}"]
                             for i, c in enumerate(curves)]))
    return blocks


def _short(value: Any, limit: int = 240) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def rtl(data: ReportData) -> list[Block]:
    r = data.rtl
    if r is None:
        return [_gap(data, "rtl", "the RTL check")]
    passed = r.get("passed")
    verdict = {True: "PASSED", False: "FAILED"}.get(passed, "not simulated (generated only)")
    rows = [["verdict", verdict],
            ["test images simulated", str(r.get("images", "?"))],
            ["clock cycles per inference", str(r.get("cycles_per_inference", "?"))],
            ["mismatch against the twin", _short(r.get("mismatch"))]]
    if r.get("first_mismatch") is not None:
        rows.append(["first mismatch", _short(r["first_mismatch"])])
    if r.get("lanes") is not None:
        rows.append(["lanes", str(r["lanes"])])
    synthesis = r.get("synthesis")
    if isinstance(synthesis, dict):
        # scalars only: the per-memory list is in the RTL folder
        rows += [[f"synthesis: {k.replace('_', ' ')}", f"{v:,}" if isinstance(v, int) else str(v)]
                 for k, v in synthesis.items() if isinstance(v, (int, float, str))]
    else:
        rows.append(["synthesis", "not run"])
    what = ("The generated Verilog, simulated and compared with the twin image by image"
            if passed is not None else "The generated Verilog (not simulated)")
    return [Text(f"{what} (from {data.rtl_source})."), Table(["", ""], rows)]


# ------------------------------------------------------------------- provenance


def provenance(data: ReportData) -> list[Block]:
    blocks: list[Block] = [Text("The commands that produced what this report shows:"),
                           Code("\n".join(f"# {what}\n{cmd}" for what, cmd in data.commands))]
    v = data.versions
    blocks.append(Table(["this report was made with", ""],
                        [[k, str(v[k])] for k in v if v[k] is not None],
                        caption=f"Report written {data.created}"))
    env = (data.metrics or {}).get("environment")
    if env:
        blocks.append(Table(["the run was trained with", ""],
                            [[k, str(val)] for k, val in env.items() if val is not None]))
    files = (data.metrics or {}).get("data_files")
    if files:
        blocks.append(Table(["data file", "md5"], [[k, str(val)] for k, val in files.items()]))
    if data.bundle is not None:
        made = data.bundle.info.get("created_by") or {}
        trained = data.bundle.info.get("trained") or {}
        blocks.append(Table(["the bundle", ""],
                            [["written by spikeforge", str(made.get("spikeforge", "?"))],
                             ["exported from", str(trained.get("run_dir", "?"))],
                             ["epochs trained", str(trained.get("epochs", "?"))]]))
    return blocks
