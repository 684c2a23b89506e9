"""The hardware twin is the contract: every spike equals spikeforge.spec's step-by-step
definition, in float64 (analog) and in the digital target's integers; and quantisation
maps weights where the docs say."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from spikeforge.hardware.quantize import fake_quantize, to_digital
from spikeforge.hardware.simulate import encode_inputs, exact_in_float32, run_twin
from spikeforge.spec import DigitalSpec, EncodingSpec, NetworkSpec, NeuronSpec, reference_forward


def _random_float_network(rng, sizes):
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    weights = [rng.normal(0, 1.5 / np.sqrt(i), (o, i)) for i, o in pairs]
    biases = [rng.normal(0, 0.1, o) for o in sizes[1:]]
    return weights, biases


@pytest.mark.parametrize(("reset", "refractory", "encoding"),
                         list(itertools.product(["zero", "subtract"], [0, 2],
                                                ["constant_current", "spikes"])))
def test_float_twin_spikes_equal_the_contract(reset, refractory, encoding):
    rng = np.random.default_rng(0)
    spec = NetworkSpec((30, 20, 12, 6), 25, NeuronSpec(0.85, 1.0, reset, refractory),
                       EncodingSpec(encoding, 1.5 if encoding == "constant_current" else 1.0))
    weights, biases = _random_float_network(rng, spec.layer_sizes)
    x = rng.random((40, 30)) if encoding == "constant_current" else \
        (rng.random((25, 40, 30)) < 0.3).astype(np.float64)
    twin = run_twin(spec, weights, biases, x, record=True, batch_size=16)
    reference = reference_forward(weights, biases, encode_inputs(spec, x).astype(np.float64),
                                  spec)
    for layer, spikes in enumerate(twin.spikes):
        np.testing.assert_array_equal(spikes, np.stack(reference[layer]), err_msg=f"layer {layer}")
    assert 0.05 < twin.spikes[0].mean() < 0.95
    np.testing.assert_array_equal(twin.counts, twin.spikes[-1].sum(0))
    np.testing.assert_array_equal(twin.total_spikes, sum(s.sum(axis=(0, 2)) for s in twin.spikes))


@pytest.mark.parametrize(("reset", "refractory"), [("zero", 0), ("subtract", 0), ("zero", 1)])
def test_digital_twin_is_bit_exact_with_integer_arithmetic(reset, refractory):
    rng = np.random.default_rng(1)
    digital = DigitalSpec(weight_bits=6, input_bits=8, decay_num=230, decay_shift=8,
                          thresholds=(2000, 40))
    spec = NetworkSpec((25, 16, 5), 25, NeuronSpec(230 / 256, 1.0, reset, refractory),
                       digital=digital)
    weights = [rng.integers(-31, 32, (16, 25)), rng.integers(-31, 32, (5, 16))]
    biases = [rng.integers(-200, 200, 16), rng.integers(-10, 10, 5)]
    x = rng.random((64, 25))
    twin = run_twin(spec, weights, biases, x, record=True)
    codes = np.rint(x * 255).astype(np.int64)
    reference = reference_forward(weights, biases, codes, spec)  # pure int64 arithmetic
    for layer, spikes in enumerate(twin.spikes):
        np.testing.assert_array_equal(spikes, np.stack(reference[layer]), err_msg=f"layer {layer}")
    assert 0.05 < twin.spikes[0].mean() < 0.95


@pytest.mark.parametrize(("weight_bits", "input_bits", "encoding"),
                         [(12, 16, "constant_current"), (8, 8, "spikes")])
def test_digital_twin_is_bit_exact_on_both_synaptic_paths(weight_bits, input_bits, encoding):
    """Wide weights and 16-bit inputs overflow float32's exact range (the float64 path);
    spike inputs take the event-driven path in float32. Both must equal int64 arithmetic."""
    rng = np.random.default_rng(3)
    w_max = 2 ** (weight_bits - 1) - 1
    scale = w_max / 31 * ((2 ** input_bits - 1) / 255 if encoding == "constant_current"
                          else 1 / 60)
    digital = DigitalSpec(weight_bits=weight_bits, input_bits=input_bits, decay_num=230,
                          decay_shift=8, thresholds=(round(2000 * scale), round(40 * w_max / 31)))
    spec = NetworkSpec((25, 16, 5), 25, NeuronSpec(230 / 256, 1.0, "zero", 0),
                       EncodingSpec(encoding), digital=digital)
    weights = [rng.integers(-w_max, w_max + 1, (16, 25)), rng.integers(-w_max, w_max + 1, (5, 16))]
    biases = [rng.integers(-w_max, w_max, 16), rng.integers(-w_max // 4, w_max // 4, 5)]
    held = encoding == "constant_current"
    assert exact_in_float32(weights[0], biases[0], digital.input_max if held else 1) != held
    x = rng.random((64, 25)) if held else (rng.random((25, 64, 25)) < 0.3).astype(np.float64)
    twin = run_twin(spec, weights, biases, x, record=True, batch_size=48)
    codes = np.rint(x * digital.input_max).astype(np.int64) if held else x.astype(np.int64)
    reference = reference_forward(weights, biases, codes, spec)
    for layer, spikes in enumerate(twin.spikes):
        np.testing.assert_array_equal(spikes, np.stack(reference[layer]), err_msg=f"layer {layer}")
    assert 0.05 < twin.spikes[0].mean() < 0.95


TWIN_READOUT_CASES = [  # (target, reset, refractory, encoding, hidden layers)
    ("analog", "zero", 0, "constant_current", (20,)),
    ("analog", "subtract", 2, "spikes", (20, 12)),
    ("digital", "zero", 0, "constant_current", (16,)),  # float32 sums
    ("digital", "subtract", 1, "spikes", (16, 12)),
    ("digital-wide", "zero", 0, "constant_current", (16,)),  # float64 sums
]


@pytest.mark.parametrize(("target", "reset", "refractory", "encoding", "hidden"),
                         TWIN_READOUT_CASES)
def test_twin_counts_without_spike_trains_equal_the_layer_by_layer_run(
        monkeypatch, target, reset, refractory, encoding, hidden):
    """Without recording, the twin runs its last two layers as one kernel
    (readout_counts) that writes no spike train and sums the output currents in another
    order: where those sums are exact (the digital target always; here the analog weights
    too, on a 2^-8 grid) the counts and total spikes must be those of the layer-by-layer
    run, for both arithmetics, with and without a refractory period."""
    from spikeforge.hardware import simulate

    rng = np.random.default_rng(4)
    sizes = (25, *hidden, 5)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    digital = None
    if target == "analog":  # on a 2^-8 grid: float64 sums exact in any order
        weights, biases = [[np.round(a * 256) / 256 for a in arrays]
                           for arrays in _random_float_network(rng, sizes)]
    else:
        w_max = 31 if target == "digital" else 2047
        input_bits = 8 if target == "digital" else 16
        weights = [rng.integers(-w_max, w_max + 1, (o, i)) for i, o in pairs]
        biases = [rng.integers(-w_max, w_max, o) for _, o in pairs]
        scale = w_max / 31 * ((2 ** input_bits - 1) / 255 if encoding == "constant_current"
                              else 1 / 60)
        thresholds = (round(2000 * scale), *[round(40 * w_max / 31)] * len(hidden))
        digital = DigitalSpec(weight_bits=6 if w_max == 31 else 12, input_bits=input_bits,
                              decay_num=230, decay_shift=8, thresholds=thresholds)
    spec = NetworkSpec(sizes, 25, NeuronSpec(230 / 256, 1.0, reset, refractory),
                       EncodingSpec(encoding, 1.5 if encoding == "constant_current" else 1.0),
                       digital=digital)
    x = rng.random((40, 25)) if encoding == "constant_current" else \
        (rng.random((25, 40, 25)) < 0.3).astype(np.float64)
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[2])
        return readout_counts(*args, **kwargs)

    readout_counts = simulate.readout_counts
    monkeypatch.setattr(simulate, "readout_counts", spy)
    fused = run_twin(spec, weights, biases, x, batch_size=16)
    layered = run_twin(spec, weights, biases, x, record=True, batch_size=16)
    assert calls == [len(hidden) - 1] * 3  # the fused kernel ran, on every batch
    np.testing.assert_array_equal(fused.counts, layered.counts)
    np.testing.assert_array_equal(fused.total_spikes, layered.total_spikes)
    assert 0 < layered.spikes[-1].mean() < 0.95 and 0.05 < layered.spikes[-2].mean() < 0.95


def test_float32_is_trusted_only_below_two_to_the_24():
    w = np.array([[2 ** 12, -(2 ** 11)]])
    assert exact_in_float32(w, None, 2 ** 11 - 1)  # 6144 · 2047 < 2^24
    assert not exact_in_float32(w, None, 2 ** 12)  # 6144 · 4096 > 2^24
    assert not exact_in_float32(w, np.array([2 ** 24]), 1)  # the bias counts
    assert not exact_in_float32(np.array([[0.5]]), None, 1)  # not integers: never


def test_integer_decay_rounds_down_like_an_arithmetic_shift():
    v = np.array([-7, -1, 0, 1, 7, 255, -256])
    assert ((v * 230) // 256).tolist() == ((v * 230) >> 8).tolist() == [-7, -1, 0, 0, 6, 229, -230]


def test_to_digital_maps_weights_thresholds_and_decay():
    rng = np.random.default_rng(2)
    spec = NetworkSpec((784, 32, 10), 25, NeuronSpec(decay=0.9))
    weights, biases = _random_float_network(rng, spec.layer_sizes)
    q = to_digital(spec, weights, biases, weight_bits=4)
    assert q.spec.digital.decay_num == 230 and q.spec.neuron.decay == 230 / 256
    for w, w_int, scale in zip(weights, q.weights, q.weight_scales, strict=True):
        assert w_int.dtype == np.int64 and np.abs(w_int).max() == 7
        assert np.abs(w_int * scale - w).max() <= scale / 2 + 1e-12
    assert q.current_quanta[0] == pytest.approx(q.weight_scales[0] / 255)
    assert q.spec.digital.thresholds[1] == round(1.0 / q.weight_scales[1])


def test_fake_quantize_rounds_forward_and_passes_gradients_straight_through():
    w = torch.tensor([-1.0, -0.34, 0.0, 0.2, 0.5, 0.7], requires_grad=True)
    q = fake_quantize(w, bits=3)  # codes -3..3, scale 1/3
    torch.testing.assert_close(q.detach(), torch.tensor([-1.0, -1 / 3, 0.0, 1 / 3, 2 / 3, 2 / 3]))
    (q * torch.arange(6.0)).sum().backward()
    torch.testing.assert_close(w.grad, torch.arange(6.0))
