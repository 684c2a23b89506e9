"""Input encoders: constant current, Poisson rate, latency, delta, Gaussian receptive fields."""

from __future__ import annotations

import math

import pytest
import torch

from spikeforge.encoders import (
    Encoder,
    constant_current,
    delta,
    gaussian_receptive_fields,
    latency,
    poisson,
)
from spikeforge.errors import ConfigError


def test_constant_current_scales_and_keeps_the_batch_shape():
    x = torch.tensor([[0.0, 0.5, 1.0]])
    assert torch.equal(constant_current(x, 2.0), torch.tensor([[0.0, 1.0, 2.0]]))
    assert constant_current(x) is x


def test_poisson_fires_at_the_pixel_rate_and_is_seeded():
    x = torch.tensor([[0.0, 0.25, 1.0]]).expand(400, 3)
    s = poisson(x, 50, generator=torch.Generator().manual_seed(1))
    assert s.shape == (50, 400, 3) and set(s.unique().tolist()) <= {0.0, 1.0}
    rate = s.mean((0, 1))
    assert rate[0] == 0 and rate[2] == 1 and abs(rate[1] - 0.25) < 0.01
    again = poisson(x, 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, again)
    # gain doubles the probability, capped at one spike per step
    assert abs(poisson(x, 50, gain=2.0).mean((0, 1))[1] - 0.5) < 0.02


def test_latency_fires_once_earlier_for_stronger_inputs_and_never_below_threshold():
    x = torch.tensor([[1.0, 0.5, 0.0, 0.005]])
    s = latency(x, 11, threshold=0.01)
    assert s.shape == (11, 1, 4)
    assert s.sum(0).tolist() == [[1, 1, 0, 0]]
    # linear code: t = round((1 - x)(T - 1)) = 0 and 5
    assert s[0, 0, 0] == 1 and s[5, 0, 1] == 1
    # RC code: t = round(tau ln(x / (x - θ))), clipped to T - 1
    rc = latency(torch.tensor([[1.0, 0.3]]), 30, threshold=0.2, tau=5.0)
    expected = [round(5 * math.log(1 / 0.8)), round(5 * math.log(0.3 / 0.1))]
    assert [int(rc[:, 0, i].nonzero()) for i in range(2)] == expected


def test_delta_spikes_on_change_with_optional_off_channel():
    seq = torch.tensor([0.0, 0.5, 0.55, 0.2, 0.2]).view(5, 1, 1)
    assert delta(seq, 0.1).flatten().tolist() == [0, 1, 0, 0, 0]
    both = delta(seq, 0.1, off_spikes=True)
    assert both.shape == (5, 1, 2)
    assert both[:, 0, 1].tolist() == [0, 0, 0, 1, 0]


def test_gaussian_receptive_fields_peak_at_their_centres():
    x = torch.tensor([[0.0, 1.0], [0.5, 0.25]])
    r = gaussian_receptive_fields(x, n_fields=5)
    assert r.shape == (2, 10)
    # feature 0 of sample 0 (x = 0) sits on centre 0; feature 1 (x = 1) on centre 4
    assert r[0, 0] == 1 and r[0, 9] == 1 and r[1, 2] == 1
    sigma = 1.0 / (1.5 * 3)
    assert r[0, 1] == pytest.approx(math.exp(-(0.25**2) / (2 * sigma**2)))
    # per-feature ranges
    r2 = gaussian_receptive_fields(torch.tensor([[4.0]]), 3, low=torch.tensor([2.0]),
                                   high=torch.tensor([6.0]))
    assert r2[0, 1] == 1
    with pytest.raises(ConfigError, match="n_fields"):
        gaussian_receptive_fields(x, n_fields=2)


def test_encoder_maps_training_encodings_onto_the_contract():
    assert Encoder("constant_current").spec.type == "constant_current"
    assert Encoder("poisson").spec.type == "spikes"
    x = torch.rand(3, 4)
    assert Encoder("latency", timesteps=7)(x).shape == (7, 3, 4)
    with pytest.raises(ConfigError, match="poisson"):
        Encoder("rate")
