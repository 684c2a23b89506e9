"""Magnitude pruning with retraining: networks that fit a board's part budget.

A board pays one resistor per non-zero weight, and one summing node per neuron can only
take so many inputs. Two limits express that (``TrainConfig``):

- ``max_synapses``: at most this many non-zero weights over all layers together;
- ``fan_in``: at most this many non-zero inputs per neuron (per row of each ``W_l``).

Each layer with limits carries a 0/1 mask (a buffer of the model, saved in checkpoints);
the forward pass uses ``W_l ⊙ M_l``, so a pruned weight is exactly 0 and gets no gradient,
and :meth:`spikeforge.models.SpikingNet.apply_masks_` zeroes the parameter itself after every
optimiser step.

Schedule (Zhu & Gupta 2017, "To prune, or not to prune"): ``N`` is first split over the
layers, ``N_l`` each (:func:`allocate`); then from ``start`` to ``end`` (fractions of all
optimiser steps) the masks are tightened ``updates`` times, each layer along its own cubic.
At pruning progress ``p = (t - t_start) / (t_end - t_start)``, clipped to [0, 1]::

    n_l(p) = N_l + (in_l · out_l - N_l) · (1 - p)^3    non-zero weights of layer l
    k_l(p) = K + (in_l - K) · (1 - p)^3                non-zero inputs per neuron

(both rounded up), so most weights go early, while the network still adapts quickly, and the
last ones slowly. After ``end`` the masks stay fixed and the network fine-tunes (the last
third of training by default). At ``p = 1`` the limits are met exactly: ``N`` weights in all
(fewer only if the fan-in limit leaves fewer) and at most ``K`` per row.

Which weights stay: in each row the ``k_l(p)`` highest scores ``|w_ij| · ‖x_j‖`` still
alive, then the layer's ``n_l(p)`` highest of those, with ``‖x_j‖`` the root mean square of
input ``j`` in training (a moving average kept with the masks): the criterion of Wanda (Sun
et al. 2023). Plain ``|w|`` is misleading here: Adam lets the weights of inputs that are
almost never active (the border pixels of MNIST) grow as large as any, and a magnitude
ranking then spends much of a small budget on synapses that never carry current (measured:
two thirds of the first layer's 778 synapses of a 14x14-64-10 network at 1,000 synapses sat
on pixels that are almost always dark; 92.1 % accuracy with ``|w|``, 95.8 % with the score).

The split gives layer ``l`` a share of ``N`` proportional to ``in_l + out_l`` (the
Erdős–Rényi allocation of Mocanu et al. 2018 and Evci et al. 2020): small layers such as the
output layer keep a larger fraction, whereas one global magnitude ranking starves them and
can leave an output neuron with no input at all. Ties go to the lower index, so the masks
are a deterministic function of the weights.

Series snapping (``series``) may prune a few more (magnitudes under the series' smallest
level); :func:`count_synapses` counts what the hardware realises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

#: default pruning window, as fractions of all optimiser steps
PRUNE_START, PRUNE_END, PRUNE_UPDATES = 0.1, 2 / 3, 50


def count_synapses(weights: Sequence[torch.Tensor]) -> int:
    """Non-zero weights over all layers: the synapse resistors (or memory words) a board
    needs for these weights."""
    return int(sum(int(torch.count_nonzero(w)) for w in weights))


def max_fan_in(weights: Sequence[torch.Tensor]) -> int:
    """The largest number of non-zero inputs of any neuron."""
    return max(int((w != 0).sum(1).max()) for w in weights)


def cubic(start_value: float, final_value: float, progress: float) -> float:
    """Zhu & Gupta's cubic from ``start_value`` (progress 0) to ``final_value`` (1)."""
    p = min(max(progress, 0.0), 1.0)
    return final_value + (start_value - final_value) * (1.0 - p) ** 3


def allocate(n_keep: int, shapes: Sequence[tuple[int, int]], capacity: Sequence[int]
             ) -> list[int]:
    """Split ``n_keep`` non-zero weights over layers, Erdős–Rényi style: layer ``l`` of shape
    ``(out, in)`` gets a share proportional to ``in + out`` (its density proportional to
    ``(in + out) / (in · out)``), at most ``capacity[l]``; what a full layer cannot take goes
    to the others in the same proportions. Integer counts summing to
    ``min(n_keep, sum(capacity))``, remainders to the largest fractions (ties: lower layer)."""
    n_keep = min(n_keep, sum(capacity))
    share = [0.0] * len(shapes)
    open_layers = [i for i, c in enumerate(capacity) if c > 0]
    left = float(n_keep)
    while open_layers and left > 1e-9:
        weight = sum(shapes[i][0] + shapes[i][1] for i in open_layers)
        full = [i for i in open_layers
                if share[i] + left * (shapes[i][0] + shapes[i][1]) / weight >= capacity[i]]
        if not full:
            for i in open_layers:
                share[i] += left * (shapes[i][0] + shapes[i][1]) / weight
            break
        for i in full:
            left -= capacity[i] - share[i]
            share[i] = float(capacity[i])
            open_layers.remove(i)
    counts = [min(math.floor(v + 1e-9), c) for v, c in zip(share, capacity, strict=True)]
    order = sorted(range(len(shapes)), key=lambda i: (-(share[i] - counts[i]), i))
    for i in order:
        if sum(counts) >= n_keep:
            break
        if counts[i] < capacity[i]:
            counts[i] += 1
    return counts


