"""Losses on a network's output.

The hardware decodes a class from output spike counts, so the default loss trains exactly
that readout: cross-entropy with the counts as logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_count_loss(counts: torch.Tensor, targets: torch.Tensor, scale: float = 1.0
                  ) -> torch.Tensor:
    """Cross-entropy on output spike counts ``(batch, classes)``::

        L = -log( exp(a·c_y) / sum_k exp(a·c_k) ),   c_k = sum_t s_out[t]_k

    ``scale`` (``a``) is an inverse temperature. Counts run from 0 to T, so with ``a = 1``
    a margin of a few spikes already saturates the softmax and the loss stops rewarding
    a clearer decision; a smaller ``a`` keeps it learning. The argmax, which is what the
    hardware decodes, does not depend on ``a``.
    """
    return F.cross_entropy(counts * scale if scale != 1.0 else counts, targets)
