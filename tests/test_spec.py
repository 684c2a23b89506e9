"""The hardware contract: validation, serialisation, and the LIF equations on hand-computed
traces (spikeforge.spec is the definition everything else is tested against)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.errors import SpecError
from spikeforge.neurons.lif import lif_sequence
from spikeforge.spec import (
    EncodingSpec,
    LIFState,
    NetworkSpec,
    NeuronSpec,
    decode,
    lif_step,
)

# One neuron, decay 0.5, threshold 1, input 0.9 every step, worked out by hand:
#   zero reset:      U = .9, 1.35*, .9, 1.35*, .9, 1.35*
#   subtract reset:  U = .9, 1.35* (V=.35), 1.075* (V=.075), .9375, 1.36875*, 1.084375*
#   refractory 1, zero:     .9, 1.35*, [off: 0], .9, 1.35*, [off: 0]
#   refractory 1, subtract: .9, 1.35* (V=.35), [off: .175], .9875, 1.39375*, [off: .196875]
HAND_TRACES = {
    ("zero", 0): ([0, 1, 0, 1, 0, 1], [0.9, 0.0, 0.9, 0.0, 0.9, 0.0]),
    ("subtract", 0): ([0, 1, 1, 0, 1, 1], [0.9, 0.35, 0.075, 0.9375, 0.36875, 0.084375]),
    ("zero", 1): ([0, 1, 0, 0, 1, 0], [0.9, 0.0, 0.0, 0.9, 0.0, 0.0]),
    ("subtract", 1): ([0, 1, 0, 0, 1, 0], [0.9, 0.35, 0.175, 0.9875, 0.39375, 0.196875]),
}


@pytest.mark.parametrize(("reset", "refractory"), list(HAND_TRACES))
def test_lif_step_matches_hand_computed_trace(reset, refractory):
    neuron = NeuronSpec(decay=0.5, threshold=1.0, reset=reset, refractory=refractory)
    expected_spikes, expected_v = HAND_TRACES[(reset, refractory)]
    state = LIFState(np.zeros(1), np.zeros(1, dtype=np.int64))
    spikes, v = [], []
    for _ in range(6):
        s, state = lif_step(state, np.array([0.9]), neuron)
        spikes.append(int(s[0]))
        v.append(float(state.v[0]))
    assert spikes == expected_spikes
    np.testing.assert_allclose(v, expected_v, atol=1e-12)


@pytest.mark.parametrize(("reset", "refractory"), list(HAND_TRACES))
def test_training_lif_matches_hand_computed_trace(reset, refractory):
    neuron = NeuronSpec(decay=0.5, threshold=1.0, reset=reset, refractory=refractory)
    spikes = lif_sequence(torch.full((1, 1), 0.9, dtype=torch.float64), neuron, 6)
    assert spikes[:, 0, 0].tolist() == HAND_TRACES[(reset, refractory)][0]


@pytest.mark.parametrize(("kwargs", "field", "allowed"), [
    ({"decay": 0.0}, "neuron.decay", "(0, 1]"),
    ({"decay": 1.5}, "neuron.decay", "(0, 1]"),
    ({"decay": float("nan")}, "neuron.decay", "(0, 1]"),
    ({"threshold": 0.0}, "neuron.threshold", "> 0"),
    ({"threshold": -1.0}, "neuron.threshold", "> 0"),
    ({"refractory": -1}, "neuron.refractory", ">= 0"),
    ({"refractory": 1.5}, "neuron.refractory", "integer"),
    ({"reset": "hold"}, "neuron.reset", "zero, subtract"),
])
def test_neuron_spec_rejects_out_of_range_fields_by_name(kwargs, field, allowed):
    with pytest.raises(SpecError) as err:
        NeuronSpec(**kwargs)
    assert field in str(err.value) and allowed in str(err.value)


def test_network_spec_rejects_bad_timesteps_and_sizes():
    with pytest.raises(SpecError, match="timesteps.*>= 1"):
        NetworkSpec(timesteps=0)
    with pytest.raises(SpecError, match=r"layer_sizes\[1\]"):
        NetworkSpec(layer_sizes=(784, 0, 10))
    with pytest.raises(SpecError, match="encoding.type"):
        EncodingSpec(type="telepathy")


def test_decay_of_one_is_a_plain_integrator():
    assert NeuronSpec(decay=1.0).decay == 1.0


def test_spec_round_trips_through_dict_and_rejects_other_versions():
    spec = NetworkSpec((64, 32, 16, 10), 30, NeuronSpec(0.8, 0.5, "subtract", 2),
                       EncodingSpec(scale=2.0), bias=False)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="schema_version"):
        NetworkSpec.from_dict({**spec.to_dict(), "schema_version": 99})
    with pytest.raises(SpecError, match="timesteps"):
        NetworkSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "timesteps"})


def test_ties_go_to_the_lowest_index_in_numpy_and_torch():
    counts = [[3, 5, 5, 1], [0, 0, 0, 0], [2, 1, 2, 2]]
    assert decode(np.array(counts)).tolist() == [1, 0, 0]
    assert decode(torch.tensor(counts, dtype=torch.float32)).tolist() == [1, 0, 0]
