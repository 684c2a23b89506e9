"""Stochastic computing on the reference network: accuracy against stream length. Run::

    spikeforge export runs/reference --target digital --bits 8 --out bundles/ref-d8
    python benchmarks/stochastic.py runs/reference --bundle bundles/ref-d8 --images 1000

On the first ``--images`` MNIST test images: the float model (the run's weights through the
contract in float64), the digital bundle's twin (if ``--bundle``), and the network with
every dense layer in stochastic computing (spikeforge.hardware.stochastic) for each stream
length in ``--lengths``, each encoding in ``--modes`` (``auto``: bipolar XNOR for the signed
layers, i.e. every layer here; ``unipolar``: AND with the min-max offset) with the APC
(popcount) adder, and the MUX adder at ``--mux-lengths``, once per seed in ``--seeds``
(a seed draws the weight streams, fixed for all images, and the input streams). One JSON
line per configuration and seed, then a Markdown table: mean accuracy over the seeds and
its range.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from spikeforge.data import load_dataset
from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.simulate import run_twin, score
from spikeforge.hardware.stochastic import SCOptions, network_from_run, sc_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--bundle", help="the run's digital bundle, for the twin's figure")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[64, 128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--modes", nargs="+", default=["auto", "unipolar"])
    parser.add_argument("--mux-lengths", type=int, nargs="*", default=[256, 4096])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    spec, weights, biases = network_from_run(args.run_dir)
    data = load_dataset("mnist", args.data_dir, progress=False, limit_train=0,
                        limit_test=args.images).limit(0, args.images)
    x, y = data.test_x, data.test_y
    rows = []
    float_score = score(run_twin(replace(spec, digital=None), weights, biases, x), y)
    rows.append({"what": "float model (contract, float64)", **float_score})
    print(json.dumps({"run": args.run_dir, **rows[-1]}), flush=True)
    if args.bundle:
        bundle = load_bundle(args.bundle)
        rows.append({"what": f"digital twin ({bundle.spec.digital.weight_bits}-bit)",
                     **score(run_twin(bundle.spec, bundle.weights, bundle.biases, x), y)})
        print(json.dumps({"bundle": args.bundle, **rows[-1]}), flush=True)
    configs = [(length, mode, "apc") for mode in args.modes for length in args.lengths]
    configs += [(length, "unipolar", "mux") for length in args.mux_lengths]
    for length, mode, adder in configs:
        runs = []
        for seed in args.seeds:
            start = time.perf_counter()
            result = sc_accuracy(spec, weights, biases, x, y,
                                 SCOptions(length=length, mode=mode, adder=adder, seed=seed))
            result["seconds"] = round(time.perf_counter() - start, 2)
            print(json.dumps(result), flush=True)
            runs.append(result)
        accuracies = [r["accuracy"] for r in runs]
        rows.append({"what": f"SC {mode} {adder}", "length": length,
                     "accuracy": sum(accuracies) / len(accuracies),
                     "range": f"{min(accuracies):.1%} - {max(accuracies):.1%}",
                     "mean_spikes_per_inference": sum(r["mean_spikes_per_inference"]
                                                      for r in runs) / len(runs),
                     "seconds": round(sum(r["seconds"] for r in runs) / len(runs), 1)})
    print()
    print(f"| network ({args.images} MNIST test images) | stream length | accuracy (mean of "
          f"{len(args.seeds)} seeds) | range | spikes per inference | seconds per run |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r.get('length', '')} | {r['accuracy']:.2%} | "
              f"{r.get('range', '')} | {r['mean_spikes_per_inference']:.0f} | "
              f"{r.get('seconds', '')} |")


if __name__ == "__main__":
    main()
