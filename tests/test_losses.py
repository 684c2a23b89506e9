"""Losses against values worked out by hand on tiny examples, their gradients, the registry's
dispatch, and the spike regularisers' scale."""

from __future__ import annotations

import math

import pytest
import torch

from spikeforge.errors import ConfigError
from spikeforge.losses import (
    LOSSES,
    ce_count_loss,
    ce_membrane_loss,
    classification_loss,
    mse_rate_loss,
    spike_l1_loss,
    spike_l2_loss,
)


def _ce(logits: list[list[float]], targets: list[int]) -> float:
    """Cross-entropy by hand: mean of log(sum exp) - logit of the target."""
    return sum(math.log(sum(math.exp(v) for v in row)) - row[y]
               for row, y in zip(logits, targets, strict=True)) / len(targets)


COUNTS = [[3.0, 1.0, 0.0], [0.0, 2.0, 4.0]]
TARGETS = [0, 1]


def test_ce_count_loss_by_hand():
    counts = torch.tensor(COUNTS, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(TARGETS)
    loss = ce_count_loss(counts, targets, 0.5)
    expected = _ce([[1.5, 0.5, 0.0], [0.0, 1.0, 2.0]], TARGETS)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    # d/dc = a · (softmax - onehot) / B
    p = torch.softmax(0.5 * counts.detach(), 1)
    onehot = torch.nn.functional.one_hot(targets, 3).double()
    torch.testing.assert_close(counts.grad, 0.5 * (p - onehot) / 2)


def test_ce_membrane_loss_by_hand():
    membrane = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 0])
    loss = ce_membrane_loss(membrane, targets)
    # row 0: log(e^0.5 + e^-1) + 1;  row 1: log(e^2 + e^0.25) - 2
    expected = (math.log(math.exp(0.5) + math.exp(-1.0)) + 1.0
                + math.log(math.exp(2.0) + math.exp(0.25)) - 2.0) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert ce_membrane_loss(membrane, targets, 2.0).item() == pytest.approx(
        _ce([[1.0, -2.0], [4.0, 0.5]], [1, 0]), rel=1e-12)
    loss.backward()
    assert membrane.grad is not None and membrane.grad.abs().sum() > 0
    # raising the true class's membrane lowers the loss
    assert membrane.grad[0, 1] < 0 and membrane.grad[1, 0] < 0


def test_mse_rate_loss_by_hand():
    counts = torch.tensor(COUNTS, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(TARGETS)
    # T = 5: rates [[.6, .2, 0], [0, .4, .8]]; targets [[.8, 0, 0], [0, .8, 0]]
    # squared errors: .04 + .04 + 0 + 0 + .16 + .64 = .88, over 6 entries
    loss = mse_rate_loss(counts, targets, 5)
    assert loss.item() == pytest.approx(0.88 / 6, rel=1e-12)
    # with off_rate 0.1 and target_rate 1.0: (.4² + .1² + .1² + .1² + .6² + .7²) / 6
    other = mse_rate_loss(counts, targets, 5, target_rate=1.0, off_rate=0.1)
    assert other.item() == pytest.approx((0.16 + 0.01 + 0.01 + 0.01 + 0.36 + 0.49) / 6,
                                         rel=1e-12)
    loss.backward()
    # dL/dc = 2 (r - r*) / (T · B · K)
    expected = 2 * torch.tensor([[-0.2, 0.2, 0.0], [0.0, -0.4, 0.8]], dtype=torch.float64) / 30
    torch.testing.assert_close(counts.grad, expected)


def test_mse_rate_loss_is_zero_on_target():
    counts = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    assert mse_rate_loss(counts, torch.tensor([0, 1]), 5).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("kwargs", "field"), [({"timesteps": 0}, "timesteps"),
                                               ({"target_rate": 1.5}, "target_rate"),
                                               ({"off_rate": -0.1}, "off_rate")])
def test_mse_rate_loss_rejects_bad_settings(kwargs, field):
    args = {"timesteps": 5, **kwargs}
    with pytest.raises(ConfigError, match=field):
        mse_rate_loss(torch.zeros(2, 3), torch.tensor([0, 1]), **args)


