"""The training LIF loop is the contract: same spikes as spikeforge.spec's step-by-step
definition, and gradients equal to a plain autograd loop and to the surrogate's formula."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from spikeforge.models import SpikingNet
from spikeforge.neurons.lif import (
    lif_readout,
    lif_sequence,
    lif_sequence_unfused,
    readout_fusable,
)
from spikeforge.spec import NetworkSpec, NeuronSpec, reference_forward
from spikeforge.surrogates import FastSigmoid, Surrogate, get_surrogate

CASES = list(itertools.product(["zero", "subtract"], [0, 3], [True, False]))


@pytest.fixture(params=["kernels", "torch"], autouse=True)
def backend(request, monkeypatch):
    """Every test here runs on both LIF backends: the Numba CPU kernels and the torch loop
    (which GPUs use)."""
    monkeypatch.setenv("SPIKEFORGE_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize(("reset", "refractory", "constant"), CASES)
def test_fused_loop_equals_plain_autograd_loop(reset, refractory, constant):
    torch.manual_seed(1)
    neuron = NeuronSpec(decay=0.85, threshold=1.0, reset=reset, refractory=refractory)
    shape = (16, 12) if constant else (25, 16, 12)
    current = (torch.randn(shape, dtype=torch.float64) * 0.7 + 0.25)
    a = current.clone().requires_grad_()
    b = current.clone().requires_grad_()
    fused = lif_sequence(a, neuron, 25, FastSigmoid(3.0))
    plain = lif_sequence_unfused(b, neuron, 25, FastSigmoid(3.0))
    assert torch.equal(fused, plain)
    assert 0.05 < fused.mean() < 0.95  # the case really spikes and really stays silent
    weight = torch.randn_like(fused)
    (fused * weight).sum().backward()
    (plain * weight).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("reset", "refractory"), [("zero", 0), ("subtract", 2)])
def test_network_spikes_equal_the_contract_reference(reset, refractory, dtype):
    torch.manual_seed(2)
    spec = NetworkSpec((20, 16, 8, 5), 25, NeuronSpec(0.9, 1.0, reset, refractory))
    net = SpikingNet(spec).to(dtype)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(3.0)
    x = torch.rand(32, 20, dtype=dtype)
    out = net(x, record=True)
    weights, biases = net.weights()
    reference = reference_forward(weights, biases, x, spec)
    for layer, spikes in enumerate(out.spikes):
        assert torch.equal(spikes.bool(), torch.stack(reference[layer])), f"layer {layer}"
    assert out.spikes[-1].sum() > 0
    assert torch.equal(out.counts, out.spikes[-1].sum(0))


READOUT_CASES = [  # (reset, dtype, bias, dropout, hidden layers)
    ("zero", torch.float32, True, 0.5, (16,)),
    ("subtract", torch.float64, False, 0.0, (16,)),
    ("zero", torch.float64, True, 0.5, (24, 16)),
]


@pytest.mark.parametrize(("reset", "dtype", "bias", "dropout", "hidden"), READOUT_CASES)
@pytest.mark.parametrize("inputs", ["held", "spikes"])
def test_fused_readout_equals_the_layer_by_layer_graph(backend, reset, dtype, bias, dropout,
                                                       hidden, inputs):
    """Training runs the last hidden layer and the output layer as one node (lif_readout):
    the same spikes, and gradients equal to 1e-5 (only the order of float sums differs).
    The output layer's weights are multiples of 2^-8 and dropout scales its inputs by 2,
    so its synaptic sums are exact in any order and the spikes must be identical."""
    torch.manual_seed(5)
    spec = NetworkSpec((20, *hidden, 5), 25, NeuronSpec(0.9, 1.0, reset), bias=bias)
    net = SpikingNet(spec, FastSigmoid(3.0), dropout=dropout).to(dtype)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(3.0)
        for p in net.layers[-1].parameters():
            p.mul_(256).round_().div_(256)
    x = (torch.rand(32, 20, dtype=dtype) if inputs == "held"
         else (torch.rand(25, 32, 20) < 0.3).to(dtype))
    weight = torch.randn(32, 5, dtype=dtype)

    def run(record: bool):
        torch.manual_seed(9)  # the same dropout masks for both
        out = net(x, record=record, membrane=False)
        grads = torch.autograd.grad((out.counts * weight).sum(), list(net.parameters()))
        return out.counts, grads

    fused, fused_grads = run(record=False)
    layered, layered_grads = run(record=True)  # recording runs the layer-by-layer graph
    fused_node = type(fused.grad_fn).__name__ == "_LIFReadoutBackward"
    assert fused_node == (backend == "kernels")  # the torch loops (GPUs) run layer by layer
    assert torch.equal(fused, layered)
    assert 0 < fused.mean() < 25
    for a, b in zip(fused_grads, layered_grads, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_fused_readout_refuses_what_its_kernel_does_not_compute(backend):
    current = torch.rand(4, 6)
    weight = torch.rand(3, 6)
    assert readout_fusable(current, NeuronSpec(), FastSigmoid()) == (backend == "kernels")
    assert not readout_fusable(current, NeuronSpec(refractory=2), FastSigmoid())
    assert not readout_fusable(current, NeuronSpec(), get_surrogate("sigmoid"))
    with pytest.raises(ValueError, match="refractory"):
        lif_readout(current, weight, None, NeuronSpec(refractory=2), 5)


def test_fast_sigmoid_gradient_matches_its_formula():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    surrogate = get_surrogate("fast_sigmoid", slope=5.0)
    spikes = surrogate(x)
    assert torch.equal(spikes, (x >= 0).double())
    spikes.sum().backward()
    torch.testing.assert_close(x.grad, 1.0 / (1.0 + 5.0 * x.detach().abs()) ** 2)


def test_single_step_gradient_is_the_surrogate_at_the_threshold_distance():
    current = torch.tensor([[0.2, 0.9, 1.0, 1.7]], dtype=torch.float64, requires_grad=True)
    lif_sequence(current, NeuronSpec(threshold=1.0), 1, FastSigmoid(2.0)).sum().backward()
    expected = 1.0 / (1.0 + 2.0 * (current.detach() - 1.0).abs()) ** 2
    torch.testing.assert_close(current.grad, expected)


def test_custom_surrogates_fall_back_to_their_torch_derivative():
    @dataclasses.dataclass(frozen=True)
    class Triangle(Surrogate):
        def derivative(self, x):
            return (1 - x.abs()).clamp(min=0)

    torch.manual_seed(4)
    current = torch.randn(8, 6, dtype=torch.float64) + 0.5
    a, b = current.clone().requires_grad_(), current.clone().requires_grad_()
    lif_sequence(a, NeuronSpec(refractory=1), 25, Triangle()).sum().backward()
    lif_sequence_unfused(b, NeuronSpec(refractory=1), 25, Triangle()).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10)


def test_inference_skips_the_surrogate_but_gives_the_same_spikes():
    torch.manual_seed(3)
    current = torch.randn(8, 6) + 0.5
    neuron = NeuronSpec()
    with torch.no_grad():
        inference = lif_sequence(current, neuron, 25)
    training = lif_sequence(current.clone().requires_grad_(), neuron, 25)
    assert torch.equal(inference, training.detach())
