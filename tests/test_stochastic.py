"""Stochastic computing: weights map onto stream probabilities and back, packed-bit AND /
XNOR multiply bit for bit like the unpacked gates and to the expected value, the dense
layer is unbiased with an error that shrinks as 1/sqrt(L), and a network's accuracy
approaches the float network's as the streams grow."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.hardware.simulate import run_twin
from spikeforge.hardware.stochastic import (
    SCOptions,
    StochasticError,
    WeightStreams,
    _apc_ones,
    bitstreams,
    multiply,
    sc_accuracy,
    sc_dense,
    stream_value,
    to_sc_weights,
    unpack,
)
from spikeforge.spec import NetworkSpec, NeuronSpec


def test_weights_scale_per_layer_onto_0_1_and_decode_back():
    rng = np.random.default_rng(0)
    signed, positive = rng.normal(0, 1, (6, 5)), rng.random((3, 6)) + 0.5
    layers = to_sc_weights([signed, positive])
    for layer, w in zip(layers, (signed, positive), strict=True):
        assert layer.p.min() == 0.0 and layer.p.max() == 1.0  # min -> 0, max -> 1
        assert (layer.lo, layer.hi) == (w.min(), w.max())
        np.testing.assert_allclose(layer.weights, w, rtol=0, atol=1e-12)
    assert layers[0].bipolar and not layers[1].bipolar  # signed weights: bipolar encoding
    bipolar = to_sc_weights([positive], mode="bipolar")[0]
    assert bipolar.bipolar
    # the bipolar value 2p - 1 spans [-1, 1] and decodes as mid + half * v
    v = 2 * layers[0].p - 1
    mid, half = (signed.max() + signed.min()) / 2, (signed.max() - signed.min()) / 2
    np.testing.assert_allclose(mid + half * v, signed, atol=1e-12)
    constant = to_sc_weights([np.full((2, 2), -0.5)])[0]  # one value: spanned with 0
    np.testing.assert_allclose(constant.weights, -0.5)
    assert constant.p.min() >= 0 and constant.p.max() <= 1
    with pytest.raises(StochasticError, match="mode"):
        to_sc_weights([signed], mode="tripolar")


def test_streams_have_the_probability_asked_for():
    rng = np.random.default_rng(1)
    p = np.array([0.0, 1.0, 0.5, 0.1, 0.73, 1 / 3])
    bits = unpack(bitstreams(np.repeat(p, 200), 4096, rng), 4096).reshape(6, 200, 4096)
    assert not bits[0].any() and bits[1].all()  # exact at 0 and 1
    sigma = np.sqrt(p * (1 - p) / (200 * 4096))
    assert (np.abs(bits.mean(axis=(1, 2)) - p) <= 5 * sigma + 1e-5).all()
    # successive bits are independent: a stream does not repeat itself
    b = bits[3].astype(float)
    assert abs(np.corrcoef(b[:, :-1].ravel(), b[:, 1:].ravel())[0, 1]) < 0.02


@pytest.mark.parametrize("bipolar", [False, True])
def test_packed_multiply_is_the_gate_bit_for_bit_and_the_product_on_average(bipolar):
    rng = np.random.default_rng(2)
    pa, pb = rng.random(300), rng.random(300)
    a, b = bitstreams(pa, 4096, rng), bitstreams(pb, 4096, rng)
    product = multiply(a, b, bipolar)
    ua, ub = unpack(a, 4096), unpack(b, 4096)
    gate = ~(ua ^ ub) if bipolar else ua & ub
    np.testing.assert_array_equal(unpack(product, 4096), gate)  # packed = the gate, per bit
    ones = np.bitwise_count(product).sum(-1)
    value = stream_value(ones, 4096, bipolar)
    expected = (2 * pa - 1) * (2 * pb - 1) if bipolar else pa * pb
    # each product is a Bernoulli mean over 4096 bits: error within a few sigma
    assert np.abs(value - expected).max() < 5 * (2 if bipolar else 1) * np.sqrt(0.25 / 4096)
    assert abs((value - expected).mean()) < 3 * np.sqrt(0.25 / 4096 / 300) * 2


@pytest.mark.parametrize("mode", ["unipolar", "bipolar"])
def test_dense_layer_is_unbiased_and_its_error_shrinks_as_one_over_sqrt_l(mode):
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.5, (6, 40)) + (0.6 if mode == "unipolar" else 0.0)
    x, b = rng.random((300, 40)), rng.normal(0, 0.1, 6)
    exact = 1.5 * x @ w.T + b
    layer = to_sc_weights([w], mode)[0]
    rms = {}
    for length in (256, 4096):
        streams = WeightStreams.draw(layer, length, rng)
        got = sc_dense(x, streams, "apc", rng, b, scale=1.5)
        rms[length] = np.sqrt(((got - exact) ** 2).mean())
    assert 2.5 < rms[256] / rms[4096] < 6.5  # sqrt(4096 / 256) = 4
    # unbiased: over independent draws of the weight streams, the mean error vanishes
    errors = [(sc_dense(x[:20], WeightStreams.draw(layer, 256, rng), "apc", rng, b,
                        scale=1.5) - exact[:20]).mean() for _ in range(30)]
    assert abs(np.mean(errors)) < 3.5 * np.std(errors) / np.sqrt(30)


@pytest.mark.parametrize("mode", ["unipolar", "bipolar"])
def test_deterministic_input_streams_take_an_exact_shortcut(mode):
    """Inputs of probability 0 or 1 (spikes in unipolar; all-spiking rows in bipolar) are
    all-0s / all-1s streams, so the counter's total follows from the weight streams' counts:
    :func:`sc_dense` takes that shortcut, and it equals the bit-level counter exactly."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 1, (5, 30))
    layer = to_sc_weights([w], mode)[0]
    streams = WeightStreams.draw(layer, 512, rng)
    spikes = (rng.random((20, 30)) < 0.4).astype(float) if mode == "unipolar" \
        else np.ones((20, 30))
    got = sc_dense(spikes, streams, "apc", rng)
    probabilities = spikes if mode == "unipolar" else (spikes + 1) / 2
    xs = bitstreams(probabilities, 512, rng)  # all 0s / all 1s: no randomness
    ones = _apc_ones(xs, streams.streams, layer.bipolar)  # the bit-level counter
    if layer.bipolar:
        value = 2 * ones / 512 - 30
        expected = (layer.hi - layer.lo) / 2 * value + (layer.hi + layer.lo) / 2 * 30
    else:
        expected = (layer.hi - layer.lo) * ones / 512 + layer.lo * spikes.sum(1)[:, None]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


