"""Training-time augmentation (never applied to test data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, image_shape: tuple[int, ...], max_shift: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each flattened image by its own random offset of up to ``max_shift`` pixels
    along each axis, filling with zeros (the background). ``x`` is ``(batch, H*W)`` for
    images of ``image_shape = (H, W)``, or ``(batch, T, C*H*W)`` for event frames of
    ``image_shape = (C, H, W)``: every step and channel of a sample moves together.

    Small translations are the cheapest regulariser for an MLP on digits: the network
    sees the same strokes at neighbouring input lines.
    """
    if max_shift == 0:
        return x
    height, width = image_shape[-2:]
    batch = x.shape[0]
    planes = x.reshape(batch, -1, height, width)  # (batch, steps x channels, H, W)
    padded = F.pad(planes, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), generator=generator)
    rows = (dy + torch.arange(height))[:, None, :, None]
    cols = (dx + torch.arange(width))[:, None, None, :]
    index = torch.arange(batch)[:, None, None, None]
    plane = torch.arange(planes.shape[1])[None, :, None, None]
    return padded[index, plane, rows, cols].reshape(x.shape)
