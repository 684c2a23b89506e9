"""Gather everything a report shows from a run directory and/or a bundle into plain data.

:func:`collect` reads what is stored (config, history and metrics of the run; spec.json,
weights, circuit and BOM of the bundle; stored Monte-Carlo, SPICE, RTL and Pareto
results) and computes only what a builder needs that nothing stored holds: the twin's
predictions on the test set (confusion matrix), step-by-step traces of a few test images
(rasters and membranes) and, when no stored result exists, a small Monte Carlo.

Nothing is silently dropped: each piece that cannot be had becomes a :class:`Missing`
that says why and which command produces it, and the renderers show it as such.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError

#: where stored results are looked for inside a bundle (and, for Pareto, beside it)
SPICE_NAMES = ("spice.json", "spice_result.json", "spice/spice.json", "spice/result.json")
RTL_NAMES = ("rtl_result.json", "rtl/rtl_result.json")
PARETO_NAMES = ("pareto.jsonl", "pareto.json")
MONTE_CARLO_GLOB = "monte_carlo*.json"
SPICE_COMMAND = "spikeforge spice BUNDLE --inputs 20 --json > BUNDLE/spice.json"
RTL_COMMAND = "spikeforge rtl BUNDLE --out BUNDLE/rtl --simulate"
#: resistor tolerances of the Monte-Carlo boards the report shows (issue 11: 1 % and 5 %)
TOLERANCES = (0.01, 0.05)
#: at most this many neurons of a layer get their membrane traced (the most active ones)
MEMBRANE_NEURONS = 256


class ReportError(SpikeforgeError):
    """A path or option that ``spikeforge report`` cannot use."""


@dataclass(frozen=True)
class ReportOptions:
    """What ``spikeforge report`` was asked for (the CLI's options, one to one).

    path:     RUN_OR_BUNDLE (a run directory holds checkpoint.pt, a bundle spec.json).
    run, bundle: the same given explicitly, to combine a run with its bundle.
    target:   the target of the bundle exported on the fly when only a run is given.
    export:   False: never export on the fly (report the run's parts only).
    images:   test images traced through the network (rasters, membranes).
    boards:   Monte-Carlo boards per tolerance when no stored result exists (0: none).
    limit:    score on the first N test images (default: as many as the bundle reports).
    rtl, spice, pareto: stored verification / benchmark results (else discovered).
    """

    path: str | None = None
    run: str | None = None
    bundle: str | None = None
    out: str | None = None
    markdown: str | None = None
    target: str = "analog"
    export: bool = True
    images: int = 3
    boards: int = 20
    limit: int | None = None
    seed: int = 0
    rtl: str | None = None
    spice: str | None = None
    pareto: str | None = None
    data_dir: str | None = None
    progress: bool = True
    command: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images < 0:
            raise ReportError(f"--images {self.images}: give 0 or more test images to trace")
        if self.boards < 0:
            raise ReportError(f"--boards {self.boards}: give 0 (no Monte Carlo) or more boards")
        if self.limit is not None and self.limit < 1:
            raise ReportError(f"--limit {self.limit}: score at least 1 test image, or leave "
                              f"it out for the bundle's own test set")
        if self.target not in ("analog", "digital"):
            raise ReportError(f"--target {self.target!r}: choose analog or digital")


@dataclass(frozen=True)
class Missing:
    """A piece of the report that is not available: why, and the command that makes it."""

    why: str
    how: str = ""


@dataclass
class LayerFacts:
    """One layer as the hardware builds it."""

    name: str
    neurons: int
    inputs: int
    synapses: int
    bias_parts: int
    max_fan_in: int


@dataclass
class Trace:
    """One test image run step by step through the contract (``spec.lif_step``).

    spikes[l]:    ``(T, neurons)`` bool, every neuron of layer ``l``.
    membranes[l]: ``(T, k)`` membrane at each clock edge (before the reset) of the neurons
                  ``membrane_neurons[l]``; ``None`` where membranes are not available.
    """

    index: int
    label: int
    prediction: int
    sample: np.ndarray
    spikes: list[np.ndarray]
    membranes: list[np.ndarray | None]
    membrane_neurons: list[np.ndarray]


@dataclass
class MonteCarlo:
    """Boards of one resistor tolerance: ``summary`` as ``monte_carlo_bundle`` returns it
    (with ``accuracies``), and where it came from."""

    tolerance: float
    summary: dict[str, Any]
    source: str
    command: str


@dataclass
class ReportData:
    """Everything the renderers need; ``missing`` maps an item id to why it is absent."""

    title: str
    created: str
    options: ReportOptions
    run_dir: Path | None = None
    bundle_dir: Path | None = None
    bundle_exported: bool = False
    notes: list[str] = field(default_factory=list)
    missing: dict[str, Missing] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    spec: Any = None
    target: str | None = None
    bundle: Any = None
    circuit: Any = None
    layers: list[LayerFacts] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    downsample: int = 1
    class_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    predicted_by: str = ""
    twin_x: np.ndarray | None = field(default=None, repr=False)  # the twin's test inputs
    accuracies: list[dict[str, Any]] = field(default_factory=list)
    monte_carlo: list[MonteCarlo] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)
    trace_units: list[float] = field(default_factory=list)
    first_layer: np.ndarray | None = None
    schematic_svg: str | None = None
    bom: list[dict[str, Any]] | None = None
    part_summary: dict[str, Any] | None = None
    pareto_rows: list[dict[str, Any]] | None = None
    pareto_png: bytes | None = None
    pareto_source: str | None = None
    spice: dict[str, Any] | None = None
    spice_source: str | None = None
    rtl: dict[str, Any] | None = None
    rtl_source: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    commands: list[tuple[str, str]] = field(default_factory=list)

    def lack(self, key: str, why: str, how: str = "") -> None:
        """Record that ``key`` is not available (the first reason given wins)."""
        self.missing.setdefault(key, Missing(why, how))

    @property
    def analog(self) -> bool:
        return self.target == "analog" and self.circuit is not None


# ---------------------------------------------------------------------- the inputs


def kind_of(path: str | os.PathLike) -> str:
    """``"run"`` (holds checkpoint.pt) or ``"bundle"`` (holds spec.json); else an error
    that says what was expected."""
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{p}: no such file or folder; give a run directory (written by "
                          f"`spikeforge train`) or a bundle (written by `spikeforge export`)")
    if not p.is_dir():
        raise ReportError(f"{p} is a file; give a run directory (it holds checkpoint.pt) or a "
                          f"bundle folder (it holds spec.json)")
    if (p / "spec.json").is_file():
        return "bundle"
    if (p / "checkpoint.pt").is_file():
        return "run"
    raise ReportError(f"{p} is neither a run directory (no checkpoint.pt) nor a bundle (no "
                      f"spec.json); train with `spikeforge train --out DIR` or export with "
                      f"`spikeforge export RUN --target analog --out BUNDLE`")


def resolve_inputs(options: ReportOptions) -> tuple[Path | None, Path | None]:
    """The run directory and bundle the report is made from (either may be None)."""
    run = Path(options.run) if options.run else None
    bundle = Path(options.bundle) if options.bundle else None
    for given, flag in ((run, "--run"), (bundle, "--bundle")):
        if given is not None and kind_of(given) != flag[2:]:
            raise ReportError(f"{flag} {given}: this is a {kind_of(given)}, not a "
                              f"{flag[2:]}; pass it as {'--bundle' if flag == '--run' else '--run'}"
                              f" or as RUN_OR_BUNDLE")
    if options.path is not None:
        kind = kind_of(options.path)
        taken = run if kind == "run" else bundle
        if taken is not None and taken.resolve() != Path(options.path).resolve():
            raise ReportError(f"{options.path} is a {kind} and --{kind} {taken} names another "
                              f"one; give each at most once")
        if kind == "run":
            run = Path(options.path)
        else:
            bundle = Path(options.path)
    if run is None and bundle is None:
        raise ReportError("nothing to report on: give RUN_OR_BUNDLE, --run RUN or "
                          "--bundle BUNDLE")
    return run, bundle


def check_given_files(options: ReportOptions) -> None:
    """Refuse bad ``--spice``, ``--rtl`` and ``--pareto`` paths before any work is done."""
    if options.spice:
        path = _given_file(options.spice, SPICE_NAMES, "--spice", SPICE_COMMAND)
        _check_spice(_read_json(path, "--spice"), path)
    if options.rtl:
        path = _given_file(options.rtl, RTL_NAMES, "--rtl", RTL_COMMAND)
        _check_rtl(_read_json(path, "--rtl"), path)
    if options.pareto:
        _given_pareto(Path(options.pareto))


def default_out(run: Path | None, bundle: Path | None) -> Path:
    """RUN/report.html, else BUNDLE/report.html."""
    return (run if run is not None else bundle) / "report.html"  # type: ignore[operator]


# ----------------------------------------------------------------------- collecting


def collect(options: ReportOptions, log: Any = None) -> ReportData:
    """Everything the report shows. ``log(message)`` hears about slow steps."""
    say = log or (lambda _message: None)
    run_dir, bundle_dir = resolve_inputs(options)
    data = ReportData(title="", created=datetime.now(UTC).isoformat(timespec="seconds"),
                      options=options)
    with contextlib.ExitStack() as stack:
        if run_dir is None and bundle_dir is not None:
            run_dir = _run_of_bundle(bundle_dir, data)
        data.run_dir, data.bundle_dir = run_dir, bundle_dir
        model = None
        if run_dir is not None:
            model = _read_run(run_dir, data)
        if bundle_dir is None and run_dir is not None:
            if options.export and data.config is not None:
                say(f"exporting {run_dir} as a temporary {options.target} bundle")
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
                    prefix="spikeforge-report-")))
                bundle_dir = _export_on_the_fly(run_dir, tmp / "bundle", data)
            else:
                data.lack("bundle", "no bundle was given (--no-export)" if not options.export
                          else "the run could not be read", _export_command(run_dir,
                                                                            options.target))
        if bundle_dir is not None:
            _read_bundle(bundle_dir, data)
        _describe(data, model)
        _score(data, model, say)
        _stored_results(data)
        if data.analog and data.labels is not None:
            _monte_carlo(data, say)
        elif data.target == "digital":
            data.lack("monte-carlo", "the digital target is bit-exact: every board built from "
                      "it computes the same spikes, so there are no part tolerances to draw")
        data.versions = versions()
        data.commands = commands(data)
        data.title = _title(data)
        # the bundle object is kept, but a temporary folder is gone after this block
        if data.bundle_exported:
            data.bundle_dir = None
    return data


def _run_of_bundle(bundle_dir: Path, data: ReportData) -> Path | None:
    """The run a bundle was exported from, when it is still there and still the same run
    (same float accuracy as spec.json records): its curves and provenance belong in the
    report. A retrained or moved run is not used, and the report says so."""
    try:
        info = json.loads((bundle_dir / "spec.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # load_bundle reports this properly later
    trained = info.get("trained") if isinstance(info, dict) else None
    if not isinstance(trained, dict) or not trained.get("run_dir"):
        return None
    candidate = Path(str(trained["run_dir"]))
    how = f"spikeforge report --run RUN --bundle {bundle_dir}"
    if not (candidate / "checkpoint.pt").is_file():
        data.notes.append(f"the bundle was exported from {candidate}, which is not here: "
                          f"training curves and the training command come from the run "
                          f"(`{how}`)")
        return None
    metrics = candidate / "metrics.json"
    try:
        float_acc = json.loads(metrics.read_text()).get("test_accuracy")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        float_acc = None
    if float_acc is None or float_acc != trained.get("float_test_accuracy"):
        data.notes.append(f"the bundle's run {candidate} no longer matches it (its float "
                          f"accuracy is {float_acc}, the bundle recorded "
                          f"{trained.get('float_test_accuracy')}): it was retrained or is "
                          f"unfinished, so it is not used")
        return None
    data.notes.append(f"training history and provenance from {candidate}, the run this "
                      f"bundle was exported from (spec.json `trained.run_dir`)")
    return candidate


def _read_run(run_dir: Path, data: ReportData) -> Any:
    """Config, history, metrics and the model of a run directory."""
    from spikeforge.train import HISTORY, METRICS, load_run

    config, spec, model, state = load_run(run_dir)
    data.config = config.to_dict()
    data.history = list(state.get("history") or []) or None
    data.spec = spec
    data.dataset = config.dataset
    data.downsample = int(config.downsample or 1)
    metrics_path = run_dir / METRICS
    if metrics_path.is_file():
        try:
            data.metrics = json.loads(metrics_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ReportError(f"{metrics_path}: not valid JSON ({e}); re-score the run with "
                              f"`spikeforge evaluate {run_dir}` or train it again") from None
    else:
        done = state.get("epoch")
        data.notes.append(f"{run_dir} is unfinished (no {METRICS}): {done} of "
                          f"{config.epochs} epochs; finish it with `spikeforge train --resume "
                          f"{run_dir}`")
    if data.history is None:
        data.lack("training", f"{run_dir} has no finished epoch ({HISTORY} is empty)",
                  f"spikeforge train --resume {run_dir}")
    return model


def _export_command(run_dir: Path | str, target: str) -> str:
    return f"spikeforge export {shlex.quote(str(run_dir))} --target {target} --out BUNDLE"


def _export_on_the_fly(run_dir: Path, out: Path, data: ReportData) -> Path | None:
    """Export the run into a temporary folder, exactly as ``spikeforge export`` would with
    its defaults (and the series and resistor range the run was trained on)."""
    from spikeforge.hardware.circuit import CircuitOptions
    from spikeforge.hardware.export import export

    config = data.config or {}
    options = None
    if data.options.target == "analog":
        lo, hi = config.get("r_range") or (10e3, 1e6)
        options = CircuitOptions(series=(config.get("series") or "E24").upper(),
                                 r_min=float(lo), r_max=float(hi))
    try:
        _, notes = export(run_dir, out, data.options.target, data_dir=data.options.data_dir,
                          circuit_options=options)
    except SpikeforgeError as e:
        data.lack("bundle", f"the run cannot be exported to the {data.options.target} "
                  f"target: {e}", _export_command(run_dir, data.options.target))
        return None
    data.bundle_exported = True
    data.notes.append(f"no bundle was given: the run was exported on the fly to the "
                      f"{data.options.target} target with the export's defaults; to keep it: "
                      f"`{_export_command(run_dir, data.options.target)}`")
    data.notes += [f"export: {note}" for note in notes]
    return out


def _read_bundle(bundle_dir: Path, data: ReportData) -> None:
    """The bundle, its circuit, BOM and schematic; checked against the run if both given."""
    from spikeforge.hardware.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    if data.spec is not None and tuple(data.spec.layer_sizes) != tuple(bundle.spec.layer_sizes):
        raise ReportError(f"{bundle_dir} ({'-'.join(map(str, bundle.spec.layer_sizes))}) was "
                          f"not exported from {data.run_dir} "
                          f"({'-'.join(map(str, data.spec.layer_sizes))}); give the bundle "
                          f"of this run, or report them separately")
    trained = bundle.info.get("trained") or {}
    if data.run_dir is not None and trained.get("run_dir") and not data.bundle_exported and \
            Path(trained["run_dir"]).resolve() != data.run_dir.resolve():
        data.notes.append(f"the bundle says it was exported from {trained['run_dir']}, not "
                          f"from {data.run_dir}: check that they belong together")
    data.bundle, data.target, data.spec = bundle, bundle.target, bundle.spec
    data.dataset = (bundle.info.get("accuracy") or {}).get("dataset") or \
        trained.get("dataset") or data.dataset
    data.downsample = int(trained.get("downsample") or data.downsample or 1)
    if bundle.target == "analog" and (bundle.info.get("analog") or {}).get("circuit"):
        from spikeforge.hardware.circuit import bill_of_materials, part_summary

        data.circuit = bundle.circuit()
        n_inputs = bundle.spec.layer_sizes[0]
        data.bom = bill_of_materials(data.circuit, n_inputs)
        data.part_summary = part_summary(data.circuit, n_inputs)
        # drawn again from the circuit (as the export drew neuron.svg) rather than read:
        # the page inlines it, and a bundle is outside data
        data.schematic_svg = schematic_svg(data.circuit)
    elif bundle.target == "analog":
        data.lack("schematic", f"{bundle_dir} holds no circuit (spec.json `analog.circuit`)",
                  "spikeforge export RUN --target analog --out BUNDLE")


def schematic_svg(circuit: Any) -> str:
    """The first layer's neuron drawn with its real values (as the export draws it)."""
    from spikeforge.hardware.drawings import neuron_schematic

    with tempfile.TemporaryDirectory() as tmp:
        return neuron_schematic(circuit, 0, Path(tmp) / "neuron.svg").read_text()


def schematic_png(circuit: Any) -> bytes:
    from spikeforge.hardware.drawings import neuron_schematic

    with tempfile.TemporaryDirectory() as tmp:
        return neuron_schematic(circuit, 0, Path(tmp) / "neuron.png").read_bytes()


def _layer_facts(names: list[str], weights: list[np.ndarray],
                 biases: list[np.ndarray | None]) -> list[LayerFacts]:
    return [LayerFacts(name, int(w.shape[0]), int(w.shape[1]), int(np.count_nonzero(w)),
                       0 if b is None else int(np.count_nonzero(b)),
                       int(np.count_nonzero(w, axis=1).max(initial=0)))
            for name, w, b in zip(names, weights, biases, strict=True)]


def _model_arrays(model: Any) -> tuple[list[np.ndarray], list[np.ndarray | None]] | None:
    """The realised float weights of a fully connected run (None for a conv net)."""
    if model is None or not hasattr(model, "weights") or not hasattr(model, "layers"):
        return None
    weights, biases = model.weights()
    return ([w.double().cpu().numpy() for w in weights],
            [None if b is None else b.double().cpu().numpy() for b in biases])


def _describe(data: ReportData, model: Any) -> None:
    """Layers, parts, first-layer weights and the dataset's shape and class names."""
    from spikeforge.data.datasets import CLASS_NAMES, IMAGE_SHAPES

    if data.bundle is not None:
        b = data.bundle
        data.layers = _layer_facts(b.layer_names, b.weights, b.biases)
        data.parts = dict(b.info.get("parts") or {})
        data.first_layer = np.asarray(b.weights[0], np.float64)
    else:
        arrays = _model_arrays(model)
        if arrays is not None:
            names = [f"fc{i + 1}" for i in range(len(arrays[0]))]
            data.layers = _layer_facts(names, *arrays)
            data.first_layer = arrays[0][0]
        elif model is not None:
            data.lack("receptive-fields", "the run's first layer is a convolution "
                      "(model = conv): its kernels are not images of the input")
    if data.first_layer is None:
        data.lack("receptive-fields", "no first-layer weights (no readable run or bundle)")
    if data.dataset:
        data.class_names = list(CLASS_NAMES.get(data.dataset, []))
        shape = IMAGE_SHAPES.get(data.dataset)
        k = data.downsample
        if shape is not None and k > 1:
            shape = (*shape[:-2], shape[-2] // k, shape[-1] // k)
        n_in = data.spec.layer_sizes[0] if data.spec is not None else None
        if shape is not None and n_in is not None and math.prod(shape) == n_in:
            data.image_shape = tuple(shape)


# -------------------------------------------------------------------------- scoring


def _load_test_data(data: ReportData) -> Any:
    """The test images the bundle (or the run) is scored on, through its input front-end."""
    options = data.options
    if data.bundle is not None:
        from spikeforge.hardware.export import bundle_dataset

        limit = options.limit or (data.bundle.info.get("accuracy") or {}).get("n")
        return bundle_dataset(data.bundle, None, options.data_dir, limit,
                              progress=options.progress)
    from spikeforge.config import TrainConfig
    from spikeforge.train import prepare_dataset

    config = TrainConfig.from_dict({**(data.config or {}), "limit_train": 1})
    test = prepare_dataset(config, options.data_dir, progress=options.progress)
    return test.limit(1, options.limit)


def _score(data: ReportData, model: Any, say: Any) -> None:
    """Accuracies, the confusion matrix's predictions, and the traced test images."""
    if data.metrics is not None:
        data.accuracies.append({"what": "float model (PyTorch, trained weights)",
                                "accuracy": data.metrics["test_accuracy"],
                                "n": data.metrics.get("n_test"), "source":
                                f"{data.run_dir}/metrics.json"})
    elif data.bundle is not None and \
            (data.bundle.info.get("trained") or {}).get("float_test_accuracy") is not None:
        data.accuracies.append({"what": "float model (PyTorch, trained weights)",
                                "accuracy": data.bundle.info["trained"]["float_test_accuracy"],
                                "n": None, "source": "spec.json `trained`"})
    stored = (data.bundle.info.get("accuracy") or {}) if data.bundle is not None else {}
    if data.bundle is None and data.spec is None:
        return
    try:
        say("loading the test set")
        test = _load_test_data(data)
    except SpikeforgeError as e:
        for key in ("confusion", "activity", "monte-carlo"):
            data.lack(key, f"the test set cannot be loaded: {e}",
                      f"spikeforge data fetch {data.dataset or 'mnist'}")
        if stored:
            data.accuracies.append({"what": f"{data.target} twin (exactly the bundle's weights)",
                                    "accuracy": stored["accuracy"], "n": stored.get("n"),
                                    "source": "spec.json `accuracy`"})
        return
    data.class_names = list(test.class_names)
    data.image_shape = test.image_shape if test.image_shape is not None else data.image_shape
    labels = np.asarray(test.test_y)
    if data.bundle is not None:
        _score_twin(data, test, labels, stored, say)
    else:
        _score_model(data, model, test, labels)


def _score_twin(data: ReportData, test: Any, labels: np.ndarray, stored: dict[str, Any],
                say: Any) -> None:
    from spikeforge.hardware.simulate import run_twin, twin_inputs

    b = data.bundle
    say(f"running the {b.target} twin on {len(labels)} test images")
    x = twin_inputs(b.spec, test.test_x)
    result = run_twin(b.spec, b.weights, b.biases, x)
    predictions = np.asarray(result.predictions)
    accuracy = float((predictions == labels).mean())
    entry = {"what": f"{b.target} twin (exactly the bundle's weights)", "accuracy": accuracy,
             "n": len(labels), "source": "computed now"}
    if stored.get("n") == len(labels):
        same = stored.get("accuracy") == accuracy
        entry["source"] = ("computed now; equals spec.json `accuracy`" if same else
                           f"computed now; spec.json says {stored.get('accuracy')}")
        if not same:
            data.notes.append(f"the twin scores {accuracy:.4%} on these {len(labels)} images "
                              f"but spec.json records {stored.get('accuracy'):.4%}: the "
                              f"bundle or the data changed since the export")
    data.accuracies.append(entry)
    data.labels, data.predictions = labels, predictions
    data.predicted_by = f"the {b.target} twin on the bundle's weights"
    data.twin_x = x  # reused by the Monte Carlo
    picks = pick_images(labels, predictions, data.options.images)
    if not picks:
        data.lack("activity", "--images 0: no test image was traced",
                  "spikeforge report ... --images 3")
        return
    sub = x[:, picks] if x.ndim == 3 else x[picks]
    spikes, membranes = trace_contract(b.spec, b.weights, b.biases, sub)
    data.traces = _traces(picks, labels, test.test_x, spikes, membranes)
    check = run_twin(b.spec, b.weights, b.biases, sub).counts
    if not np.array_equal(check, np.stack([s.sum(0) for s in
                                           [t.spikes[-1] for t in data.traces]])):
        data.notes.append("the step-by-step trace (spec.lif_step) and the twin count "
                          "different output spikes for a traced image; report this as a bug")
    if data.circuit is not None:
        data.trace_units = [layer.v_unit for layer in data.circuit.layers]


def _score_model(data: ReportData, model: Any, test: Any, labels: np.ndarray) -> None:
    """Without a bundle: the float model's predictions; traces from its realised weights."""
    import torch

    from spikeforge.config import TrainConfig
    from spikeforge.train import evaluate, readout

    config = TrainConfig.from_dict(data.config or {})
    evaluation = evaluate(model, torch.from_numpy(test.test_x), torch.from_numpy(labels),
                          config.eval_batch_size, readout(config))
    data.labels, data.predictions = labels, np.asarray(evaluation.predictions)
    data.predicted_by = "the float model (no bundle)"
    data.lack("twin", "no bundle: the hardware twin runs a bundle's weights",
              _export_command(data.run_dir or "RUN", data.options.target))
    arrays = _model_arrays(model)
    picks = pick_images(labels, data.predictions, data.options.images)
    if arrays is None or config.neuron not in ("lif", "if") or config.encoding not in (
            "constant_current", "events"):
        data.lack("activity", f"this run's network (model = {config.model}, neuron = "
                  f"{config.neuron}, encoding = {config.encoding}) is software only: the "
                  f"contract's step function cannot trace it; runs of fully connected LIF "
                  f"or IF networks fed constant currents or spikes are traced")
        return
    if not picks:
        data.lack("activity", "--images 0: no test image was traced",
                  "spikeforge report ... --images 3")
        return
    from spikeforge.hardware.simulate import twin_inputs

    x = twin_inputs(data.spec, test.test_x)
    sub = x[:, picks] if x.ndim == 3 else x[picks]
    spikes, membranes = trace_contract(data.spec, arrays[0], arrays[1], sub)
    data.traces = _traces(picks, labels, test.test_x, spikes, membranes)


def pick_images(labels: np.ndarray, predictions: np.ndarray, n: int) -> list[int]:
    """The first ``n`` test images, except that the last place goes to the first
    misclassified image when none of the others is one: a builder should see a failure."""
    n = min(n, len(labels))
    picks = list(range(n))
    wrong = np.nonzero(predictions != labels)[0]
    if n >= 2 and wrong.size and not any(predictions[i] != labels[i] for i in picks):
        picks[-1] = int(wrong[0])
    return picks


def trace_contract(spec: Any, weights: list[np.ndarray], biases: list[np.ndarray | None],
                   x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Spikes ``(T, n, out)`` of every layer and its membrane ``U[t]`` at each clock edge
    (before the reset: what the comparator compares with the threshold), running the
    contract's own step function (:func:`spikeforge.spec.lif_step`) one clock at a time:
    the twin keeps no membranes, and the definition is the one to show a builder.

    ``U`` comes from the same function: the step run from the same state with reset by
    subtraction leaves ``V' = U - threshold · s`` (the spikes do not depend on the reset
    mode), so ``U = V' + threshold · s``; the state itself advances with the real reset.

    ``x``: samples ``(n, features)`` or spike lines ``(T, n, features)`` (twin layout)."""
    from dataclasses import replace

    from spikeforge.hardware.simulate import encode_inputs
    from spikeforge.spec import LIFState, lif_step

    s0 = encode_inputs(spec, x)
    ws = [np.asarray(w, np.float64) for w in weights]
    bs = [None if b is None else np.asarray(b, np.float64) for b in biases]
    subtract = replace(spec.neuron, reset="subtract")
    T = spec.timesteps
    n = s0.shape[-2]
    states = [LIFState(np.zeros((n, w.shape[0])), np.zeros((n, w.shape[0]), np.int64))
              for w in ws]
    spikes = [np.zeros((T, n, w.shape[0]), dtype=bool) for w in ws]
    membranes = [np.zeros((T, n, w.shape[0])) for w in ws]
    for t in range(T):
        s = (s0 if s0.ndim == 2 else s0[t]).astype(np.float64)
        for index, (w, b) in enumerate(zip(ws, bs, strict=True)):
            current = s @ w.T if b is None else s @ w.T + b
            digital = None if spec.digital is None else (spec.digital, index)
            threshold = spec.neuron.threshold if digital is None else \
                spec.digital.thresholds[index]
            _, probe = lif_step(states[index], current, subtract, digital)
            fired, states[index] = lif_step(states[index], current, spec.neuron, digital)
            spikes[index][t] = fired
            membranes[index][t] = probe.v + threshold * fired
            s = fired.astype(np.float64)
    return spikes, membranes


def _traces(picks: list[int], labels: np.ndarray, samples: np.ndarray,
            spikes: list[np.ndarray], membranes: list[np.ndarray]) -> list[Trace]:
    from spikeforge.spec import decode

    traces = []
    for k, index in enumerate(picks):
        layer_spikes = [s[:, k] for s in spikes]
        chosen = [most_active(s) for s in layer_spikes]
        traces.append(Trace(
            index=int(index), label=int(labels[index]),
            prediction=int(decode(layer_spikes[-1].sum(0))),
            sample=np.asarray(samples[index]), spikes=layer_spikes,
            membranes=[m[:, k][:, c] for m, c in zip(membranes, chosen, strict=True)],
            membrane_neurons=chosen))
    return traces


def most_active(spikes: np.ndarray, limit: int = MEMBRANE_NEURONS) -> np.ndarray:
    """Indices (ascending) of the ``limit`` neurons with the most spikes; all when fewer."""
    n = spikes.shape[1]
    if n <= limit:
        return np.arange(n)
    order = np.argsort(-spikes.sum(0), kind="stable")[:limit]
    return np.sort(order)


# --------------------------------------------------------------- stored results


def _candidates(folder: Path | None, names: tuple[str, ...]) -> Iterator[Path]:
    if folder is None:
        return
    for name in names:
        if (folder / name).is_file():
            yield folder / name


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{flag} {path}: not a readable JSON file ({e})") from None


def _given_file(path: str, names: tuple[str, ...], flag: str, produce: str) -> Path:
    """``path`` itself, or the first of ``names`` inside it when it is a folder."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        found = next(_candidates(p, names), None)
        if found is None:
            raise ReportError(f"{flag} {p}: the folder holds none of {', '.join(names)}; "
                              f"write it with `{produce}`")
        return found
    raise ReportError(f"{flag} {p}: no such file or folder")


def _stored_result(given: str | None, bundle_dir: Path | None, names: tuple[str, ...],
                   flag: str, produce: str, check: Callable[[Any, Path], dict[str, Any]]
                   ) -> tuple[dict[str, Any] | None, str | None]:
    """A stored result and where it came from: the file given by ``flag`` (an error if it
    is not one), else the first of the bundle's candidates that ``check`` accepts."""
    if given:
        path = _given_file(given, names, flag, produce)
        return check(_read_json(path, flag), path), str(path)
    for path in _candidates(bundle_dir, names):
        with contextlib.suppress(ReportError):
            return check(_read_json(path, flag), path), str(path)
    return None, None


def _stored_results(data: ReportData) -> None:
    """SPICE, RTL and Pareto results: given by option, else found in the bundle."""
    o = data.options
    bundle_dir = None if data.bundle_exported else data.bundle_dir
    spice_cmd, rtl_cmd = SPICE_COMMAND, RTL_COMMAND
    data.spice, data.spice_source = _stored_result(o.spice, bundle_dir, SPICE_NAMES, "--spice",
                                                   spice_cmd, _check_spice)
    if data.spice is None:
        if data.target == "digital":
            data.lack("spice", "SPICE simulates the analog board; this is a digital bundle",
                      "spikeforge export RUN --target analog --out BUNDLE; " + spice_cmd)
        else:
            data.lack("spice", "no stored SPICE result (--spice, or spice.json in the bundle)",
                      spice_cmd)
    data.rtl, data.rtl_source = _stored_result(o.rtl, bundle_dir, RTL_NAMES, "--rtl", rtl_cmd,
                                               _check_rtl)
    if data.rtl is None:
        if data.target == "analog":
            data.lack("rtl", "RTL is generated for the digital target; this is an analog bundle",
                      "spikeforge export RUN --target digital --out BUNDLE; " + rtl_cmd)
        else:
            data.lack("rtl", "no stored RTL result (--rtl DIR, or rtl/rtl_result.json in the "
                      "bundle)", rtl_cmd)
    _pareto(data, bundle_dir)


def _check_spice(d: Any, path: Path) -> dict[str, Any]:
    if not isinstance(d, dict) or "ok" not in d or "n" not in d:
        raise ReportError(f"--spice {path}: not the JSON of `spikeforge spice --json` (it "
                          f"needs the keys 'ok' and 'n')")
    return d


def _check_rtl(d: Any, path: Path) -> dict[str, Any]:
    if not isinstance(d, dict) or "passed" not in d:
        raise ReportError(f"--rtl {path}: not an rtl_result.json of `spikeforge rtl "
                          f"--simulate` (it needs the key 'passed')")
    return d


def parse_pareto(text: str) -> list[dict[str, Any]]:
    """Rows of benchmarks/pareto.py: its JSON lines (the rest of its output, the Markdown
    table, is skipped), or a JSON list of the same rows."""
    stripped = text.strip()
    if stripped.startswith("["):
        rows = json.loads(stripped)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    need = ("total_parts", "mc_p5", "mc_median", "layers")
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and all(k in r for k in need) for r in rows):
        raise ValueError(f"expected rows of benchmarks/pareto.py with {', '.join(need)}")
    return rows


def _given_pareto(path: Path) -> tuple[list[dict[str, Any]] | None, bytes | None]:
    """``--pareto``: rows of pareto.py's output, or the bytes of its plot (.png)."""
    if not path.is_file():
        raise ReportError(f"--pareto {path}: no such file; give pareto.py's output "
                          f"(JSON lines) or its plot (.png)")
    if path.suffix.lower() == ".png":
        data = path.read_bytes()
        if not data.startswith(b"\x89PNG"):
            raise ReportError(f"--pareto {path}: not a PNG file")
        return None, data
    try:
        return parse_pareto(path.read_text()), None
    except (ValueError, UnicodeDecodeError) as e:
        raise ReportError(f"--pareto {path}: {e}") from None


def _pareto(data: ReportData, bundle_dir: Path | None) -> None:
    how = ("python benchmarks/pareto.py --budgets 250 500 1000 2000 5000 --boards 50 "
           "| tee runs/pareto/pareto.jsonl, then spikeforge report ... --pareto "
           "runs/pareto/pareto.jsonl (or --pareto docs/img/pareto.png, the project's MNIST "
           "benchmark plot)")
    if data.options.pareto:
        path = Path(data.options.pareto)
        rows, picture = _given_pareto(path)
        data.pareto_rows, data.pareto_png, data.pareto_source = rows, picture, str(path)
        return
    folders = [f for f in (bundle_dir, data.run_dir) if f is not None]
    for folder in folders + [f.parent for f in folders]:
        for path in _candidates(folder, PARETO_NAMES):
            with contextlib.suppress(ValueError, OSError, UnicodeDecodeError):
                data.pareto_rows = parse_pareto(path.read_text())
                data.pareto_source = str(path)
                return
    data.lack("pareto", "no stored accuracy-vs-part-count benchmark (--pareto FILE, or "
              "pareto.jsonl beside the run or bundle)", how)


# ------------------------------------------------------------------- Monte Carlo


def stored_monte_carlo(folder: Path | None) -> dict[float, tuple[dict[str, Any], Path]]:
    """Results of ``spikeforge simulate BUNDLE --monte-carlo K --json > monte_carlo.json``
    stored in the bundle, by resistor tolerance (the first file per tolerance wins)."""
    found: dict[float, tuple[dict[str, Any], Path]] = {}
    if folder is None:
        return found
    for path in sorted(folder.glob(MONTE_CARLO_GLOB)):
        try:
            d = json.loads(path.read_text())
            tol = float(d["options"]["resistor_tolerance"])
            accuracies = [float(a) for a in d["accuracies"]]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                ValueError):
            continue
        if accuracies and tol not in found:
            found[tol] = ({**d, "accuracies": accuracies}, path)
    return found


def _monte_carlo(data: ReportData, say: Any) -> None:
    """1 % and 5 % boards: stored results where they exist, else ``--boards`` drawn now."""
    from spikeforge.hardware.export import monte_carlo_bundle

    o = data.options
    bundle_dir = None if data.bundle_exported else data.bundle_dir
    stored = stored_monte_carlo(bundle_dir)
    where = str(bundle_dir) if bundle_dir is not None else "BUNDLE"
    for tol in TOLERANCES:
        command = (f"spikeforge simulate {where} --monte-carlo {o.boards or 20} --tolerance "
                   f"{tol:.0%} --seed {o.seed}"
                   + (f" --limit {len(data.labels)}" if o.limit else "")
                   + f" --json > {where}/monte_carlo_{tol:.0%}.json".replace("%", "pct"))
        hit = next((v for t, v in stored.items() if math.isclose(t, tol)), None)
        if hit is not None:
            data.monte_carlo.append(MonteCarlo(tol, hit[0], f"stored in {hit[1]}", command))
            continue
        if o.boards == 0:
            data.lack(f"monte-carlo-{tol:.0%}", f"no stored result for {tol:.0%} resistors and "
                      f"--boards 0", command)
            continue
        say(f"Monte Carlo: {o.boards} boards with {tol:.0%} resistors on {len(data.labels)} "
            f"test images")
        summary = monte_carlo_bundle(data.bundle, data.twin_x,
                                     data.labels, o.boards, o.seed, progress=o.progress,
                                     resistor_tolerance=tol)
        data.monte_carlo.append(MonteCarlo(
            tol, summary, f"drawn now by this report ({o.boards} boards, seed {o.seed})",
            command))


# ------------------------------------------------------------------- provenance


def versions() -> dict[str, Any]:
    """What made this report: spikeforge and the libraries whose numbers it shows."""
    import platform
    from importlib import metadata

    from spikeforge.train import environment

    env = environment()
    for name in ("matplotlib", "schemdraw", "numba", "nir"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            env[name] = metadata.version(name)
    env["platform"] = platform.platform()
    return env


def _train_command(config: dict[str, Any]) -> str:
    """``spikeforge train`` with the options of a stored config that differ from the
    defaults (for runs trained through the Python API, which record no command)."""
    from spikeforge.config import TrainConfig

    defaults = TrainConfig().to_dict()
    words = ["spikeforge", "train"]
    for key, value in config.items():
        if key in ("data_dir",) or value == defaults.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, list):
            words += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                                     for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _export_flags(bundle: Any) -> list[str]:
    """The ``spikeforge export`` options that reproduce a bundle's target mapping."""
    from spikeforge.hardware.components import format_value

    if bundle.target == "digital" and bundle.spec.digital is not None:
        d = bundle.spec.digital
        return ["--bits", str(d.weight_bits), "--decay-shift", str(d.decay_shift)]
    section = ((bundle.info.get("analog") or {}).get("circuit") or {}).get("options") or {}
    if not section:
        return []
    flags = ["--series", section["series"], "--r-range",
             f"{format_value(section['r_min'])}:{format_value(section['r_max'])}",
             "--r-m", format_value(section["r_m"]), "--c-m", format_value(section["c_m"]),
             "--tolerance", f"{section['resistor_tolerance']:.4g}",
             "--cap-tolerance", f"{section['capacitor_tolerance']:.4g}"]
    if section.get("r_unit") is not None:
        flags += ["--r-unit", format_value(section["r_unit"])]
    if section.get("v_ref") is not None:
        flags += ["--v-ref", f"{section['v_ref']:g}"]
    if section.get("v_threshold") not in (None, 1.0):
        flags += ["--v-threshold", f"{section['v_threshold']:g}"]
    if section.get("supply") not in (None, 5.0):
        flags += ["--supply", f"{section['supply']:g}"]
    return flags


def commands(data: ReportData) -> list[tuple[str, str]]:
    """``(what, command)``: the commands that produced everything in the report."""
    out: list[tuple[str, str]] = []
    if data.metrics is not None and data.metrics.get("command"):
        out.append(("train (as recorded in metrics.json)", shlex.join(data.metrics["command"])))
    elif data.config is not None:
        out.append(("train (reconstructed from the stored config; this run recorded no "
                    "command)", _train_command(data.config)))
    if data.bundle is not None:
        run = str((data.bundle.info.get("trained") or {}).get("run_dir") or data.run_dir
                  or "RUN")
        out_dir = str(data.bundle_dir) if data.bundle_dir is not None and \
            not data.bundle_exported else "BUNDLE"
        what = "export (done on the fly by this report)" if data.bundle_exported else "export"
        out.append((what, shlex.join(["spikeforge", "export", run, "--target",
                                      data.bundle.target, *_export_flags(data.bundle),
                                      "--out", out_dir])))
    for mc in data.monte_carlo:
        out.append((f"Monte Carlo, {mc.tolerance:.0%} resistors ({mc.source})", mc.command))
    if data.spice is not None:
        words = ["spikeforge", "spice", str(data.spice.get("bundle") or "BUNDLE"), "--inputs",
                 str(data.spice.get("n", 20))]
        words += ["--rate-curve"] if data.spice.get("rate_curves") else []
        out.append(("SPICE (stored result)",
                    f"{shlex.join([*words, '--json'])} > {data.spice_source}"))
    if data.rtl is not None and data.rtl_source:
        bundle = data.bundle_dir if data.bundle_dir is not None and \
            not data.bundle_exported else "BUNDLE"
        words = ["spikeforge", "rtl", str(bundle), "--out", str(Path(data.rtl_source).parent)]
        if data.rtl.get("images") is not None:
            words += ["--images", str(data.rtl["images"])]
        words += ["--simulate"] if data.rtl.get("simulated", True) else []
        out.append(("RTL (stored result)", shlex.join(words)))
    if data.pareto_source:
        out.append(("Pareto benchmark (stored result)",
                    f"python benchmarks/pareto.py ... (read from {data.pareto_source})"))
    report = data.options.command
    out.append(("this report", shlex.join(report) if report else
                shlex.join(["spikeforge", "report", *sys.argv[1:]])))
    return out


def _title(data: ReportData) -> str:
    sizes = "-".join(map(str, data.spec.layer_sizes)) if data.spec is not None else "network"
    target = f"{data.target} target" if data.target else "run only, no bundle"
    return f"{sizes} spiking network on {data.dataset or 'its dataset'} ({target})"
