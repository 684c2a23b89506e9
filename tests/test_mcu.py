"""The C code of the digital target: compiled by gcc with every warning an error (and under
sanitizers), it reproduces the twin's every spike, spike count and prediction, bit for bit;
a corrupted weight is caught at the first differing spike."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from conftest import tiny_digital_bundle as tiny_bundle

from spikeforge.cli import main
from spikeforge.hardware.bundle import write_bundle
from spikeforge.hardware.mcu import (
    McuError,
    McuOptions,
    c_types,
    compare,
    compile_harness,
    hex_bits,
    int_type,
    mcu_check,
    run_harness,
    write_c,
)
from spikeforge.hardware.rtl import plan_layers
from spikeforge.hardware.simulate import run_twin

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None,
                               reason="gcc is not installed (package gcc)")


CONFIGS = {
    "reference-like": {},
    "reset-subtract, refractory, sanitized": {"reset": "subtract", "refractory": 2,
                                              "sanitize": True},
    "spike-input, sanitized": {"encoding": "spikes", "refractory": 1, "sanitize": True},
    "no bias, three layers": {"bias": False, "sizes": (17, 13, 7, 3)},
    "negative membranes, sanitized": {"offset": -30, "seed": 3, "sanitize": True},
    "no leak (IF)": {"decay": (8, 3), "weight_bits": 6, "reset": "subtract"},
    "16-bit weights and inputs: int64 arithmetic": {"weight_bits": 16, "input_bits": 16,
                                                    "sanitize": True},
}


@needs_gcc
@pytest.mark.parametrize("name", list(CONFIGS))
def test_c_build_reproduces_every_spike_of_the_twin(name, tmp_path):
    kw = dict(CONFIGS[name])
    sanitize = kw.pop("sanitize", False)
    bundle, x = tiny_bundle(**kw)
    twin = run_twin(bundle.spec, bundle.weights, bundle.biases, x, record=True)
    assert 0.02 < twin.spikes[0].mean() < 0.98, "the case must exercise spikes"
    result = mcu_check(bundle, x, tmp_path / "c", McuOptions(test=True, sanitize=sanitize))
    assert result["passed"], result["mismatch"]
    n = len(twin.counts)
    assert result["identical_spike_trains"] == result["identical_counts"] == \
        result["identical_predictions"] == result["images"] == n
    saved = json.loads((tmp_path / "c" / "mcu_result.json").read_text())
    assert saved["passed"] is True and saved["ram_bytes"] > 0
    source = (tmp_path / "c" / "spikeforge_net.c").read_text()
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)  # without the comments
    assert not re.search(r"\b(float|double|malloc|free)\b", code)
    assert not (tmp_path / "c" / "harness").exists()  # build products are not kept


def test_types_widen_only_where_the_bounds_need_it():
    assert int_type(8) == "int8_t" and int_type(9) == "int16_t" and int_type(33) == "int64_t"
    assert int_type(1, signed=False) == "uint8_t"
    with pytest.raises(McuError, match="64 bits"):
        int_type(65)
    small, _ = tiny_bundle()
    plans = plan_layers(small.spec, small.weights, small.biases, small.layer_names, 1)
    types = c_types(small.spec, plans)
    assert (types.weight, types.input, types.membrane) == ("int8_t", "uint8_t", "int32_t")
    big, _ = tiny_bundle(weight_bits=16, input_bits=16)
    plans = plan_layers(big.spec, big.weights, big.biases, big.layer_names, 1)
    types = c_types(big.spec, plans)
    assert (types.weight, types.input, types.membrane, types.current) == \
        ("int16_t", "uint16_t", "int64_t", "int64_t")


@needs_gcc
def test_a_corrupted_weight_is_found_at_its_first_differing_spike(tmp_path):
    bundle, x = tiny_bundle(seed=1)
    twin = run_twin(bundle.spec, bundle.weights, bundle.biases, x, record=True)
    design = write_c(bundle, tmp_path)
    source = tmp_path / "spikeforge_net.c"
    # find a single weight change that changes the twin's spikes, then make it in the C
    for neuron in range(12):
        changed = [w.copy() for w in bundle.weights]
        changed[0][neuron, 0] = -changed[0][neuron, 0] - 1
        corrupt = run_twin(bundle.spec, changed, bundle.biases, x, record=True)
        if any((a != b).any() for a, b in zip(corrupt.spikes, twin.spikes, strict=True)):
            break
    text = source.read_text()
    start = text.index("sf_fc1_w[")
    body = text[text.index("{", start) + 1:text.index("}", start)]
    values = [int(v) for v in body.replace("\n", " ").split(",")]
    values[neuron * 24] = int(changed[0][neuron, 0])
    source.write_text(text.replace(body, "\n    " + ", ".join(map(str, values)) + "\n"))
    compile_harness(design)
    result = compare(run_harness(design, bundle.spec, x), twin)
    assert not result["passed"]
    expected = None  # the first differing spike in time order: image, step, layer, neuron
    for image in range(len(x)):
        for step in range(bundle.spec.timesteps):
            for layer, (a, b) in enumerate(zip(corrupt.spikes, twin.spikes, strict=True)):
                differ = np.flatnonzero(a[step, image] != b[step, image])
                if expected is None and differ.size:
                    expected = {"layer": layer, "step": step, "image": image,
                                "neuron": int(differ[0])}
    assert result["first_mismatch"] == expected


def test_hex_words_decode_to_bits():
    bits = hex_bits(["1", "a", "80"], 8)
    np.testing.assert_array_equal(bits[0], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(bits[1], [0, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(bits[2], [0, 0, 0, 0, 0, 0, 0, 1])


def test_analog_bundles_are_refused_with_the_fix(tmp_path, capsys):
    bundle, _ = tiny_bundle(target="analog")
    folder = write_bundle(bundle, tmp_path / "analog", "analog test bundle\n")
    assert main(["mcu", str(folder), "--out", str(tmp_path / "c")]) == 2
    assert "--target digital" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@needs_gcc
def test_cli_mcu_on_mnist(tmp_path, data_dir, capsys):
    bundle, _ = tiny_bundle(sizes=(784, 16, 10), timesteps=5)
    folder = write_bundle(bundle, tmp_path / "bundle", "test bundle\n")
    out = tmp_path / "c"
    code = main(["mcu", str(folder), "--out", str(out), "--test", "--images", "50", "--json",
                 "--data-dir", str(data_dir)])
    assert code == 0, capsys.readouterr()
    printed = json.loads(capsys.readouterr().out)
    assert printed["passed"] is True and printed["identical_spike_trains"] == 50
    assert printed["flash_bytes"] == 784 * 16 + 16 * 10 + 4 * (16 + 10)
    assert {p.name for p in out.iterdir()} == {"spikeforge_net.h", "spikeforge_net.c",
                                               "harness.c", "README.md", "mcu_result.json"}
