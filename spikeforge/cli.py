"""The ``spikeforge`` command.

    spikeforge train [options]            train (defaults: the reference design on MNIST)
    spikeforge evaluate RUN_DIR [--json]  re-score a saved run
    spikeforge export RUN_DIR --target digital|analog --out BUNDLE
    spikeforge simulate BUNDLE [--dataset mnist] [--limit N] [--monte-carlo K] [--json]
    spikeforge verify BUNDLE [--inputs N] [--json]
    spikeforge spice BUNDLE [--inputs N] [--rate-curve]   ngspice on an analog bundle
    spikeforge rtl BUNDLE --out DIR [--simulate]    Verilog + testbench (Icarus Verilog)
    spikeforge mcu BUNDLE --out DIR [--test]        C for microcontrollers (checked by gcc)
    spikeforge report RUN_OR_BUNDLE [--out report.html] [--markdown DIR]  builder's report
    spikeforge data fetch|verify|path     manage dataset files
    spikeforge data synth-nmnist [--seed S]  build the simulated N-MNIST from MNIST
    spikeforge compare --dataset iris|mnist|mnist-binary [--methods a,b]  learning rules

Data-parallel training: ``torchrun --nproc_per_node N -m spikeforge train ...``.

Exit codes: 0 success, 2 bad input (the message says what and how to fix it),
1 internal error (a bug: the traceback is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from spikeforge import __version__
from spikeforge.errors import SpikeforgeError

#: train options: flag -> (type, help). Each maps to the TrainConfig field of the same name.
TRAIN_OPTIONS: dict[str, tuple[Any, str]] = {
    "--dataset": (str, "mnist | fashion-mnist | digits | iris | nmnist-synth | nmnist"),
    "--data-dir": (str, "dataset folder (default: $SPIKEFORGE_DATA, then ~/.cache/spikeforge)"),
    "--epochs": (int, "training epochs"),
    "--batch-size": (int, "samples per optimiser step"),
    "--lr": (float, "Adam learning rate (start of the schedule)"),
    "--lr-schedule": (str, "cosine | constant"),
    "--weight-decay": (float, "decoupled weight decay (AdamW)"),
    "--logit-scale": (float, "loss sees this x output spike counts as logits"),
    "--hidden": (str, "hidden layer widths, e.g. 128 or 256,128"),
    "--timesteps": (int, "clocks per inference, T"),
    "--decay": (float, "membrane decay per clock, in (0, 1]"),
    "--threshold": (float, "firing threshold, > 0"),
    "--reset": (str, "zero | subtract"),
    "--refractory": (int, "refractory clocks after a spike"),
    "--input-scale": (float, "input current per unit pixel"),
    "--surrogate": (str, "surrogate gradient: fast_sigmoid | atan | superspike | sigmoid | "
                         "straight_through | triangular | gaussian"),
    "--surrogate-slope": (float, "the surrogate's shape parameter (default: its own)"),
    "--model": (str, "mlp (SpikingNet, buildable) | conv (ConvSpikingNet, software only)"),
    "--channels": (str, "conv: output channels per convolution, e.g. 16,32"),
    "--kernel-size": (int, "conv: kernel side"),
    "--pool": (int, "conv: max-pooling window after each convolution"),
    "--neuron": (str, "neuron cell: lif | if | synaptic | alif | expif | adex | lapicque | "
                      "alpha | second_order_lif | recurrent_lif (only lif/if are buildable)"),
    "--learn-decay": (bool, "learn a decay per neuron (software only)"),
    "--learn-threshold": (bool, "learn a threshold per neuron (software only)"),
    "--encoding": (str, "input encoding: constant_current | poisson | latency (event "
                                 "datasets: events, set by itself)"),
    "--encoding-gain": (float, "poisson: firing probability per step at pixel value 1"),
    "--loss": (str, "ce_count | ce_membrane | mse_rate"),
    "--target-rate": (float, "mse_rate: firing rate per step of the true class"),
    "--spike-l1": (float, "weight of the L1 spike-count regulariser on hidden layers"),
    "--spike-l2": (float, "weight of the L2 spike-count regulariser on hidden layers"),
    "--augment-shift": (int, "random shift of training images, pixels (0 = off)"),
    "--dropout": (float, "hidden-spike dropout during training (0 = off)"),
    "--quantize-bits": (int, "quantisation-aware training with this many weight bits"),
    "--init-from": (str, "start from the weights of this run directory (fine-tuning)"),
    "--downsample": (int, "input front-end: average-pool images by k x k (2: 28x28 -> 14x14)"),
    "--series": (str, "analog: train on the weights one resistor of this E-series can realise"),
    "--r-range": (str, "analog: smallest,largest synapse resistor for --series, e.g. 10k,1M"),
    "--weight-noise": (float, "analog: multiply weights by 1 + U(-tol, tol) in training "
                              "(part tolerance, e.g. 0.01)"),
    "--gain-noise": (float, "analog: the same per neuron on its input current (capacitors)"),
    "--max-synapses": (int, "prune gradually to at most this many non-zero weights in all"),
    "--fan-in": (int, "at most this many non-zero inputs per neuron"),
    "--part-budget": (int, "find and train a network of at most N synapse resistors"),
    "--seed": (int, "random seed"),
    "--limit-train": (int, "use only the first N training samples"),
    "--limit-test": (int, "use only the first N test samples"),
    "--eval-batch-size": (int, "samples per evaluation batch"),
    "--out": (str, "run directory (default runs/<dataset>-<timestamp>)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeforge", description="Train spiking neural networks and deploy them to "
        "hardware built from discrete parts.")
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a spiking network (default: reference design)",
                           description="Train a spiking network. With no options: the "
                                       "reference design (784-128-10 LIF, T=25) on MNIST.")
    for flag, (kind, text) in TRAIN_OPTIONS.items():
        if kind is bool:
            train.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
        else:
            train.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)
    train.add_argument("--config", help="TOML file with any of the options above")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--force", action="store_true", help="replace an existing run in --out")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print metrics as JSON")

    evaluate = sub.add_parser("evaluate", help="re-score a saved run on its test set")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--dataset", help="score on another dataset's test split with the "
                          "same inputs (e.g. nmnist-sample, the real recordings, for a run "
                          "trained on nmnist-synth); default: the run's own")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="write a deployment bundle for a trained run")
    export.add_argument("run_dir")
    export.add_argument("--target", required=True, choices=["digital", "analog"])
    export.add_argument("--out", required=True, help="bundle folder to write")
    export.add_argument("--bits", type=int, default=8, help="digital: signed weight bits")
    export.add_argument("--decay-shift", type=int, default=8,
                        help="digital: decay as a multiply by k / 2^shift")
    analog = export.add_argument_group("analog target (defaults: spikeforge.hardware.circuit)")
    analog.add_argument("--series", help="resistor series: E6 E12 E24 E48 E96 (default: the "
                        "series the run was trained on, else E24)")
    analog.add_argument("--r-unit", default="auto", help="ohms per unit weight (R = R_unit / "
                        "|w|), or auto: per layer, the largest weight gets the smallest resistor")
    analog.add_argument("--r-range", help="smallest:largest synapse resistor (default: the "
                        "run's --r-range, else 10k:1M)")
    analog.add_argument("--r-m", default="100k", help="membrane leak resistor R_m")
    analog.add_argument("--c-m", default="10n", help="membrane capacitor C_m")
    analog.add_argument("--v-ref", default="auto", help="spike-line amplitude, volts, or auto: "
                        "per layer, for a threshold of --v-threshold")
    analog.add_argument("--v-threshold", default="1", help="threshold voltage aimed at (auto "
                        "--v-ref)")
    analog.add_argument("--supply", default="5", help="op-amp/comparator rails ±volts")
    analog.add_argument("--tolerance", default="1%", help="resistor tolerance (1%% or 0.01)")
    analog.add_argument("--cap-tolerance", default="5%", help="capacitor tolerance")
    export.add_argument("--data-dir")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.add_argument("--json", action="store_true")

    simulate = sub.add_parser("simulate", help="run a bundle on a dataset with the hardware twin")
    simulate.add_argument("bundle")
    simulate.add_argument("--dataset", help="default: the dataset the bundle was trained on")
    simulate.add_argument("--limit", type=int, help="first N test samples only")
    simulate.add_argument("--data-dir")
    simulate.add_argument("--json", action="store_true")
    mc = simulate.add_argument_group("Monte Carlo (analog bundles): draw boards of real parts")
    mc.add_argument("--monte-carlo", type=int, metavar="K", help="draw K boards, every part "
                    "off nominal within its tolerance, and score each")
    mc.add_argument("--tolerance", help="resistor tolerance (default: the bundle's)")
    mc.add_argument("--cap-tolerance", help="capacitor tolerance (default: the bundle's)")
    mc.add_argument("--comparator-offset", help="comparator offset σ, volts (e.g. 2m)")
    mc.add_argument("--distribution", choices=["uniform", "gaussian"],
                    help="part deviation: uniform within ±tol, or gaussian with σ = tol/3")
    mc.add_argument("--seed", type=int, default=0, help="seed of the drawn boards")
    mc.add_argument("--plot", help="histogram PNG (default: BUNDLE/monte_carlo.png)")

    verify = sub.add_parser("verify", help="twin vs PyTorch spike by spike, and NIR round trip")
    verify.add_argument("bundle")
    verify.add_argument("--inputs", type=int, help="test inputs to compare (default: all)")
    verify.add_argument("--nir-inputs", type=int, default=1000,
                        help="test inputs for the snnTorch and Norse NIR imports")
    verify.add_argument("--data-dir")
    verify.add_argument("--json", action="store_true")

    spice = sub.add_parser("spice", help="simulate an analog bundle's circuit in ngspice and "
                           "compare every spike with the twin")
    spice.add_argument("bundle")
    spice.add_argument("--inputs", type=int, default=20, help="test images to simulate")
    spice.add_argument("--rate-curve", action="store_true",
                       help="also sweep one neuron per layer over its input current range")
    spice.add_argument("--workdir", help="keep the netlist and ngspice's log here")
    spice.add_argument("--data-dir")
    spice.add_argument("--json", action="store_true")

    data = sub.add_parser("data", help="fetch, verify or locate dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    for name, text in (("fetch", "download (or rebuild) and md5-check a dataset"),
                       ("verify", "md5-check a dataset's files")):
        p = data_sub.add_parser(name, help=text)
        p.add_argument("dataset", choices=["mnist", "fashion-mnist"])
        p.add_argument("--data-dir")
    path = data_sub.add_parser("path", help="print the data directory in use")
    path.add_argument("--data-dir")
    synth = data_sub.add_parser(
        "synth-nmnist", help="build the simulated N-MNIST (every MNIST image seen by a simulated "
        "event camera), cached shard by shard; reproducible from --seed",
        description="Simulate an event camera watching each MNIST image move along N-MNIST's "
        "three saccades (docs/events.md). Built shards are kept: an interrupted build resumes.")
    synth.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    synth.add_argument("--shards", type=int, help="build only the first N shards of 5,000 "
                       "recordings per split (default: all)")
    synth.add_argument("--split", choices=["train", "test", "both"], default="both")
    synth.add_argument("--force", action="store_true", help="rebuild from scratch")
    synth.add_argument("--data-dir")
    synth.add_argument("--no-progress", action="store_true")

    compare = sub.add_parser(
        "compare", help="train learning-rule baselines on one dataset and compare them",
        description="Train several learning rules (ANNs, REINFORCE, surrogate gradients, "
                    "STDP) on one dataset, each choosing only on a validation split, and "
                    "compare their test accuracy. Writes results.json, comparison.png and "
                    "diagnostic plots into --out.")
    compare.add_argument("--dataset", required=True, help="iris | mnist | mnist-binary")
    compare.add_argument("--methods", help="comma-separated, e.g. ann-relu,reinforce "
                         "(default: every available method); ann-sigmoid | ann-relu | "
                         "reinforce | surrogate | r-stdp | bp-stdp")
    compare.add_argument("--epochs", type=int, help="epochs for every method (default: "
                         "each method's own for the dataset)")
    compare.add_argument("--seed", type=int, default=0, help="random seed")
    compare.add_argument("--limit-train", type=int, help="use only the first N training "
                         "samples")
    compare.add_argument("--limit-test", type=int, help="use only the first N test samples")
    compare.add_argument("--out", help="output folder (default runs/compare-<dataset>)")
    compare.add_argument("--data-dir")
    compare.add_argument("--json", action="store_true", help="print the results as JSON")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = sub.add_parser(
        "report", help="one self-contained HTML page (and optionally Markdown) on a run "
        "and/or bundle, for the builder", description="Write the hardware report "
        "(docs/report.md): network, neuron schematic, timing, encoding, training curves, "
        "confusion matrix, spikes and membranes, receptive fields, accuracy of the float "
        "model, the twin and Monte-Carlo boards, Pareto plot, BOM, SPICE and RTL results, "
        "and the commands and versions behind them. Missing pieces say how to make them.")
    report.add_argument("path", nargs="?", metavar="RUN_OR_BUNDLE",
                        help="a run directory (checkpoint.pt) or a bundle (spec.json)")
    report.add_argument("--run", help="the run directory (to combine with --bundle)")
    report.add_argument("--bundle", help="the bundle (to combine with --run)")
    report.add_argument("--out", help="HTML file to write (default RUN/report.html, else "
                        "BUNDLE/report.html)")
    report.add_argument("--markdown", metavar="DIR", help="also write DIR/report.md and its "
                        "PNG figures")
    report.add_argument("--images", type=int, default=3, help="test images to trace "
                        "(spike rasters, membranes); default 3")
    report.add_argument("--boards", type=int, default=20, help="Monte-Carlo boards per "
                        "tolerance (1%%, 5%%) when no stored result exists; 0: none "
                        "(default 20)")
    report.add_argument("--limit", type=int, help="score on the first N test images only "
                        "(default: the bundle's own test set)")
    report.add_argument("--seed", type=int, default=0, help="seed of the drawn boards")
    report.add_argument("--target", choices=["analog", "digital"], default="analog",
                        help="target of the bundle exported on the fly when only a run is "
                             "given (default analog)")
    report.add_argument("--no-export", action="store_true", help="given only a run, do not "
                        "export a bundle on the fly: report the run's parts")
    report.add_argument("--rtl", metavar="DIR", help="output of `spikeforge rtl --simulate` "
                        "(DIR/rtl_result.json); default: BUNDLE/rtl if there")
    report.add_argument("--spice", metavar="FILE_OR_DIR", help="JSON of `spikeforge spice "
                        "--json` (or a folder holding spice.json); default: BUNDLE/spice.json")
    report.add_argument("--pareto", metavar="FILE", help="benchmarks/pareto.py's output "
                        "(JSON lines) or plot (.png); default: pareto.jsonl beside the run "
                        "or bundle")
    report.add_argument("--data-dir")
    report.add_argument("--json", action="store_true", help="print what was written as JSON")
    report.add_argument("--no-progress", action="store_true", help="no progress output")

    rtl = sub.add_parser(
        "rtl", help="Verilog RTL for a digital bundle, checked against the twin in Icarus "
        "Verilog", description="Write synthesizable Verilog-2005 for a digital bundle and a "
        "self-checking testbench that compares every layer's spikes at every step with the "
        "twin's (docs/digital.md); --simulate runs it in Icarus Verilog, Yosys (if "
        "installed) estimates its resources. Writes OUT/rtl_result.json.")
    rtl.add_argument("bundle")
    rtl.add_argument("--out", required=True, help="folder to write (rtl/, tb/, README.md, "
                     "rtl_result.json)")
    rtl.add_argument("--simulate", action="store_true",
                     help="run the testbench in Icarus Verilog (package iverilog)")
    rtl.add_argument("--images", type=int, default=100,
                     help="test images the testbench feeds (default 100)")
    rtl.add_argument("--lanes", type=int, default=16,
                     help="neurons computed in parallel per layer (default 16)")
    rtl.add_argument("--synth", action=argparse.BooleanOptionalAction, default=None,
                     help="Yosys resource estimate (default: when yosys is installed)")
    rtl.add_argument("--timeout", type=float, default=3600.0,
                     help="seconds allowed for the simulation and for the synthesis")
    rtl.add_argument("--dataset", help="default: the dataset the bundle was trained on")
    rtl.add_argument("--data-dir")
    rtl.add_argument("--force", action="store_true", help="replace an existing --out folder")
    rtl.add_argument("--json", action="store_true")
    rtl.add_argument("--no-progress", action="store_true", help="no progress bar")

    mcu = sub.add_parser(
        "mcu", help="C for microcontrollers from a digital bundle, tested bit for bit against "
        "the twin", description="Write portable C99 for a digital bundle (integer weights as "
        "const arrays, no float, no malloc) and a host harness; --test compiles it with gcc "
        "and compares every spike, count and prediction with the twin (docs/digital.md). "
        "Writes OUT/mcu_result.json.")
    mcu.add_argument("bundle")
    mcu.add_argument("--out", required=True, help="folder to write (spikeforge_net.h/.c, "
                     "harness.c, README.md, mcu_result.json)")
    mcu.add_argument("--test", action="store_true",
                     help="compile the harness on this host and compare it with the twin")
    mcu.add_argument("--images", type=int, default=1000,
                     help="test images for --test (default 1000)")
    mcu.add_argument("--sanitize", action="store_true", help="compile the harness with "
                     "-fsanitize=undefined,address (signed overflow stops the test)")
    mcu.add_argument("--cc", default="gcc", help="host C compiler (default gcc)")
    mcu.add_argument("--dataset", help="default: the dataset the bundle was trained on")
    mcu.add_argument("--data-dir")
    mcu.add_argument("--force", action="store_true", help="replace an existing --out folder")
    mcu.add_argument("--json", action="store_true")
    return parser


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from spikeforge.config import TrainConfig, load_toml
    from spikeforge.train import fit

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        if options or args.config:
            raise SpikeforgeError(f"--resume continues a run with its stored config; drop "
                                  f"{', '.join(sorted(options)) or '--config'} (or start a new "
                                  f"run with --out)")
        metrics = fit(TrainConfig(), args.resume, resume=True, progress=not args.no_progress,
                      device=args.device, command=argv)
    else:
        settings = load_toml(args.config) if args.config else {}
        config = TrainConfig.from_dict({**settings, **options},
                                       source=args.config or "command line")
        metrics = fit(config, force=args.force, progress=not args.no_progress,
                      device=args.device, command=argv)
    if "test_accuracy" not in metrics:  # a torchrun rank other than 0: rank 0 reports
        return 0
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"test accuracy {metrics['test_accuracy']:.2%} ({metrics['test_correct']}/"
              f"{metrics['n_test']}) after {metrics['epochs']} epochs, "
              f"{metrics['train_seconds']:.0f} s of training "
              f"({metrics['samples_per_second']:.0f} samples/s); run in {metrics['run_dir']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spikeforge.train import evaluate_run

    result = evaluate_run(args.run_dir, args.data_dir, dataset=args.dataset)
    if args.json:
        print(json.dumps(result))
    else:
        line = f"test accuracy {result['test_accuracy']:.2%} ({result['test_correct']}/" \
               f"{result['n_test']}) on {result['dataset']}"
        if "reported_test_accuracy" in result:
            same = "same as" if result["matches_reported"] else "DIFFERENT from"
            line += f", {same} the reported {result['reported_test_accuracy']:.2%}"
        print(line)
    return 0


def _fraction(text: str, name: str) -> float:
    """``1%`` or ``0.01`` -> 0.01."""
    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise SpikeforgeError(f"{name} {text!r} is not a fraction: write e.g. 1% or 0.01") \
            from None
    if not 0 <= value < 0.5:
        raise SpikeforgeError(f"{name} {text!r} is not allowed: it must be in [0 %, 50 %)")
    return value


def _circuit_options(args: argparse.Namespace) -> Any:
    """The analog options of ``spikeforge export``; series and resistor range default to
    those the run was trained on (series-aware training), so export snaps nothing twice."""
    from spikeforge.hardware.circuit import CircuitOptions
    from spikeforge.hardware.components import parse_value
    from spikeforge.train import load_checkpoint

    trained = load_checkpoint(args.run_dir)["config"]
    series = args.series or trained.get("series") or "E24"
    if args.r_range is None:
        lo, hi = trained.get("r_range") or (10e3, 1e6)
    else:
        text, sep, high = args.r_range.replace(",", ":").partition(":")
        if not sep:
            raise SpikeforgeError(f"--r-range {args.r_range!r}: write smallest:largest, e.g. "
                                  f"10k:1M")
        lo, hi = parse_value(text), parse_value(high)
    return CircuitOptions(
        series=series.upper(), r_min=float(lo), r_max=float(hi),
        r_unit=None if args.r_unit == "auto" else parse_value(args.r_unit),
        r_m=parse_value(args.r_m), c_m=parse_value(args.c_m),
        v_ref=None if args.v_ref == "auto" else parse_value(args.v_ref),
        v_threshold=parse_value(args.v_threshold),
        supply=parse_value(args.supply),
        resistor_tolerance=_fraction(args.tolerance, "--tolerance"),
        capacitor_tolerance=_fraction(args.cap_tolerance, "--cap-tolerance"))


def _export(args: argparse.Namespace) -> int:
    from spikeforge.hardware.export import export

    options = _circuit_options(args) if args.target == "analog" else None
    bundle, notes = export(args.run_dir, args.out, args.target, args.bits, args.decay_shift,
                           args.data_dir, args.force, options)
    accuracy = bundle.info["accuracy"]
    if args.json:
        print(json.dumps({"bundle": args.out, "target": args.target, **accuracy,
                          "parts": bundle.info["parts"], "notes": notes}))
    else:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {args.out} ({args.target}): {accuracy['accuracy']:.2%} on "
              f"{accuracy['n']} {accuracy['dataset']} test images with exactly these weights")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.export import score_bundle

    bundle = load_bundle(args.bundle)
    dataset = args.dataset or bundle.info.get("accuracy", {}).get("dataset", "mnist")
    if args.monte_carlo is not None:
        return _monte_carlo(args, bundle, dataset)
    result = score_bundle(bundle, dataset, args.data_dir, args.limit)
    summary = {k: result[k] for k in ("accuracy", "n", "mean_spikes_per_inference")}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['accuracy']:.2%} on {summary['n']} {dataset} test images, "
              f"{summary['mean_spikes_per_inference']:.1f} spikes per inference")
    return 0


def _monte_carlo(args: argparse.Namespace, bundle: Any, dataset: str) -> int:
    from pathlib import Path

    from spikeforge.hardware.components import parse_value
    from spikeforge.hardware.export import bundle_dataset, monte_carlo_bundle
    from spikeforge.plots import plot_monte_carlo

    if args.monte_carlo < 1:
        raise SpikeforgeError("--monte-carlo K needs K >= 1 boards")
    overrides: dict[str, Any] = {}
    if args.tolerance is not None:
        overrides["resistor_tolerance"] = _fraction(args.tolerance, "--tolerance")
    if args.cap_tolerance is not None:
        overrides["capacitor_tolerance"] = _fraction(args.cap_tolerance, "--cap-tolerance")
    if args.comparator_offset is not None:
        overrides["comparator_offset"] = parse_value(args.comparator_offset)
    if args.distribution is not None:
        overrides["distribution"] = args.distribution
    data = bundle_dataset(bundle, dataset, args.data_dir, args.limit)
    from spikeforge.hardware.simulate import twin_inputs

    summary = monte_carlo_bundle(bundle, twin_inputs(bundle.spec, data.test_x), data.test_y,
                                 args.monte_carlo,
                                 args.seed, progress=not args.json, **overrides)
    plot = Path(args.plot or Path(args.bundle) / "monte_carlo.png")
    plot_monte_carlo(summary, plot)
    summary["plot"] = str(plot)
    if args.json:
        print(json.dumps(summary))
    else:
        o = summary["options"]
        print(f"{summary['boards']} boards ({o['resistor_tolerance']:.1%} resistors, "
              f"{o['capacitor_tolerance']:.0%} capacitors, {o['comparator_offset'] * 1e3:g} mV "
              f"comparator offset, {o['distribution']}) on {summary['n']} {dataset} test "
              f"images:")
        print(f"  mean {summary['mean']:.2%}  median {summary['median']:.2%}  5th percentile "
              f"{summary['p5']:.2%}  worst {summary['worst']:.2%}  (ideal parts "
              f"{summary['ideal']:.2%}, nominal parts {summary['nominal']:.2%})")
        print(f"  histogram: {plot}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from spikeforge.hardware.verify import verify

    report = verify(args.bundle, args.inputs, args.nir_inputs, args.data_dir)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"twin vs PyTorch ({report['torch_side']}): {report['identical_spike_trains']}/"
              f"{report['n']} inputs with identical spike trains in every layer, "
              f"{report['identical_predictions']}/{report['n']} identical predictions")
        nir_report = report["nir"]
        for name in ("snntorch", "norse"):
            r = nir_report.get(name, {})
            if "agreement" in r:
                print(f"NIR -> {name}: {r['agreement']:.2%} of {nir_report['n']} predictions "
                      f"agree with the twin")
            else:
                print(f"NIR -> {name}: {r.get('error', 'not run')}")
        for difference in nir_report.get("differences", []):
            print(f"  NIR differs: {difference}")
    if not report["ok"]:
        print("spikeforge: verify FAILED: the digital twin and PyTorch disagree", file=sys.stderr)
        return 1
    return 0


def _spice(args: argparse.Namespace) -> int:
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.spice import neuron_rate_curve, spice_bundle

    report = spice_bundle(args.bundle, args.inputs, data_dir=args.data_dir,
                          workdir=args.workdir)
    if args.rate_curve:
        circuit = load_bundle(args.bundle).circuit()
        report["rate_curves"] = []
        for layer in range(len(circuit.layers)):
            curve = neuron_rate_curve(circuit, layer, workdir=args.workdir)
            report["rate_curves"].append({k: curve[k] for k in ("identical",
                                                                 "max_abs_difference")})
            report["ok"] = report["ok"] and curve["identical"]
    if args.json:
        print(json.dumps(report, default=str))
    else:
        ng = report["ngspice"]
        print(f"ngspice: {report['n']} test images, {ng.get('resistors', '?')} resistors, "
              f"{ng.get('neurons', '?')} neurons, {ng['seconds']:.0f} s")
        for name in ("board", "ideal"):
            r = report.get(name)
            if r:
                what = ("nominal board (switch R_on, swing)" if name == "board"
                        else "ideal parts (bundle weights)")
                print(f"  vs twin, {what}: identical output spike counts "
                      f"{r['identical_counts']}/{report['n']}, identical predictions "
                      f"{r['identical_predictions']}/{report['n']}, differing spikes per layer "
                      f"{r['differing_spikes']}")
        for layer, curve in enumerate(report.get("rate_curves", [])):
            print(f"  rate curve, layer {layer + 1}: "
                  f"{'identical' if curve['identical'] else 'DIFFERENT'} (largest rate "
                  f"difference {curve['max_abs_difference']:.3g} spikes per clock)")
    if not report["ok"]:
        print("spikeforge: spice FAILED: the circuit and the twin disagree", file=sys.stderr)
        return 1
    return 0


def _data(args: argparse.Namespace) -> int:
    from spikeforge.data.downloads import fetch
    from spikeforge.data.files import IDX_FILES, find_idx, missing_or_corrupt, resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if args.data_command == "synth-nmnist":
        from spikeforge.events.datasets import SPLITS, build_synth_nmnist

        splits = SPLITS if args.split == "both" else (args.split,)
        if args.shards is not None and args.shards < 1:
            raise SpikeforgeError(f"--shards {args.shards}: give a number >= 1, or leave it "
                                  f"out for all")
        folder = build_synth_nmnist(args.data_dir, args.seed, splits, args.shards,
                                    force=args.force, progress=not args.no_progress)
        print(f"nmnist-synth (seed {args.seed}): built in {folder}")
        return 0
    if args.data_command == "path":
        print(data_dir)
        return 0
    if args.data_command == "fetch":
        folder = fetch(args.dataset, data_dir)
        print(f"{args.dataset}: all files present and md5-verified in {folder}")
        return 0
    bad = missing_or_corrupt(args.dataset, data_dir)
    for spec in IDX_FILES[args.dataset].values():
        path = find_idx(data_dir / args.dataset, spec)
        status = "missing" if path is None else ("CORRUPT" if spec in bad else "ok")
        print(f"{status:8s} {path or data_dir / args.dataset / spec.name}")
    if bad:
        raise SpikeforgeError(f"{args.dataset}: {len(bad)} file(s) missing or corrupt; run "
                              f"`spikeforge data fetch {args.dataset}`")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spikeforge.baselines.common import BaselineSettings
    from spikeforge.baselines.compare import (
        chance_level,
        check_settings,
        format_table,
        resolve_methods,
        run_comparison,
        save_results,
        write_outputs,
    )

    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = BaselineSettings(epochs=args.epochs, seed=args.seed,
                                limit_train=args.limit_train, limit_test=args.limit_test,
                                progress=not args.no_progress)
    check_settings(settings)
    # names, dataset and imports are checked before any data is loaded or time spent
    chosen, skipped = resolve_methods(args.dataset, methods)
    for reason in skipped.values():
        print(f"note: skipped: {reason}", file=sys.stderr)
    if not chosen:
        raise SpikeforgeError(f"no method can run on {args.dataset}")
    out = Path(args.out or Path("runs") / f"compare-{args.dataset}")

    finished: list[Any] = []

    def report(result: Any) -> None:
        # saved after every method, so a long comparison stopped midway keeps what it did
        finished.append(result)
        save_results(finished, out / "results.json", settings)
        print(f"{result.method}: {result.test_accuracy:.2%} test accuracy after "
              f"{result.epochs} epochs, {result.seconds:.1f} s", file=sys.stderr)

    try:
        results = run_comparison(args.dataset, [name for name, _ in chosen], settings,
                                 args.data_dir, on_result=report)
    except KeyboardInterrupt:
        kept = (f"; the results of the {len(finished)} finished method(s) are in "
                f"{out / 'results.json'}" if finished else "")
        print(f"spikeforge: interrupted{kept}", file=sys.stderr)
        return 130
    written = write_outputs(results, out, settings)
    for note in written["notes"]:
        print(f"note: {note}", file=sys.stderr)
    files = [str(written["results"]), str(written["comparison"]),
             *map(str, written["class_histograms"])]
    if args.json:
        print(json.dumps({"dataset": args.dataset, "chance": chance_level(args.dataset),
                          "results": [r.row() for r in results],
                          "skipped": skipped, "files": files}))
    else:
        print(format_table(results))
        print(f"\n{args.dataset}: chance {chance_level(args.dataset):.0%}; wrote "
              f"{', '.join(files)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from spikeforge.report import ReportOptions, make_report

    options = ReportOptions(
        path=args.path, run=args.run, bundle=args.bundle, out=args.out,
        markdown=args.markdown, target=args.target, export=not args.no_export,
        images=args.images, boards=args.boards, limit=args.limit, seed=args.seed,
        rtl=args.rtl, spice=args.spice, pareto=args.pareto, data_dir=args.data_dir,
        progress=not (args.no_progress or args.json), command=tuple(args.argv))
    result = make_report(options)
    if args.json:
        print(json.dumps(result))
        return 0
    missing = [k for k, ok in result["sections"].items() if not ok]
    print(f"wrote {result['html']} ({result['bytes'] / 1e6:.1f} MB, "
          f"{len(result['sections']) - len(missing)}/{len(result['sections'])} sections"
          + (f"; not available: {', '.join(missing)}" if missing else "") + ")")
    if "markdown" in result:
        print(f"wrote {result['markdown']}")
    return 0


def _rtl(args: argparse.Namespace) -> int:
    from spikeforge.hardware.rtl import RtlOptions, rtl_bundle

    options = RtlOptions(lanes=args.lanes, images=args.images, simulate=args.simulate,
                         synth=args.synth, timeout=args.timeout,
                         progress=not (args.no_progress or args.json))
    result = rtl_bundle(args.bundle, args.out, options, args.dataset, args.data_dir,
                        args.force)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "layers"}))
    else:
        print(f"wrote {result['out']}: Verilog for {result['bundle']}, "
              f"{result['cycles_per_inference']} clocks per inference ({args.lanes} lanes)")
        if result["simulated"]:
            verdict = "PASS" if result["passed"] else f"FAIL: {result['mismatch']}"
            print(f"Icarus Verilog, {result['images']} {result['dataset']} test images, every "
                  f"layer's spikes at every step against the twin: {verdict}")
        synth = result["synthesis"]
        if synth:
            print(f"Yosys: {synth['cells']} cells, {synth['flip_flops']} flip-flops, "
                  f"{synth['memory_bits']} memory bits in {synth['memories']} memories "
                  f"({synth['seconds']:.0f} s)")
    if result["simulated"] and not result["passed"]:
        print("spikeforge: rtl FAILED: the RTL and the twin disagree", file=sys.stderr)
        return 1
    return 0


def _mcu(args: argparse.Namespace) -> int:
    from spikeforge.hardware.mcu import McuOptions, mcu_bundle

    options = McuOptions(images=args.images, test=args.test, sanitize=args.sanitize,
                         cc=args.cc)
    result = mcu_bundle(args.bundle, args.out, options, args.dataset, args.data_dir,
                        args.force)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {result['out']}: C for {result['bundle']}, {result['flash_bytes']} bytes "
              f"of const weights")
        if result["tested"]:
            n = result["images"]
            print(f"{args.cc} build on {n} {result['dataset']} test images against the twin: "
                  f"{result['identical_spike_trains']}/{n} identical spike trains, "
                  f"{result['identical_counts']}/{n} identical counts, "
                  f"{result['identical_predictions']}/{n} identical predictions"
                  + ("" if result["passed"] else f"; first difference: {result['mismatch']}"))
            print(f"workspace (RAM) {result['ram_bytes']} bytes"
                  + (f"; {result['host_us_per_inference']:.1f} µs per inference on this host"
                     if result.get("host_us_per_inference") is not None else ""))
    if result["tested"] and not result["passed"]:
        print("spikeforge: mcu FAILED: the C code and the twin disagree", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args, ["spikeforge", *argv])
        args.argv = ["spikeforge", *argv]  # the command as typed, for what records it
        handlers = {"evaluate": _evaluate, "export": _export, "simulate": _simulate,
                    "verify": _verify, "spice": _spice, "data": _data,
                    "compare": _compare, "report": _report, "rtl": _rtl, "mcu": _mcu}
        return handlers[args.command](args)
    except SpikeforgeError as e:
        print(f"spikeforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted; finished epochs are saved (resume with --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
