"""The Verilog RTL of the digital target: Icarus Verilog runs the generated testbench, which
must see every layer's spikes at every step equal to the twin's (and the contract's), take
exactly the clocks of the cycle formula, and fail loudly, at the right place, when one bit
of one weight is flipped. Yosys synthesises it where installed."""

from __future__ import annotations

import functools
import json
import shutil

import numpy as np
import pytest
from conftest import tiny_digital_bundle

from spikeforge.cli import main
from spikeforge.hardware.bundle import write_bundle
from spikeforge.hardware.rtl import (
    RtlError,
    RtlOptions,
    check_rtl_buildable,
    membrane_bound,
    parse_memories,
    parse_stat,
    plan_layers,
    rom_lines,
    rtl_check,
    signed_bits,
    simulate,
    synthesize,
    write_design,
)
from spikeforge.hardware.simulate import encode_inputs, run_twin
from spikeforge.spec import reference_forward

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None or
                                    shutil.which("vvp") is None,
                                    reason="Icarus Verilog is not installed (package iverilog)")
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="Yosys is not installed (package yosys)")


#: the shared random bundle (conftest), with 6 inputs: the testbench runs each in turn
tiny_bundle = functools.partial(tiny_digital_bundle, n=6)


CONFIGS = {
    "reference-like": {},
    "reset-subtract": {"reset": "subtract"},
    "refractory": {"refractory": 2, "sizes": (20, 9, 4)},
    "spike-input": {"encoding": "spikes", "refractory": 1, "reset": "subtract"},
    "no-bias, one lane": {"bias": False, "lanes": 1},
    "uneven groups, three layers": {"sizes": (17, 13, 7, 3), "lanes": 5},
    "negative membranes": {"offset": -30, "seed": 3},
    "no leak (IF), 6-bit": {"decay": (8, 3), "weight_bits": 6, "reset": "subtract"},
}


@needs_iverilog
@pytest.mark.parametrize("name", list(CONFIGS))
def test_testbench_passes_with_every_spike_equal_to_the_twin(name, tmp_path):
    kw = dict(CONFIGS[name])
    lanes = kw.pop("lanes", 4)
    bundle, x = tiny_bundle(**kw)
    twin = run_twin(bundle.spec, bundle.weights, bundle.biases, x, record=True)
    assert 0.02 < twin.spikes[0].mean() < 0.98, "the case must exercise spikes"
    result = rtl_check(bundle, x, tmp_path / "rtl", RtlOptions(lanes=lanes, simulate=True,
                                                               synth=False))
    assert result["passed"], result["mismatch"]
    assert result["images"] == len(twin.counts)
    assert result["cycles_per_inference"] == result["expected_cycles_per_inference"]
    saved = json.loads((tmp_path / "rtl" / "rtl_result.json").read_text())
    assert {"passed", "images", "cycles_per_inference", "mismatch", "synthesis"} <= set(saved)
    assert saved["passed"] is True and saved["mismatch"] is None


def test_the_expected_vectors_are_the_contract(tmp_path):
    """The testbench's vectors come from the twin; here they are held to the contract's
    step-by-step definition too (so RTL = twin = contract)."""
    bundle, x = tiny_bundle(reset="subtract", refractory=1, offset=-20)
    design = write_design(bundle, tmp_path, x, RtlOptions(lanes=4))
    codes = encode_inputs(bundle.spec, x).astype(np.int64)
    reference = reference_forward(bundle.weights, bundle.biases, codes, bundle.spec)
    T, n = bundle.spec.timesteps, len(x)
    for p, layer in zip(design.plans, reference, strict=True):
        lines = (tmp_path / "tb" / f"expect_{p.name}.hex").read_text().split()
        bits = np.array([[(int(h, 16) >> k) & 1 for k in range(p.n_out)] for h in lines])
        np.testing.assert_array_equal(bits.reshape(n, T, p.n_out),
                                      np.stack(layer).transpose(1, 0, 2).astype(int))


def _first_difference(a: list[np.ndarray], b: list[np.ndarray]) -> dict | None:
    """The testbench's order: image, step, layer, lowest neuron."""
    T, n = a[0].shape[:2]
    for image in range(n):
        for step in range(T):
            for layer, (s, t) in enumerate(zip(a, b, strict=True)):
                differ = np.flatnonzero(s[step, image] != t[step, image])
                if differ.size:
                    return {"layer": layer, "step": step, "image": image,
                            "neuron": int(differ[0])}
    return None


