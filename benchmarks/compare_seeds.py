"""Every learning rule of ``spikeforge compare`` over several seeds: mean, min and max test
accuracy per method, in one run.

    python benchmarks/compare_seeds.py --dataset iris --seeds 0,1,2,3,4

The test split is fixed (Iris: scikit-learn's data split 75/25 with ``random_state=0``); a
seed changes the initial weights, the validation split held out of the training set, the
Poisson draws and the sample order. Writes ``results.json`` per seed into
``--out/seed<k>/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from spikeforge.baselines.common import BaselineSettings
from spikeforge.baselines.compare import run_comparison, save_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="iris")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--methods", help="comma-separated (default: all)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",") if args.methods else None
    out = Path(args.out or f"runs/compare-{args.dataset}-seeds")
    scores: dict[str, list[float]] = {}
    epochs: dict[str, int] = {}
    for seed in seeds:
        settings = BaselineSettings(seed=seed, progress=False)
        results = run_comparison(args.dataset, methods, settings, args.data_dir)
        save_results(results, out / f"seed{seed}" / "results.json", settings)
        for r in results:
            scores.setdefault(r.method, []).append(r.test_accuracy)
            epochs[r.method] = r.epochs
        print(f"seed {seed}: " + ", ".join(f"{r.method} {100 * r.test_accuracy:.2f} %"
                                            for r in results), file=sys.stderr, flush=True)
    print(f"| method | mean test accuracy ({len(seeds)} seeds) | min | max | epochs | "
          f"per seed |")
    print("|---|---:|---:|---:|---:|---|")
    for method, acc in scores.items():
        a = 100 * np.asarray(acc)
        print(f"| {method} | {a.mean():.2f} % | {a.min():.2f} % | {a.max():.2f} % | "
              f"{epochs[method]} | {' / '.join(f'{v:.1f}' for v in a)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