@torch.no_grad()
def prune_mask(w: torch.Tensor, mask: torch.Tensor, n_keep: int | None,
               row_cap: int | None, refill: bool = False,
               input_norm: torch.Tensor | None = None) -> torch.Tensor:
    """A layer's new mask: in each row the ``row_cap`` highest scores ``|w_ij| · ‖x_j‖``
    still alive, then the ``n_keep`` highest of those (``input_norm``: ``‖x_j‖``, the RMS of
    each input; ``None`` or all zero: plain ``|w|``). With ``refill`` (the last update),
    should the rows hold fewer than ``n_keep`` live weights (earlier steps cut some rows
    deeper than the final fan-in needs), pruned weights, which are exactly 0, return in index
    order to make up the count, so the final count is exact."""
    alive = mask.bool()
    score = w.abs()
    if input_norm is not None and bool(input_norm.any()):
        score = score * input_norm.to(w)[None, :]
    score = torch.where(alive, score, torch.full_like(w, -1.0))
    keep = torch.ones_like(alive) if refill and n_keep is not None else alive
    if row_cap is not None and row_cap < w.shape[1]:
        order = torch.argsort(score, dim=1, descending=True, stable=True)
        top = torch.zeros_like(alive)
        top.scatter_(1, order[:, :row_cap], True)
        keep = keep & top
    if n_keep is not None:
        flat = torch.where(keep, score, torch.full_like(w, -2.0)).flatten()
        chosen = torch.zeros_like(flat, dtype=torch.bool)
        chosen[torch.argsort(flat, descending=True, stable=True)[:n_keep]] = True
        keep = keep & chosen.reshape(keep.shape)
    return keep.to(mask.dtype)


@dataclass
class Pruner:
    """When and how far to prune during a run of ``total_steps`` optimiser steps.

    ``shapes`` are the weight matrices' ``(out, in)``; ``max_synapses`` / ``fan_in`` the final
    limits (``None``: no limit). :meth:`__call__` is called before every optimiser step with
    the global step index (0-based) and tightens the masks when one of the ``updates``
    scheduled steps is reached. Being a function of the step and the weights only, a run
    resumed from a checkpoint prunes exactly as an uninterrupted one.
    """

    shapes: Sequence[tuple[int, int]]
    max_synapses: int | None
    fan_in: int | None
    total_steps: int
    start: float = PRUNE_START
    end: float = PRUNE_END
    updates: int = PRUNE_UPDATES
    schedule: dict[int, float] = field(init=False)

    def __post_init__(self) -> None:
        first = math.floor(self.start * self.total_steps)
        last = max(first, min(math.floor(self.end * self.total_steps), self.total_steps - 1))
        span = last - first
        n = max(1, min(self.updates, span))
        self.schedule = {first + round(i * span / n): (i / n if span else 1.0)
                         for i in range(n + 1)}
        self.schedule[last] = 1.0

    @property
    def n_weights(self) -> int:
        return sum(o * i for o, i in self.shapes)

    @property
    def final_counts(self) -> list[int] | None:
        """Non-zero weights of each layer at the end (:func:`allocate` of ``max_synapses``
        over what the fan-in limit leaves), or ``None`` without a synapse limit."""
        if self.max_synapses is None:
            return None
        capacity = [o * (i if self.fan_in is None else min(i, self.fan_in))
                    for o, i in self.shapes]
        return allocate(self.max_synapses, self.shapes, capacity)

    def targets(self, progress: float) -> tuple[list[int | None], list[int | None]]:
        """Per layer ``n_l(p)`` (non-zero weights; ``None``: no limit) and ``k_l(p)`` (the
        fan-in cap) at pruning progress ``p`` in [0, 1]: each on its own cubic from the
        dense layer to its final value."""
        def up(x: float) -> int:
            return math.ceil(x - 1e-9)

        caps: list[int | None] = [
            None if self.fan_in is None or self.fan_in >= n_in
            else up(cubic(n_in, self.fan_in, progress)) for _, n_in in self.shapes]
        final = self.final_counts
        if final is None:
            return [None] * len(self.shapes), caps
        return [up(cubic(o * i, n, progress))
                for (o, i), n in zip(self.shapes, final, strict=True)], caps

    def __call__(self, model: torch.nn.Module, step: int) -> bool:
        """Tighten ``model``'s masks if ``step`` is a scheduled update; True if it was."""
        if step not in self.schedule:
            return False
        progress = self.schedule[step]
        counts, caps = self.targets(progress)
        model.set_masks([prune_mask(layer.weight, mask, n, k, progress >= 1.0, norm)
                         for layer, mask, n, k, norm in
                         zip(model.layers, model.masks(), counts, caps, model.input_norms(),
                             strict=True)])
        return True