@needs_iverilog
def test_one_flipped_weight_bit_fails_loudly_at_the_first_differing_spike(tmp_path):
    bundle, x = tiny_bundle(sizes=(24, 12, 5), n=6, seed=1)
    spec, bits = bundle.spec, bundle.spec.digital.weight_bits
    twin = run_twin(spec, bundle.weights, bundle.biases, x, record=True)
    lanes = 4
    design = write_design(bundle, tmp_path, x, RtlOptions(lanes=lanes))
    # a single-bit flip (bit 5 of one weight of fc1) that changes some spike of the twin
    for neuron in range(12):
        flipped = [w.copy() for w in bundle.weights]
        value = int(flipped[0][neuron, 0]) & ((1 << bits) - 1) ^ (1 << 5)
        flipped[0][neuron, 0] = value - (1 << bits) if value >= 1 << (bits - 1) else value
        corrupt = run_twin(spec, flipped, bundle.biases, x, record=True)
        expected = _first_difference(corrupt.spikes, twin.spikes)
        if expected is not None:
            break
    assert expected is not None
    rom = tmp_path / "rtl" / "fc1_w.hex"
    lines = rom.read_text().split()
    word = (neuron // lanes) * 24 + 0  # group g, input j = 0
    lines[word] = f"{int(lines[word], 16) ^ (1 << ((neuron % lanes) * bits + 5)):0{len(lines[0])}x}"
    rom.write_text("\n".join(lines) + "\n")
    result = simulate(design)
    assert result["passed"] is False
    assert result["vvp_exit_code"] != 0  # $fatal: a failing testbench fails its run
    assert "SF FAIL" in (tmp_path / "sim.log").read_text()
    found = result["first_mismatch"]
    assert found == {"layer": f"fc{expected['layer'] + 1}", "neuron": expected["neuron"],
                     "step": expected["step"], "image": expected["image"]}
    assert result["mismatch"].startswith(f"layer {found['layer']}, neuron {found['neuron']}")


def test_membrane_bound_holds_for_the_worst_inputs():
    """Drive one integer neuron with the largest currents of either sign (and mixtures) for
    T steps: |U| and |V| never leave the bound the widths are made from."""
    rng = np.random.default_rng(0)
    for decay_num, shift, reset in ((230, 8, "zero"), (7, 3, "subtract"), (256, 8, "zero"),
                                    (1, 4, "subtract")):
        i_max, threshold, T = 5000, 1200, 40
        bound = membrane_bound(i_max, threshold, decay_num, shift, T, reset == "subtract")
        for currents in (np.full(T, -i_max), np.full(T, i_max),
                         rng.integers(-i_max, i_max + 1, T)):
            v = 0
            for i in currents:
                u = (v * decay_num) // 2**shift + int(i)
                assert abs(u) <= bound and abs(u - threshold) <= bound
                v = (0 if reset == "zero" else u - threshold) if u >= threshold else u
        assert signed_bits(bound) >= signed_bits(i_max)


def test_rom_words_hold_lanes_side_by_side_in_twos_complement():
    w = np.array([[-1, 2], [3, -128], [127, 0]])  # 3 neurons, 2 inputs
    lines = rom_lines(w, lanes=2, bits=8)
    # group 0: neurons 0, 1 (lane 0 low byte); group 1: neuron 2 and a zero pad lane
    assert lines == ["03ff", "8002", "007f", "0000"]


def test_plan_widths_follow_the_weights():
    bundle, _ = tiny_bundle()
    plans = plan_layers(bundle.spec, bundle.weights, bundle.biases, bundle.layer_names, 4)
    p = plans[0]
    assert p.held and p.x_bits == 8 and p.groups == 3
    i_max = int((np.abs(bundle.weights[0]).sum(1) * 255 + np.abs(bundle.biases[0])).max())
    assert p.cur_bits == signed_bits(i_max) and p.v_bits >= p.cur_bits
    assert not plans[1].held and plans[1].x_bits == 1 and plans[1].lanes == 4


def test_analog_bundles_are_refused_with_the_fix(tmp_path, capsys):
    bundle, _ = tiny_bundle(target="analog")
    with pytest.raises(RtlError, match="--target digital"):
        check_rtl_buildable(bundle)
    folder = write_bundle(bundle, tmp_path / "analog", "analog test bundle\n")
    assert main(["rtl", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "--target digital" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_yosys_statistics_are_parsed():
    stat = """
=== sf_top ===

   Number of wires:               10
   Number of memories:               0
   Number of memory bits:            0
   Number of cells:                 42
     $_AND_                         20
     $_DFFE_PP_                      5
     $_SDFF_PP0_                     3
     $mem_v2                         2
"""
    assert parse_stat(stat) == {"cells": 42, "flip_flops": 8, "memories": 0, "memory_bits": 0}
    dump = """
  cell $mem_v2 \\fc1_layer.rom
    parameter \\INIT 16'0000000000000000
    parameter \\SIZE 8
    parameter \\WIDTH 16
  end
  cell $mem_v2 \\fc1_layer.vmem
    parameter \\SIZE 2
    parameter \\WIDTH 40
  end
"""
    assert parse_memories(dump) == [
        {"name": "fc1_layer.rom", "width": 16, "words": 8, "bits": 128},
        {"name": "fc1_layer.vmem", "width": 40, "words": 2, "bits": 80}]


@needs_yosys
def test_yosys_synthesises_the_design_keeping_memories(tmp_path):
    bundle, x = tiny_bundle(sizes=(16, 8, 4), n=2)
    design = write_design(bundle, tmp_path, x, RtlOptions(lanes=4))
    synth = synthesize(design, timeout=300)
    assert synth["cells"] > 100 and synth["flip_flops"] > 20
    names = {m["name"]: m for m in synth["memory_list"]}
    rom = names["fc1_layer.rom"]
    assert (rom["width"], rom["words"]) == (4 * 8, 2 * 16)  # 4 lanes x 8 bits, 2 groups x 16
    assert synth["memory_bits"] >= design.plans[0].weight_rom_bits
    assert not (tmp_path / "synth_mem.il").exists()


@needs_iverilog
def test_cli_rtl_on_mnist_writes_the_result_file(tmp_path, data_dir, capsys):
    bundle, _ = tiny_bundle(sizes=(784, 16, 10), timesteps=5)
    folder = write_bundle(bundle, tmp_path / "bundle", "test bundle\n")
    out = tmp_path / "rtl"
    code = main(["rtl", str(folder), "--out", str(out), "--simulate", "--images", "3",
                 "--no-synth", "--json", "--data-dir", str(data_dir)])
    assert code == 0, capsys.readouterr()
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "rtl_result.json").read_text())
    assert printed["passed"] is saved["passed"] is True
    assert saved["images"] == 3 and saved["synthesis"] is None
    assert (out / "rtl" / "sf_top.v").is_file() and (out / "tb" / "sf_tb.v").is_file()
    assert main(["rtl", str(folder), "--out", str(out)]) == 2  # no overwrite without --force
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "rtl"]  # no temp folders
