"""The hardware twin: NumPy, batched, exactly the contract of :mod:`spikeforge.spec`.

It runs what a bundle holds (weights as the hardware realises them) on many inputs at
once. Float bundles (analog target) run in float64. Digital bundles take an integer fast
path: membranes are int64 in the LIF kernel (``floor(V · decay)`` is an arithmetic shift),
and synaptic sums run in float32 wherever every partial sum provably stays an integer below
2^24 (:func:`exact_in_float32`), where float32 is exact, else in float64 (exact below
2^53). Either way the result is bit-exact with the integer hardware.

As in training, a layer's whole input over ``T`` steps is known before the layer runs,
so layers run one after another, a held input current is computed once, and each layer's
time loop is one Numba kernel call (``spikeforge.kernels.lif_spikes``). When no spike
train is recorded, the last hidden layer and the output layer run as one kernel that takes
each input through all steps of both (:func:`readout_counts`: only the counts written).
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


FLOAT32_EXACT = 2 ** 24  # float32 holds every integer of smaller magnitude exactly


def exact_in_float32(w: np.ndarray, b: np.ndarray | None, input_peak: float) -> bool:
    """Whether ``W · s + b`` computed in float32 is exact for integer ``W``, ``b`` and
    integer inputs ``0 <= s <= input_peak``, in any order of summation: every partial sum
    is an integer of magnitude at most ``Σ_j |w_ij| · input_peak + |b_i| < 2^24``."""
    if not (np.issubdtype(w.dtype, np.integer) or np.array_equal(w, np.rint(w))):
        return False
    bound = np.abs(w.astype(np.float64)).sum(axis=1) * input_peak
    if b is not None:
        bound = bound + np.abs(np.asarray(b, np.float64))
    return bool(bound.max(initial=0.0) < FLOAT32_EXACT)


def layer_currents(s: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                   dtype: Any = np.float64) -> np.ndarray:
    """``W · s + b`` for ``s`` of shape ``(n, in)`` (a held input: one matrix product) or
    boolean spikes ``(T, n, in)`` (event-driven: each spike adds its weight column), in
    ``dtype``: float64 (exact for the digital target's integers below 2^53), or float32
    where :func:`exact_in_float32` allows it."""
    if s.dtype != np.bool_:
        current = s.astype(dtype, copy=False) @ w.astype(dtype, copy=False).T
        return current + np.asarray(b, dtype) if b is not None else current
    from spikeforge import kernels

    flat = s.reshape(-1, 1, s.shape[-1])  # rows x one network x inputs
    out = np.empty((flat.shape[0], 1, w.shape[0]), dtype=dtype)
    bias = np.zeros((1, w.shape[0]), dtype) if b is None else np.asarray(b, dtype)[None]
    kernels.spike_currents(flat, np.ascontiguousarray(w.T, dtype=dtype)[None], bias,
                           b is not None, out)
    return out.reshape(*s.shape[:-1], w.shape[0])


def _arithmetic(spec: NetworkSpec, current: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The current as the LIF kernels take it (float64, or the digital target's float32
    where it arrives so) and the kernels' arithmetic arguments: the membranes' dtype (an
    empty array of it), ``decay``, ``decay_num``, ``decay_shift``
    (:func:`spikeforge.kernels.membrane_step`)."""
    digital = spec.digital
    dtype = np.float64 if digital is None or current.dtype != np.float32 else np.float32
    current = np.ascontiguousarray(current, dtype=dtype)
    if digital is None:
        return current, (np.empty(0, dtype), float(spec.neuron.decay), 0, 0)
    return current, (np.empty(0, np.int64), 0.0, digital.decay_num, digital.decay_shift)


def _threshold(spec: NetworkSpec, layer: int) -> float | int:
    """Layer ``layer``'s threshold in its membranes' arithmetic."""
    if spec.digital is None:
        return float(spec.neuron.threshold)
    return int(spec.digital.thresholds[layer])


def lif_layer(current: np.ndarray, spec: NetworkSpec, layer: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Boolean spikes ``(T, n, out)`` and spike counts ``(n, out)`` of one layer for
    ``current`` of shape ``(n, out)`` (held) or ``(T, n, out)``; float arithmetic, or the
    digital target's integer arithmetic.

    Digital membranes are int64 (``floor(V · decay_num / 2^decay_shift)`` is the hardware's
    arithmetic shift); the current may arrive as integer-valued float32 or float64.
    """
    from spikeforge import kernels

    neuron = spec.neuron
    held = current.ndim == 2
    current, arithmetic = _arithmetic(spec, current)
    flat = current.reshape(1 if held else spec.timesteps, -1)
    shape = current.shape[-2:]
    spikes = np.empty((spec.timesteps, *shape), dtype=np.bool_)
    counts = np.empty(shape, dtype=np.int64)
    kernels.lif_spikes(flat, held, *arithmetic, _threshold(spec, layer), neuron.reset == "zero",
                       neuron.refractory, spikes.reshape(spec.timesteps, -1), counts.reshape(-1))
    return spikes, counts


def readout_counts(current: np.ndarray, spec: NetworkSpec, layer: int, w: np.ndarray,
                   b: np.ndarray | None, dtype: Any = np.float64
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``(n, hidden)`` of layer ``layer`` driven by ``current`` (``(n,
    hidden)`` held or ``(T, n, hidden)``) and ``(n, out)`` of the layer ``(w, b)`` after it
    (its synaptic sums in ``dtype``), in one kernel that takes each input through all ``T``
    steps of both layers and writes no spike train
    (:func:`spikeforge.kernels.lif_readout_counts`). The counts are those of
    :func:`lif_layer`, :func:`layer_currents` and :func:`lif_layer` again: exactly for the
    digital target, whose sums are exact integers in any order; for the analog target
    the output current's float64 sum runs in another order, so a membrane within rounding
    of the threshold could in principle tip the other way."""
    from spikeforge import kernels

    neuron = spec.neuron
    held = current.ndim == 2
    current, arithmetic = _arithmetic(spec, current)
    n = current.shape[-2]
    hidden_counts = np.empty((n, current.shape[-1]), np.int64)
    counts = np.empty((n, w.shape[0]), np.int64)
    bias = np.zeros(w.shape[0], dtype) if b is None else np.asarray(b, dtype)
    kernels.lif_readout_counts(
        current[None] if held else current, held, spec.timesteps, *arithmetic,
        _threshold(spec, layer), _threshold(spec, layer + 1), neuron.reset == "zero",
        neuron.refractory, np.ascontiguousarray(w, dtype=dtype), bias, hidden_counts, counts)
    return hidden_counts, counts


def run_twin(spec: NetworkSpec, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None],
             x: np.ndarray, record: bool = False, batch_size: int = 4096) -> TwinResult:
    """Run inputs ``x`` (``(n, features)`` in [0, 1], or spikes ``(T, n, features)``).

    Digital bundles take the integer fast path (module docstring): each layer's synaptic
    sums in float32 where that is provably exact, membranes in int64.
    """
    dtypes = [np.float64] * len(weights)
    encode = encode_inputs
    if spec.digital is not None:
        held = spec.encoding.type != "spikes"
        dtypes = [np.float32 if exact_in_float32(w, b, spec.digital.input_max
                                                 if i == 0 and held else 1) else np.float64
                  for i, (w, b) in enumerate(zip(weights, biases, strict=True))]
        if held and dtypes[0] == np.float32:
            encode = _digital_codes

    def layer(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        current = layer_currents(s, weights[index], biases[index], dtypes[index])
        return lif_layer(current, spec, index)

    def readout(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        current = layer_currents(s, weights[index], biases[index], dtypes[index])
        return readout_counts(current, spec, index, weights[index + 1], biases[index + 1],
                              dtypes[index + 1])

    return _run_batches(spec, len(weights), layer, x, record, batch_size, encode,
                        readout=readout)[0]


def _digital_codes(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """:func:`encode_inputs`' integer codes for a held digital input, as float32 (exact:
    codes are below 2^16) in one parallel pass instead of three NumPy passes in float64."""
    from spikeforge import kernels

    assert spec.digital is not None
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, np.float32)
    kernels.integer_codes(x.reshape(len(x), -1), float(spec.digital.input_max),
                          out.reshape(len(x), -1))
    return out


def _run_batches(spec: NetworkSpec, n_layers: int, layer: Any, x: np.ndarray, record: bool,
                 batch_size: int, encode: Any = encode_inputs,
                 networks: int = 1, readout: Any = None) -> list[TwinResult]:
    """Feed ``x`` through ``layer(index, input) -> (spikes, counts)`` for every layer, a
    batch of inputs at a time (bounded memory), and collect one result per network;
    ``encode`` turns a batch into the first layer's input.

    ``networks``: how many networks (drawn boards) ``layer`` runs side by side; each layer's
    neuron axis then holds them one after another (``K·out``), and the result is split.
    ``readout(index, input) -> (counts, counts)``: the last two layers at once, spike
    counts only, used when no spike train is recorded."""
    spike_input = spec.encoding.type == "spikes"
    n = x.shape[1] if spike_input else x.shape[0]
    counts, totals, recorded = [], [], []
    # without spike trains to keep, the last two layers run as one readout call
    fuse_at = n_layers - 2 if readout is not None and not record else None
    for start in range(0, n, batch_size):
        batch = x[:, start:start + batch_size] if spike_input else x[start:start + batch_size]
        s = encode(spec, batch)
        total = 0
        layer_spikes = []
        for index in range(n_layers):
            if index == fuse_at:
                counts_of_layers = readout(index, s)  # this layer's and the output layer's
            else:
                s, layer_counts = layer(index, s)
                counts_of_layers = (layer_counts,)
                layer_spikes.append(s.reshape(*s.shape[:2], networks, -1))
            for layer_counts in counts_of_layers:
                per_network = layer_counts.reshape(len(layer_counts), networks, -1)
                total = total + per_network.sum(2)
            if index == fuse_at:
                break
        counts.append(per_network)
        totals.append(total)
        if record:
            recorded.append(layer_spikes)
    all_counts, all_totals = np.concatenate(counts), np.concatenate(totals)
    results = []
    for k in range(networks):
        result = TwinResult(np.ascontiguousarray(all_counts[:, k]),
                            np.ascontiguousarray(all_totals[:, k]))
        if record:
            result.spikes = [np.concatenate([r[i][:, :, k] for r in recorded], axis=1)
                             for i in range(n_layers)]
        results.append(result)
    return results


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
    return run_boards(spec, boards.board(k), x, record, batch_size)[0]


def run_boards(spec: NetworkSpec, boards: Boards, x: np.ndarray, record: bool = False,
               batch_size: int | None = None) -> list[TwinResult]:
    """All ``K`` boards of ``boards`` on inputs ``x`` at once, one :class:`TwinResult` per
    board (as :func:`run_board` gives it).

    Vectorised over boards and inputs: a batch of inputs is encoded once for all boards;
    the first layer's currents are one matrix product per board; each later layer's
    event-driven currents are one kernel call over all boards; each layer's time loop is
    one call of the board kernel over ``K·out`` neurons with their own constants. Without
    recorded spike trains the last two layers of all boards are one kernel call that takes
    each (input, board) through all steps of both and writes only counts, as
    :func:`readout_counts` does for one network.
    ``batch_size`` (inputs per pass) defaults to ``4096 / K``, so the spike trains in
    flight stay a few MB.
    """
    from spikeforge import kernels

    n_boards, steps = boards.n_boards, spec.timesteps
    batch_size = batch_size or max(64, 4096 // n_boards)

    def currents(index: int, s: np.ndarray) -> np.ndarray:
        w = boards.weights[index]
        _, n_out, n_in = w.shape
        b = boards.biases[index]
        if index == 0:  # one input for every board; board by board, so that each
            # product is the one run_twin computes (a stacked product may round differently)
            current = np.stack([layer_currents(s, w[k], None if b is None else b[k])
                                for k in range(n_boards)], axis=-2)
            current = current.reshape(*current.shape[:-2], n_boards * n_out)
        else:  # s: (T, batch, K·in), each board's own spikes
            rows = s.shape[0] * s.shape[1]
            current = np.empty((*s.shape[:2], n_boards * n_out))
            bias = np.zeros((n_boards, n_out)) if b is None else np.asarray(b, np.float64)
            kernels.spike_currents(
                s.reshape(rows, n_boards, n_in), np.ascontiguousarray(w.transpose(0, 2, 1)),
                bias, b is not None, current.reshape(rows, n_boards, n_out))
        return np.ascontiguousarray(current, dtype=np.float64)

    def constants(index: int) -> tuple:
        return (boards.decay[index].reshape(-1), boards.threshold[index].reshape(-1),
                boards.residual[index].reshape(-1), boards.v_low[index], boards.v_high[index])

    def layer(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        current = currents(index, s)
        held = current.ndim == 2
        shape = current.shape[-2:]
        spikes = np.empty((steps, *shape), dtype=np.bool_)
        counts = np.empty(shape, dtype=np.int64)
        kernels.lif_spikes_board(current.reshape(1 if held else steps, -1), held, shape[1],
                                 *constants(index), spikes.reshape(steps, -1),
                                 counts.reshape(-1))
        return spikes, counts

    def readout(index: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``index`` and the output layer after it in one kernel, counts only
        (:func:`spikeforge.kernels.lif_readout_counts_board`; see :func:`readout_counts`)."""
        current = currents(index, s)
        w, b = boards.weights[index + 1], boards.biases[index + 1]
        hidden_counts = np.empty(current.shape[-2:], np.int64)
        counts = np.empty((current.shape[-2], n_boards * w.shape[1]), np.int64)
        bias = np.zeros(w.shape[:2]) if b is None else np.asarray(b, np.float64)
        kernels.lif_readout_counts_board(
            current[None] if current.ndim == 2 else current, current.ndim == 2, steps,
            n_boards, *constants(index), np.ascontiguousarray(w, dtype=np.float64),
            np.ascontiguousarray(bias), *constants(index + 1), hidden_counts, counts)
        return hidden_counts, counts

    return _run_batches(spec, len(boards.weights), layer, x, record, batch_size,
                        networks=n_boards, readout=readout)


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
    one seeded generator, so the result depends only on ``seed``, and each chunk runs
    vectorised (:func:`run_boards`)."""
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
            for result in run_boards(spec, boards, x):
                accuracies.append(float((result.predictions == labels).mean()))
            bar.update(k_here)
    return MonteCarloResult(np.array(accuracies), len(labels), seed, options.to_dict())
