"""Monte Carlo of an analog board: what a network scores when it is built from real parts,
and how fast spikeforge tells. Run::

    spikeforge train --out runs/reference                 # or any finished run
    python benchmarks/monte_carlo.py runs/reference --boards 100

The run is exported as an analog bundle (E24 resistors, 10k..1M, auto references); then
``--boards`` boards are drawn for each resistor tolerance (1 % and 5 %; capacitors 5 %,
comparator offset 2 mV, references 0.5 %, uniform within tolerance) and each board scores
all 10,000 MNIST test images. In the same run the plain twin scores the bundle's weights
once per board, so the cost of a drawn board is reported as a ratio to a plain pass. One
JSON line per tolerance: accuracy (ideal parts, nominal parts, mean, median, 5th
percentile, worst), seconds, and boards x images per second.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.circuit import CircuitOptions
from spikeforge.hardware.export import bundle_dataset, export, monte_carlo_bundle
from spikeforge.hardware.simulate import run_twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--boards", type=int, default=100)
    parser.add_argument("--series", default="E24")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export(args.run_dir, Path(tmp) / "analog", "analog", data_dir=args.data_dir,
               circuit_options=CircuitOptions(series=args.series))
        bundle = load_bundle(Path(tmp) / "analog")
    data = bundle_dataset(bundle, data_dir=args.data_dir)
    x, y = data.test_x, data.test_y
    run_twin(bundle.spec, bundle.weights, bundle.biases, x[:100])  # compile the kernels
    for tolerance in args.tolerances:
        start = time.perf_counter()
        summary = monte_carlo_bundle(bundle, x, y, args.boards, seed=0,
                                     resistor_tolerance=tolerance)
        mc_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(max(1, args.boards // 10)):
            run_twin(bundle.spec, bundle.weights, bundle.biases, x)
        plain_seconds = (time.perf_counter() - start) / max(1, args.boards // 10)
        summary.pop("accuracies")
        print(json.dumps({
            "run": args.run_dir, "series": args.series, "resistor_tolerance": tolerance,
            "layers": list(bundle.spec.layer_sizes), "parts": bundle.info["parts"],
            **{k: summary[k] for k in ("boards", "n", "ideal", "nominal", "mean", "median",
                                       "p5", "worst")},
            "seconds": round(mc_seconds, 2),
            "board_images_per_second": round(args.boards * len(y) / mc_seconds),
            "seconds_per_board": round(mc_seconds / args.boards, 4),
            "plain_twin_seconds_per_pass": round(plain_seconds, 4),
            "board_cost_vs_plain_twin": round(mc_seconds / args.boards / plain_seconds, 2)}))


if __name__ == "__main__":
    main()
