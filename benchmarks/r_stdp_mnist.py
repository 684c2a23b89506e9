"""R-STDP on MNIST: the source's architecture (784-400-10) beside spikeforge's default
(784-10), with the diagnostics that explain the difference.

    python benchmarks/r_stdp_mnist.py [--epochs 3] [--limit-train N] [--out docs/img]

For each architecture it prints the test accuracy, the share of test predictions per
class, and per training chunk the mean reward, the fraction of silent decisions (no output
spike) and of tied decisions (several outputs share the top count; the lowest index wins,
class 0 when all are silent), and writes the class histogram over training as
``r_stdp-<sizes>-class_histogram.png``. Both use :func:`spikeforge.baselines.stdp.r_stdp_config`
for MNIST, learning rate chosen on the validation split; only ``hidden`` differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from spikeforge.baselines.common import BaselineSettings, load_compare_dataset
from spikeforge.baselines.compare import plot_class_histogram
from spikeforge.baselines.stdp import r_stdp_config, train_r_stdp

ARCHITECTURES = {"784-400-10 (source)": (400,), "784-10 (spikeforge default)": ()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/r_stdp_mnist")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    settings = BaselineSettings(epochs=args.epochs, seed=args.seed,
                                limit_train=args.limit_train, progress=sys.stderr.isatty())
    data = load_compare_dataset("mnist", args.data_dir, progress=settings.progress)
    out = Path(args.out)
    rows = []
    for name, hidden in ARCHITECTURES.items():
        config = dataclasses.replace(r_stdp_config("mnist"), hidden=hidden)
        result = train_r_stdp(data, settings, config)
        d = result.diagnostics
        tag = name.split()[0]
        plot = plot_class_histogram(result, out / f"r_stdp-{tag}-class_histogram.png")
        shares = np.bincount(result.predictions, minlength=10) / len(result.predictions)
        rows.append({"architecture": name, "test_accuracy": result.test_accuracy,
                     "epochs": result.epochs, "seconds": round(result.seconds, 1),
                     "test_prediction_shares": np.round(shares, 4).tolist(),
                     "reward_summary": d.get("reward_summary"),
                     "tie_fraction_first_last": [d["tie_fraction"][0], d["tie_fraction"][-1]]
                     if d.get("tie_fraction") else None,
                     "silent_fraction_first_last":
                         [d["silent_fraction"][0], d["silent_fraction"][-1]]
                         if d.get("silent_fraction") else None,
                     "lr_trials": d.get("lr_trials"), "plot": str(plot)})
        print(f"{name}: {100 * result.test_accuracy:.2f} % after {result.epochs} epochs "
              f"({result.seconds:.0f} s); most predicted class {int(shares.argmax())} "
              f"({100 * shares.max():.1f} % of test predictions)", flush=True)
    print(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
