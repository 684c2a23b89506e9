"""Accuracy and training time of `spikeforge train` (the reference design on MNIST) over
several seeds, so that the figure in docs/benchmarks.md is not one lucky draw. Run::

    python benchmarks/reference_accuracy.py --seeds 0 1 2

Each seed is exactly `spikeforge train --seed S` (default config, 2 CPU threads); one JSON
line per seed, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from spikeforge.config import TrainConfig
from spikeforge.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            config = TrainConfig(seed=seed, data_dir=args.data_dir)
            metrics = fit(config, Path(tmp) / f"seed{seed}", progress=False, plots=False)
            row = {"seed": seed, "test_accuracy": metrics["test_accuracy"],
                   "train_seconds": metrics["train_seconds"],
                   "wall_seconds": metrics["wall_seconds"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    accuracies = [r["test_accuracy"] for r in rows]
    print(json.dumps({"benchmark": "reference_accuracy", "epochs": TrainConfig().epochs,
                      "seeds": args.seeds, "mean_test_accuracy": statistics.mean(accuracies),
                      "min_test_accuracy": min(accuracies),
                      "max_train_seconds": max(r["train_seconds"] for r in rows),
                      "torch_threads": args.threads}))


if __name__ == "__main__":
    main()
