"""Training-time augmentation (never applied to test data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, image_shape: tuple[int, int], max_shift: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each flattened image ``(batch, H*W)`` by its own random offset of up to
    ``max_shift`` pixels along each axis, filling with zeros (the background).

    Small translations are the cheapest regulariser for an MLP on digits: the network
    sees the same strokes at neighbouring input lines.
    """
    if max_shift == 0:
        return x
    height, width = image_shape
    batch = x.shape[0]
    padded = F.pad(x.reshape(batch, height, width), (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), generator=generator)
    rows = (dy + torch.arange(height))[:, :, None]
    cols = (dx + torch.arange(width))[:, None, :]
    return padded[torch.arange(batch)[:, None, None], rows, cols].reshape(batch, height * width)
