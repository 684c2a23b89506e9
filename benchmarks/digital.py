"""The digital target proven equal to the twin: Verilog RTL in Icarus Verilog, C with gcc,
and a Yosys resource estimate. Run::

    spikeforge export runs/reference --target digital --bits 8 --out bundles/ref-d8
    python benchmarks/digital.py bundles/ref-d8 --out bundles/ref-d8-digital

1. ``spikeforge rtl --simulate``: the generated testbench feeds the first ``--rtl-images``
   MNIST test images (default 100) and compares every layer's spikes at every step, the
   output spike counts and the prediction with the twin; clocks per inference, simulation
   time and Yosys (cells, flip-flops, memory bits, seconds) for ``--lanes``.
2. One flipped bit: bit 6 of one first-layer weight that changes the twin's spikes is
   flipped in the weight ROM's hex file; the testbench must fail, naming the first
   differing spike (the twin's own first difference).
3. ``spikeforge mcu --test`` on ``--c-images`` images (default 1000): identical spike trains,
   counts and predictions, with -O2 and again under -fsanitize=undefined,address.
4. Yosys for other lane counts (``--synth-lanes``): clocks per inference against resources.

One JSON line per part.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from spikeforge.hardware.bundle import load_bundle
from spikeforge.hardware.export import bundle_dataset
from spikeforge.hardware.mcu import McuOptions, mcu_check
from spikeforge.hardware.rtl import (
    RtlDesign,
    RtlOptions,
    cycles_per_inference,
    plan_layers,
    rtl_check,
    simulate,
    synthesize,
    write_design,
)
from spikeforge.hardware.simulate import run_twin, twin_inputs


def first_difference(a: list[np.ndarray], b: list[np.ndarray], names: list[str]) -> str | None:
    """The first differing spike in the testbench's order (image, step, layer, neuron)."""
    T, n = a[0].shape[:2]
    for image in range(n):
        for step in range(T):
            for name, s, t in zip(names, a, b, strict=True):
                differ = np.flatnonzero(s[step, image] != t[step, image])
                if differ.size:
                    return f"layer {name}, neuron {int(differ[0])}, step {step}, image {image}"
    return None


def flipped_bit(bundle, design: RtlDesign, x: np.ndarray, bit: int = 6) -> dict:
    """Flip ``bit`` of the first first-layer weight (in ROM order) whose flip changes the
    twin's spikes, in a copy of the design; the testbench must fail at that spike."""
    spec, bits = bundle.spec, bundle.spec.digital.weight_bits
    twin = run_twin(spec, bundle.weights, bundle.biases, x, record=True)
    w0 = bundle.weights[0]
    lanes, n_in = design.plans[0].lanes, design.plans[0].n_in
    for neuron in range(w0.shape[0]):
        for j in np.argsort(-x.mean(0))[:20]:  # inputs that are often on
            flipped = [w.copy() for w in bundle.weights]
            raw = (int(w0[neuron, j]) & ((1 << bits) - 1)) ^ (1 << bit)
            flipped[0][neuron, j] = raw - (1 << bits) if raw >= 1 << (bits - 1) else raw
            corrupt = run_twin(spec, flipped, bundle.biases, x, record=True)
            expected = first_difference(corrupt.spikes, twin.spikes, bundle.layer_names)
            if expected is not None:
                rom = design.folder / "rtl" / f"{bundle.layer_names[0]}_w.hex"
                lines = rom.read_text().split()
                word = (neuron // lanes) * n_in + int(j)
                value = int(lines[word], 16) ^ (1 << ((neuron % lanes) * bits + bit))
                lines[word] = f"{value:0{len(lines[word])}x}"
                rom.write_text("\n".join(lines) + "\n")
                result = simulate(design)
                return {"flipped": f"{bundle.layer_names[0]} weight [{neuron}, {int(j)}] bit "
                                   f"{bit}: {int(w0[neuron, j])} -> {int(flipped[0][neuron, j])}",
                        "testbench_passed": result["passed"],
                        "vvp_exit_code": result["vvp_exit_code"],
                        "testbench_mismatch": result["mismatch"],
                        "twin_first_difference": expected,
                        "simulate_seconds": result["simulate_seconds"]}
    raise RuntimeError("no single-bit flip changes the twin's spikes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--out", default="bundles/digital-benchmark",
                        help="folder for the RTL and C outputs (replaced)")
    parser.add_argument("--rtl-images", type=int, default=100)
    parser.add_argument("--c-images", type=int, default=1000)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--synth-lanes", type=int, nargs="*", default=[4, 64])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = bundle_dataset(bundle, data_dir=args.data_dir,
                          limit=max(args.rtl_images, args.c_images))
    x_all = twin_inputs(bundle.spec, data.test_x)
    x_rtl = x_all[:args.rtl_images]

    start = time.perf_counter()
    rtl = rtl_check(bundle, x_rtl, out / "rtl", RtlOptions(lanes=args.lanes, simulate=True,
                                                            synth=True), force=True)
    print(json.dumps({"part": "rtl", "bundle": args.bundle, "lanes": args.lanes,
                      "wall_seconds": round(time.perf_counter() - start, 1),
                      **{k: v for k, v in rtl.items() if k != "layers"}}), flush=True)

    work = out / "rtl-flipped"
    shutil.rmtree(work, ignore_errors=True)
    design = write_design(bundle, work, x_rtl[:10], RtlOptions(lanes=args.lanes))
    print(json.dumps({"part": "rtl_flipped_bit", "images": 10,
                      **flipped_bit(bundle, design, x_rtl[:10])}), flush=True)

    for sanitize in (False, True):
        start = time.perf_counter()
        c = mcu_check(bundle, x_all[:args.c_images], out / ("c-sanitized" if sanitize else "c"),
                      McuOptions(images=args.c_images, test=True, sanitize=sanitize),
                      force=True)
        print(json.dumps({"part": "c", "bundle": args.bundle,
                          "wall_seconds": round(time.perf_counter() - start, 1), **c}),
              flush=True)

    for lanes in args.synth_lanes:
        folder = out / f"synth-lanes-{lanes}"
        shutil.rmtree(folder, ignore_errors=True)
        design = write_design(bundle, folder, x_rtl[:1], RtlOptions(lanes=lanes))
        plans = plan_layers(bundle.spec, bundle.weights, bundle.biases, bundle.layer_names,
                            lanes)
        synth = synthesize(design)
        print(json.dumps({"part": "synthesis", "lanes": lanes,
                          "cycles_per_inference": cycles_per_inference(
                              plans, bundle.spec.timesteps),
                          **{k: v for k, v in synth.items() if k != "memory_list"}}),
              flush=True)


if __name__ == "__main__":
    main()
