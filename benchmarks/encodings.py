"""Input encodings compared on the reference network (784-128-10 LIF, T = 25, MNIST):
constant current (the contract's), Poisson rate and latency (time to first spike), each
trained with the same recipe, seed and epochs, side by side. Run::

    python benchmarks/encodings.py [--epochs 40] [--encodings constant_current poisson latency]

The source material saw 97.76 % with a constant current and 92.82 % with Poisson input.
Each row is exactly `spikeforge train --encoding E --epochs N`; test accuracy on all
10,000 test images (Poisson input drawn from a fixed seed at evaluation). One JSON line
per encoding, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from spikeforge.config import TrainConfig
from spikeforge.encoders import ENCODERS
from spikeforge.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encodings", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for encoding in args.encodings:
            config = TrainConfig(encoding=encoding, epochs=args.epochs, seed=args.seed,
                                 data_dir=args.data_dir)
            metrics = fit(config, Path(tmp) / encoding, progress=False, plots=False)
            row = {"encoding": encoding, "epochs": args.epochs,
                   "test_accuracy": metrics["test_accuracy"],
                   "train_seconds": metrics["train_seconds"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| encoding | test accuracy | training time |\n|---|---|---|")
    for r in rows:
        accuracy, seconds = 100 * r["test_accuracy"], r["train_seconds"]
        print(f"| {r['encoding']} | {accuracy:.2f} % | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