def test_registry_dispatches_with_the_right_inputs():
    assert set(LOSSES) == {"ce_count", "ce_membrane", "mse_rate"}
    counts = torch.tensor(COUNTS)
    membrane = torch.tensor([[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]])
    targets = torch.tensor(TARGETS)
    assert torch.equal(classification_loss("ce_count", counts, None, targets, 5, 0.5),
                       ce_count_loss(counts, targets, 0.5))
    assert torch.equal(classification_loss("ce_membrane", None, membrane, targets, 5, 0.5),
                       ce_membrane_loss(membrane, targets, 0.5))
    # mse_rate ignores logit_scale and uses timesteps
    assert torch.equal(classification_loss("mse_rate", counts, membrane, targets, 5, 0.5),
                       mse_rate_loss(counts, targets, 5))
    assert torch.equal(classification_loss("mse_rate", counts, None, targets, 5, 3.0),
                       mse_rate_loss(counts, targets, 5))


def test_registry_errors():
    with pytest.raises(ConfigError, match=r"loss = 'hinge' is unknown.*ce_count.*mse_rate"):
        classification_loss("hinge", torch.zeros(2, 3), None, torch.tensor([0, 1]), 5, 1.0)
    with pytest.raises(ValueError, match="membrane"):
        classification_loss("ce_membrane", torch.zeros(2, 3), None, torch.tensor([0, 1]), 5, 1.0)


def test_regularisers_by_hand():
    # T = 2, batch 2, two layers of 2 and 1 neurons (N = 3)
    hidden = torch.tensor([[[1.0, 0.0], [1.0, 1.0]],
                           [[1.0, 0.0], [0.0, 1.0]]])
    out = torch.tensor([[[0.0], [1.0]],
                        [[1.0], [1.0]]])
    # counts per sample: sample 0 hidden (2, 0), out 1; sample 1 hidden (1, 2), out 2
    # L1 = (3 + 5) / (B=2 · N=3);  L2 = (4 + 0 + 1 + 1 + 4 + 4) / (2 · 3 · T=2)
    assert spike_l1_loss([hidden, out]).item() == pytest.approx(8 / 6)
    assert spike_l2_loss([hidden, out]).item() == pytest.approx(14 / 12)
    # a single tensor is one layer
    assert spike_l1_loss(hidden).item() == pytest.approx(5 / 4)
    assert spike_l2_loss(hidden).item() == pytest.approx(9 / 8)


def test_regularisers_are_zero_for_a_silent_net_and_grow_with_spikes():
    torch.manual_seed(0)
    silent = [torch.zeros(10, 4, 8), torch.zeros(10, 4, 3)]
    assert spike_l1_loss(silent).item() == 0.0 and spike_l2_loss(silent).item() == 0.0
    assert spike_l1_loss([]).item() == 0.0 and spike_l2_loss([]).item() == 0.0
    l1, l2 = [], []
    for p in (0.05, 0.2, 0.5, 1.0):
        layers = [(torch.rand(10, 4, 8) < p).float(), (torch.rand(10, 4, 3) < p).float()]
        l1.append(spike_l1_loss(layers).item())
        l2.append(spike_l2_loss(layers).item())
        assert 0 < l2[-1] <= l1[-1] + 1e-12 <= 10 + 1e-12  # 0 < L2 <= L1 <= T
    assert l1 == sorted(l1) and l2 == sorted(l2)
    assert l1[-1] == pytest.approx(10.0) and l2[-1] == pytest.approx(10.0)  # every step fires


def test_regularisers_have_gradients_that_push_towards_silence():
    spikes = (torch.rand(6, 3, 5) < 0.5).float().requires_grad_()
    spike_l1_loss(spikes).backward()
    torch.testing.assert_close(spikes.grad, torch.full_like(spikes, 1 / (3 * 5)))
    spikes.grad = None
    spike_l2_loss(spikes).backward()
    # dL2/ds[t]_bi = 2 c_bi / (B · N · T): larger for busier neurons, never negative
    expected = (2 * spikes.detach().sum(0) / (3 * 5 * 6)).expand(6, 3, 5)
    torch.testing.assert_close(spikes.grad, expected)


def test_regulariser_shape_errors():
    with pytest.raises(ValueError, match="expected"):
        spike_l1_loss(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\(T, batch\)"):
        spike_l2_loss([torch.zeros(4, 3, 2), torch.zeros(5, 3, 2)])