def test_mux_adder_estimates_the_sum_too():
    rng = np.random.default_rng(5)
    w, x = rng.random((3, 8)), rng.random((400, 8))
    streams = WeightStreams.draw(to_sc_weights([w])[0], 1024, rng)
    got = sc_dense(x, streams, "mux", rng)
    exact = x @ w.T
    assert abs((got - exact).mean()) < 0.05  # unbiased
    assert np.sqrt(((got - exact) ** 2).mean()) < 0.5  # but noisy: one stream for 8 products


def test_accuracy_approaches_the_float_network_as_streams_grow():
    rng = np.random.default_rng(0)
    sizes = (16, 24, 4)
    spec = NetworkSpec(sizes, 10, NeuronSpec(0.9, 1.0))
    weights = [rng.normal(0, 2.0 / np.sqrt(i), (o, i))
               for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(0, 0.1, o) for o in sizes[1:]]
    x = rng.random((200, 16))
    labels = run_twin(spec, weights, biases, x).predictions  # the float network: 100 %
    accuracy = {length: sc_accuracy(spec, weights, biases, x, labels,
                                    SCOptions(length=length, mode="unipolar"))["accuracy"]
                for length in (64, 512, 4096)}
    assert accuracy[64] < accuracy[512] < accuracy[4096]
    assert accuracy[4096] >= 0.8
    result = sc_accuracy(spec, weights, biases, x, labels, SCOptions(length=64))
    assert result["n"] == 200 and result["mode"] == "auto" and result["length"] == 64


@pytest.mark.parametrize(("options", "message"), [
    ({"length": 100}, "multiple of 64"),
    ({"length": 0}, "multiple of 64"),
    ({"mode": "x"}, "mode"),
    ({"adder": "tree"}, "adder"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(StochasticError, match=message):
        SCOptions(**options)
