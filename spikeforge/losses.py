"""Losses on a network's output.

The hardware decodes a class from output spike counts, so the default loss trains exactly
that readout: cross-entropy with the counts as logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_count_loss(counts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on output spike counts ``(batch, classes)``::

        L = -log( exp(c_y) / sum_k exp(c_k) ),   c_k = sum_t s_out[t]_k
    """
    return F.cross_entropy(counts, targets)
