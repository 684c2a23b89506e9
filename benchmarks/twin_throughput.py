"""Hardware-twin throughput: MNIST inferences per second of a bundle, next to the PyTorch
model's in the same run. Run::

    spikeforge train --out runs/reference                 # or any finished run
    python benchmarks/twin_throughput.py runs/reference

The run is exported to temporary digital (8-bit) and analog bundles; each method classifies
the 10,000 MNIST test images, taking turns, several rounds; the JSON line reports
samples/s (best round) and the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from spikeforge.data import load_dataset
from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.export import export
from spikeforge.hardware.simulate import run_twin
from spikeforge.train import evaluate, keep_freed_memory, load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    data = load_dataset("mnist", args.data_dir, progress=False)
    x = data.test_x
    _, _, model, _ = load_run(args.run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {}
        for target in ("digital", "analog"):
            export(args.run_dir, Path(tmp) / target, target, data_dir=args.data_dir)
            bundles[target] = load_bundle(Path(tmp) / target)

    def twin(target: str):
        b = bundles[target]
        return lambda: run_twin(b.spec, b.weights, b.biases, x)

    methods = {"twin_digital": twin("digital"), "twin_analog": twin("analog"),
               "pytorch_float32": lambda: evaluate(model, torch.from_numpy(x),
                                                   torch.from_numpy(data.test_y))}
    for run in methods.values():  # warm-up (Numba compiles on first use)
        run()
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(args.rounds):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    result = {"benchmark": "twin_throughput", "n": len(x), "threads": args.threads,
              "rounds": args.rounds}
    for name, seconds in best.items():
        result[f"{name}_samples_per_s"] = round(len(x) / seconds)
    for name in ("twin_digital", "twin_analog"):
        result[f"{name}_vs_pytorch"] = round(best["pytorch_float32"] / best[name], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
