"""Accuracy against part count: what a builder gets for a budget of synapse resistors.
Run::

    python benchmarks/pareto.py --budgets 250 500 1000 2000 5000 --boards 50

For each budget N, ``spikeforge train --part-budget N`` (with the recipe below) chooses and
trains a network of at most N synapse resistors on MNIST; the run is exported as an analog
bundle (E24, 10k..1M, the same series and range it was trained on) and ``--boards`` boards
of 1 % resistors (5 % capacitors, 2 mV comparators) are drawn and scored on all 10,000
test images. The reference network (784-128-10, ``runs/reference`` if given with
``--reference``) is scored the same way for comparison. One JSON line per design, then a
Markdown table and a plot (``--plot``) of the Monte-Carlo 5th percentile and median
against the total part count.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from spikeforge.config import TrainConfig
from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.circuit import CircuitOptions
from spikeforge.hardware.export import bundle_dataset, export, monte_carlo_bundle
from spikeforge.train import fit

#: the hardware-aware recipe for small boards (docs/analog.md, "Training for a board")
RECIPE: dict[str, Any] = {"series": "E24", "r_range": [1e4, 1e6], "weight_noise": 0.01}


def score_design(run_dir: Path, out: Path, boards: int, data_dir: str | None,
                 series: str, r_range: tuple[float, float]) -> dict[str, Any]:
    """Export ``run_dir`` as an analog bundle in ``out`` and draw ``boards`` boards."""
    export(run_dir, out, "analog", data_dir=data_dir, force=True,
           circuit_options=CircuitOptions(series=series, r_min=r_range[0], r_max=r_range[1]))
    bundle = load_bundle(out)
    data = bundle_dataset(bundle, data_dir=data_dir)
    summary = monte_carlo_bundle(bundle, data.test_x, data.test_y, boards, seed=0)
    parts = bundle.info["parts"]
    return {"layers": list(bundle.spec.layer_sizes),
            "downsample": bundle.info["trained"].get("downsample", 1),
            "synapse_resistors": parts["synapse_resistors"],
            "bias_resistors": parts["bias_resistors"], "total_parts": parts["total_parts"],
            "float_accuracy": bundle.info["trained"]["float_test_accuracy"],
            "ideal_parts": summary["ideal"], "mc_mean": summary["mean"],
            "mc_median": summary["median"], "mc_p5": summary["p5"],
            "mc_worst": summary["worst"], "boards": boards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000, 5000])
    parser.add_argument("--boards", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--reference", help="a finished 784-128-10 run to score beside them")
    parser.add_argument("--out", default="runs/pareto")
    parser.add_argument("--plot", default="docs/img/pareto.png")
    parser.add_argument("--data-dir")
    parser.add_argument("--reuse", action="store_true",
                        help="score finished runs in --out instead of training them again")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for budget in args.budgets:
        run_dir = out / f"budget-{budget}"
        start = time.perf_counter()
        config = TrainConfig.from_dict({**RECIPE, "part_budget": budget, "epochs": args.epochs,
                                        "data_dir": args.data_dir})
        if args.reuse and (run_dir / "metrics.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            metrics = fit(config, run_dir, force=True, progress=False)
        seconds = time.perf_counter() - start
        row = {"budget": budget, **score_design(run_dir, out / f"bundle-{budget}", args.boards,
                                                args.data_dir, "E24", (1e4, 1e6)),
               "train_seconds": metrics["train_seconds"], "wall_seconds": round(seconds, 1),
               "command": f"spikeforge train --part-budget {budget} --series E24 "
                          f"--weight-noise 0.01 --epochs {args.epochs}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.reference:
        row = {"budget": None, **score_design(Path(args.reference), out / "bundle-reference",
                                              args.boards, args.data_dir, "E24", (1e4, 1e6)),
               "command": "spikeforge train"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| budget | network | synapse resistors | all parts | float model | ideal parts | "
          "median of boards | 5th percentile | worst |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sizes = "-".join(map(str, r["layers"]))
        print(f"| {r['budget'] or 'none'} | {sizes} (pool {r['downsample']}) | "
              f"{r['synapse_resistors']} | {r['total_parts']} | {r['float_accuracy']:.2%} | "
              f"{r['ideal_parts']:.2%} | {r['mc_median']:.2%} | **{r['mc_p5']:.2%}** | "
              f"{r['mc_worst']:.2%} |")
    plot_pareto(rows, args.plot)


def plot_pareto(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikeforge.plots import _save, draw_pareto

    fig, ax = plt.subplots(figsize=(6.4, 4))
    draw_pareto(ax, rows)
    ax.set(ylabel="MNIST test accuracy (%)",
           title="Accuracy against part count (E24, 1 % resistors)")
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)


if __name__ == "__main__":
    main()
