"""Input encoders: a sample becomes the first layer's input ``s_0[t]`` (see spikeforge.spec).

Shapes: a current held for all ``T`` steps is returned as ``(batch, features)`` (the LIF
loop adds it at every step without copying it ``T`` times); anything that changes over
time is ``(T, batch, features)``.
"""

from __future__ import annotations

import torch

from spikeforge.spec import EncodingSpec


def constant_current(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``s_0[t] = scale · x`` for every t: a pixel in [0, 1] as a held current.

    The reference design's encoding, and the hardware-friendliest: one DC level per input.
    """
    return x * scale if scale != 1.0 else x


def encode(x: torch.Tensor, encoding: EncodingSpec) -> torch.Tensor:
    """Apply the spec's encoding to a batch of samples."""
    if encoding.type == "constant_current":
        return constant_current(x, encoding.scale)
    if encoding.type == "spikes":
        if x.dim() != 3:
            raise ValueError(f"spike input must have shape (T, batch, features), "
                             f"got {tuple(x.shape)}")
        return x
    raise ValueError(f"unknown encoding {encoding.type!r}")
