"""Networks: SpikingNet built from sizes, the accumulated-membrane readout, other neuron
cells inside SpikingNet, and ConvSpikingNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikeforge.encoders import Encoder
from spikeforge.errors import ConfigError
from spikeforge.models import ConvSpikingNet, SpikingNet
from spikeforge.neurons.lif import lif_sequence
from spikeforge.spec import NeuronSpec, reference_forward


def test_spiking_net_from_sizes_has_n_layers_hidden_layers():
    net = SpikingNet(64, 32, 10, n_layers=2, timesteps=5, decay=0.8, threshold=0.5)
    assert net.spec.layer_sizes == (64, 32, 32, 10)
    assert net.spec.neuron.decay == 0.8 and net.spec.timesteps == 5
    out = net(torch.rand(3, 64))
    assert out.counts.shape == (3, 10) and out.membrane.shape == (3, 10)
    # spike trains (T, batch, features) go in directly
    assert net(torch.rand(5, 3, 64).round()).counts.shape == (3, 10)


def test_skipping_the_membrane_changes_no_spike_and_no_gradient():
    """membrane=False (what train_epoch asks for when the loss reads counts) leaves out
    only the accumulated membrane. (It also lets training run the last two layers as one
    node, lif_readout, whose gradients differ from the layer-by-layer graph's only by the
    order of float sums.)"""
    torch.manual_seed(0)
    net = SpikingNet(20, 16, 4, timesteps=10)
    x = torch.rand(6, 20)
    full, lean = net(x), net(x, membrane=False)
    assert lean.membrane is None and full.membrane is not None
    torch.testing.assert_close(full.counts, lean.counts, rtol=0, atol=0)
    grads = []
    for out in (net(x), net(x, membrane=False)):
        net.zero_grad()
        out.counts.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(a.abs().max()))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_accumulated_membrane_is_the_sum_of_the_contract_membrane(reset):
    torch.manual_seed(0)
    net = SpikingNet(6, 5, 3, timesteps=8, decay=0.9, threshold=0.7, reset=reset)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(3)
    x = torch.rand(4, 6)
    out = net(x)
    weights = [layer.weight.detach().double().numpy() for layer in net.layers]
    biases = [layer.bias.detach().double().numpy() for layer in net.layers]
    spikes = reference_forward(weights, biases, x.double().numpy(), net.spec)
    hidden = torch.from_numpy(np.stack(spikes[0]).astype(np.float32))
    assert out.counts.sum() > 0 and hidden.sum() > 0
    # U of the output layer, step by step from the contract's hidden spikes
    current = F.linear(hidden, net.layers[1].weight, net.layers[1].bias).detach()
    v, expected = torch.zeros(4, 3), torch.zeros(4, 3)
    for t in range(8):
        u = 0.9 * v + current[t]
        expected += u
        fired = (u >= 0.7).float()
        v = u * (1 - fired) if reset == "zero" else u - 0.7 * fired
    torch.testing.assert_close(out.membrane, expected.float(), rtol=1e-5, atol=1e-5)


def test_membrane_readout_carries_a_gradient_to_the_weights():
    torch.manual_seed(0)
    net = SpikingNet(6, 5, 3, timesteps=6)
    net(torch.rand(4, 6) * 10).membrane.sum().backward()
    assert net.layers[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cell", ["synaptic", "alif", "recurrent_lif", "adex", "alpha"])
def test_spiking_net_runs_and_trains_with_other_cells(cell):
    torch.manual_seed(0)
    net = SpikingNet(8, 6, 3, timesteps=6, cell=cell)
    x = torch.rand(5, 8) * 3
    out = net(x, record=True)
    assert out.counts.shape == (5, 3) and len(out.spikes) == 2
    out.membrane.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert net.layers[0].weight.grad.abs().sum() > 0


def test_lif_cell_path_equals_the_fused_path():
    torch.manual_seed(1)
    fused = SpikingNet(8, 6, 3, timesteps=7)
    stepped = SpikingNet(8, 6, 3, timesteps=7, learn_threshold=True)
    stepped.load_state_dict(fused.state_dict(), strict=False)
    x = torch.rand(5, 8) * 2
    a, b = fused(x, record=True), stepped(x, record=True)
    assert torch.equal(a.counts, b.counts)
    torch.testing.assert_close(a.membrane, b.membrane, rtol=1e-5, atol=1e-5)
    assert "cells.0.threshold_raw" in dict(stepped.named_parameters()) or any(
        "threshold" in n for n, _ in stepped.named_parameters())


def test_poisson_encoder_is_random_in_training_and_fixed_in_evaluation():
    torch.manual_seed(0)
    net = SpikingNet(10, 8, 3, timesteps=10, encoder=Encoder("poisson", 10))
    assert net.spec.encoding.type == "spikes"
    x = torch.rand(20, 10)
    net.eval()
    assert torch.equal(net(x).counts, net(x).counts)
    net.train()
    draws = {tuple(net(x).membrane.flatten().tolist()) for _ in range(3)}
    assert len(draws) > 1


def test_conv_net_first_convolution_runs_once_for_a_held_image():
    torch.manual_seed(0)
    net = ConvSpikingNet((12, 12), 4, channels=(3, 5), kernel_size=3, pool=2, n_hidden=(6,),
                         timesteps=5)
    x = torch.rand(2, 144)
    out = net(x, record=True)
    assert out.counts.shape == (2, 4) and out.membrane.shape == (2, 4)
    assert [s.shape for s in out.spikes] == [(5, 2, 3 * 10 * 10), (5, 2, 5 * 3 * 3),
                                             (5, 2, 6), (5, 2, 4)]
    # the same image as a per-step spike map gives the same first layer
    neuron = NeuronSpec()
    conv = net.convs[0](x.view(2, 1, 12, 12))
    held = lif_sequence(conv.flatten(1), neuron, 5)
    assert torch.equal(held, out.spikes[0])
    steps = x.expand(5, 2, 144)
    assert torch.equal(net(steps).counts, out.counts)
    out.counts.sum().backward()
    assert net.convs[0].weight.grad.abs().sum() > 0


def test_conv_net_refuses_an_image_it_would_shrink_to_nothing():
    with pytest.raises(ConfigError, match="shrink"):
        ConvSpikingNet((8, 8), 10, channels=(4, 4, 4), kernel_size=3, pool=2)
