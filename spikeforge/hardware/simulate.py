"""The hardware twin: NumPy, batched, exactly the contract of :mod:`spikeforge.spec`.

It runs what a bundle holds (weights as the hardware realises them) on many inputs at
once. Float bundles (analog target) run in float64; digital bundles run on integer values held
in float64 and are bit-exact with the integer hardware (every sum and product stays below
2^53, where float64 is exact).

As in training, a layer's whole input over ``T`` steps is known before the layer runs,
so layers run one after another, a held input current is computed once, and each layer's
time loop is one Numba kernel call (``spikeforge.kernels.lif_spikes``).
``tests/test_twin.py`` checks every spike against :func:`spikeforge.spec.reference_forward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.spec import NetworkSpec, decode

if TYPE_CHECKING:
    from spikeforge.hardware.circuit import AnalogCircuit, Boards


@dataclass
class TwinResult:
    """counts: output spike counts ``(n, classes)``; total_spikes: spikes of all layers per
    input ``(n,)``; spikes: every layer's ``(T, n, neurons)`` boolean trains if recorded."""

    counts: np.ndarray
    total_spikes: np.ndarray
    spikes: list[np.ndarray] | None = None

    @property
    def predictions(self) -> np.ndarray:
        return decode(self.counts)


def twin_inputs(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """A dataset's samples in the twin's layout: static samples ``(n, features)`` as they
    are; event samples ``(n, T, features)`` (one block per sample, as datasets keep them)
    as boolean spike lines ``(T, n, features)``."""
    if spec.encoding.type == "spikes" and np.ndim(x) == 3:
        return np.ascontiguousarray(np.asarray(x).transpose(1, 0, 2)) != 0
    return x


def encode_inputs(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """``s_0`` as the hardware receives it: a held current ``scale · x`` (float), the
    integer code ``round(x · (2^input_bits - 1))`` (digital), or boolean spike lines."""
    if spec.encoding.type == "spikes":
        return np.asarray(x) != 0
    if spec.digital is not None:
        return np.rint(np.asarray(x, np.float64) * spec.digital.input_max)  # integer codes
    return np.asarray(x, np.float64) * spec.encoding.scale


def layer_currents(s: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``W · s + b`` in float64 for ``s`` of shape ``(n, in)`` (a held input: one matrix
    product) or boolean spikes ``(T, n, in)`` (event-driven: each spike adds its weight
    column). Exact for the digital target's integers."""
    if s.dtype != np.bool_:
        current = s.astype(np.float64, copy=False) @ w.astype(np.float64, copy=False).T
        return current + b if b is not None else current
    from spikeforge import kernels

    flat = s.reshape(-1, s.shape[-1])
    out = np.empty((flat.shape[0], w.shape[0]), dtype=np.float64)
    bias = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
    kernels.spike_currents(flat, np.ascontiguousarray(w.T, dtype=np.float64), bias,
                           b is not None, out)
    return out.reshape(*s.shape[:-1], w.shape[0])


def lif_layer(current: np.ndarray, spec: NetworkSpec, layer: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Boolean spikes ``(T, n, out)`` and spike counts ``(n, out)`` of one layer for
    ``current`` of shape ``(n, out)`` (held) or ``(T, n, out)``; float arithmetic, or the
    digital target's integer arithmetic.

    Digital membranes are held as integer-valued float64: every value stays below 2^53, so
    sums are exact and ``floor(V · decay_num / 2^decay_shift)`` equals the hardware's shift.
    """
    from spikeforge import kernels

    neuron, digital = spec.neuron, spec.digital
    held = current.ndim == 2
    current = np.ascontiguousarray(current, dtype=np.float64)
    flat = current.reshape(1 if held else spec.timesteps, -1)
    shape = current.shape[-2:]
    spikes = np.empty((spec.timesteps, *shape), dtype=np.bool_)
    counts = np.empty(shape, dtype=np.int64)
    threshold = neuron.threshold if digital is None else digital.thresholds[layer]
    kernels.lif_spikes(flat, held, neuron.decay, digital is not None, float(threshold),
                       neuron.reset == "zero", neuron.refractory,
                       spikes.reshape(spec.timesteps, -1), counts.reshape(-1))
    return spikes, counts


def run_twin(spec: NetworkSpec, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None],
             x: np.ndarray, record: bool = False, batch_size: int = 4096) -> TwinResult:
    """Run inputs ``x`` (``(n, features)`` in [0, 1], or spikes ``(T, n, features)``)."""

    def layer(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return lif_layer(layer_currents(s, weights[index], biases[index]), spec, index)

    return _run_batches(spec, len(weights), layer, x, record, batch_size)


def _run_batches(spec: NetworkSpec, n_layers: int, layer: Any, x: np.ndarray, record: bool,
                 batch_size: int) -> TwinResult:
    """Feed ``x`` through ``layer(index, input) -> (spikes, counts)`` for every layer, a
    batch of inputs at a time (bounded memory), and collect the result."""
    spike_input = spec.encoding.type == "spikes"
    n = x.shape[1] if spike_input else x.shape[0]
    counts, totals, recorded = [], [], []
    for start in range(0, n, batch_size):
        batch = x[:, start:start + batch_size] if spike_input else x[start:start + batch_size]
        s = encode_inputs(spec, batch)
        total = 0
        layer_spikes = []
        for index in range(n_layers):
            s, layer_counts = layer(index, s)
            total = total + layer_counts.sum(1)
            layer_spikes.append(s)
        counts.append(layer_counts)
        totals.append(total)
        if record:
            recorded.append(layer_spikes)
    result = TwinResult(np.concatenate(counts), np.concatenate(totals))
    if record:
        result.spikes = [np.concatenate([r[i] for r in recorded], axis=1)
                         for i in range(n_layers)]
    return result


def score(result: TwinResult, labels: np.ndarray) -> dict[str, float | int]:
    """Accuracy (spike counts, ties to the lowest index) and spikes per inference."""
    correct = int((result.predictions == labels).sum())
    return {"accuracy": correct / max(len(labels), 1), "correct": correct, "n": len(labels),
            "mean_spikes_per_inference": float(result.total_spikes.mean())}


# ------------------------------------------------------------- analog boards, Monte Carlo


def run_board(spec: NetworkSpec, boards: Boards, k: int, x: np.ndarray,
              record: bool = False, batch_size: int = 4096) -> TwinResult:
    """Board ``k`` of ``boards`` (drawn analog parts, see
    :func:`spikeforge.hardware.circuit.draw_boards`) on inputs ``x``: the contract with every
    neuron's own decay and threshold, the incomplete reset and the op-amp's saturation
    (:func:`spikeforge.kernels.lif_spikes_board`)."""
    from spikeforge import kernels

    T = spec.timesteps

    def layer(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = None if boards.biases[index] is None else boards.biases[index][k]
        current = np.ascontiguousarray(layer_currents(s, boards.weights[index][k], b))
        held = current.ndim == 2
        shape = current.shape[-2:]
        spikes = np.empty((T, *shape), dtype=np.bool_)
        counts = np.empty(shape, dtype=np.int64)
        kernels.lif_spikes_board(current.reshape(1 if held else T, -1), held, shape[1],
                                 boards.decay[index][k], boards.threshold[index][k],
                                 boards.residual[index][k], boards.v_low[index],
                                 boards.v_high[index], spikes.reshape(T, -1),
                                 counts.reshape(-1))
        return spikes, counts

    return _run_batches(spec, len(boards.weights), layer, x, record, batch_size)


@dataclass
class MonteCarloResult:
    """Accuracy of ``n_boards`` drawn boards on the same ``n`` inputs."""

    accuracies: np.ndarray
    n: int
    seed: int
    options: dict

    def summary(self) -> dict[str, float | int]:
        a = self.accuracies
        return {"boards": int(a.size), "n": self.n, "seed": self.seed,
                "mean": float(a.mean()), "median": float(np.median(a)),
                "p5": float(np.percentile(a, 5)), "worst": float(a.min()),
                "best": float(a.max()), "std": float(a.std())}


def monte_carlo(spec: NetworkSpec, circuit: AnalogCircuit, x: np.ndarray, labels: np.ndarray,
                n_boards: int = 100, seed: int = 0, chunk: int = 20, progress: bool = False,
                **overrides) -> MonteCarloResult:
    """Draw ``n_boards`` boards (every part independently within its tolerance; options
    overridden by ``overrides``, e.g. ``resistor_tolerance=0.05``) and score each on
    ``(x, labels)``. Boards are drawn ``chunk`` at a time (as ``(K, out, in)`` arrays) from
    one seeded generator, so the result depends only on ``seed``."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from spikeforge.hardware.circuit import draw_boards

    options = replace(circuit.options, **overrides)
    accuracies = []
    seeds = np.random.SeedSequence(seed).spawn((n_boards + chunk - 1) // chunk)
    with tqdm(total=n_boards, desc="boards", unit="board", disable=not progress,
              leave=False) as bar:
        for c, child in enumerate(seeds):
            k_here = min(chunk, n_boards - c * chunk)
            boards = draw_boards(circuit, k_here, seed=child, **overrides)
            for k in range(k_here):
                predictions = run_board(spec, boards, k, x).predictions
                accuracies.append(float((predictions == labels).mean()))
                bar.update(1)
    return MonteCarloResult(np.array(accuracies), len(labels), seed, options.to_dict())
