"""Neuron cells. ``lif`` is the hardware contract's neuron, used by every target."""

from spikeforge.neurons.lif import LIF, lif_sequence, lif_sequence_unfused

__all__ = ["LIF", "lif_sequence", "lif_sequence_unfused"]
