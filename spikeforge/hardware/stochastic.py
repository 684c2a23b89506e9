"""Stochastic computing (SC): the network's dense layers as bitstream arithmetic.

In SC a number is the probability of a 1 in a random bitstream of length ``L``; a gate
multiplies two independent streams and a counter adds them. This module maps a trained
network's weights onto streams (:func:`to_sc_weights`), simulates its dense layers bit by
bit on packed 64-bit words (:func:`sc_dense`), feeds the resulting currents to the
contract's LIF neurons (:func:`sc_forward`) and scores it (:func:`sc_accuracy`); the
precision grows as ``1/sqrt(L)``, and ``benchmarks/stochastic.py`` measures accuracy
against ``L``.

Encoding (per layer, min-max): ``lo = min W``, ``hi = max W`` and every weight becomes the
probability ``p = (w - lo) / (hi - lo)`` in [0, 1], so ``w = lo + (hi - lo) · p``.

- unipolar (all weights of the layer >= 0, or ``mode="unipolar"``): the stream's value is
  ``p``; an input ``x`` in [0, 1] is a stream of value ``x``; multiply = AND
  (``P(a AND b) = p_a p_b`` for independent streams)::

      W·x = (hi - lo) · sum_j p_j x_j + lo · sum_j x_j

- bipolar (signed weights; the default for them): the stream's value is ``v = 2p - 1`` in
  [-1, 1] (``w = mid + half · v``, ``mid = (hi + lo) / 2``, ``half = (hi - lo) / 2``); an
  input ``x`` in [0, 1] is the bipolar stream with ``P(1) = (x + 1) / 2``; multiply = XNOR
  (``v(a XNOR b) = v_a v_b``)::

      W·x = half · sum_j v_j x_j + mid · sum_j x_j

Add: ``"apc"`` (an accumulative parallel counter: the popcount of every product stream,
exact) or ``"mux"`` (a multiplexer picks one of the ``N`` product streams per bit at random:
the output stream's value is their mean, scaled back by ``N``; one stream, much noisier).
The ``sum_j x_j`` terms are read from the input streams by the same adder. Biases are
added as binary constants (a bias is a constant, needing no multiply).

Streams: every bit is ``r < round(p · 2^16)`` for a fresh uniform 16-bit ``r`` (an ideal
stochastic number generator: independent streams, 16-bit comparator). Weight streams are
drawn once per network (as fixed generator seeds on a chip) and used for every input and
step; input streams are drawn per input. A constant-current first layer is evaluated once
per inference (its current is held, as in the twin and the RTL); later layers every
clock, from the spikes of that clock (a spike is the stream of all 1s, no spike all 0s:
exact in unipolar, value 0 = a random half-1 stream in bipolar).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.spec import NetworkSpec, decode

MODES = ("auto", "unipolar", "bipolar")
ADDERS = ("apc", "mux")
SNG_BITS = 16
#: bytes of intermediate product words per chunk of :func:`sc_dense`
CHUNK_BYTES = 64 << 20


class StochasticError(SpikeforgeError):
    """Options or a network the stochastic-computing simulation cannot run."""


@dataclass(frozen=True)
class SCOptions:
    """A stochastic-computing simulation.

    length: stream length L (a multiple of 64: streams are packed in 64-bit words).
    mode:   ``"auto"`` (bipolar for a layer with signed weights, else unipolar),
            ``"unipolar"`` or ``"bipolar"`` for every layer.
    adder:  ``"apc"`` (popcount of every product stream) or ``"mux"`` (random select).
    seed:   the streams' random seed.
    batch:  inputs simulated together (bounds memory).
    """

    length: int = 1024
    mode: str = "auto"
    adder: str = "apc"
    seed: int = 0
    batch: int = 50

    def __post_init__(self) -> None:
        if not (isinstance(self.length, int) and self.length >= 64 and self.length % 64 == 0):
            raise StochasticError(f"stream length {self.length!r}: give a multiple of 64, "
                                  f">= 64 (streams are packed in 64-bit words)")
        if self.mode not in MODES:
            raise StochasticError(f"mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.adder not in ADDERS:
            raise StochasticError(f"adder {self.adder!r}: choose one of {', '.join(ADDERS)}")
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise StochasticError(f"batch {self.batch!r}: give an integer >= 1")


@dataclass(frozen=True)
class SCLayer:
    """A layer's weights as stream probabilities: ``w = lo + (hi - lo) · p``.

    p:       ``(out, in)`` probabilities in [0, 1].
    lo, hi:  the layer's smallest and largest weight.
    bipolar: streams carry ``v = 2p - 1`` and multiply with XNOR (else ``p``, AND).
    """

    p: np.ndarray
    lo: float
    hi: float
    bipolar: bool

    @property
    def weights(self) -> np.ndarray:
        """The weights the probabilities decode to (``lo + (hi - lo) · p``)."""
        return self.lo + (self.hi - self.lo) * self.p


def to_sc_weights(weights: Sequence[np.ndarray], mode: str = "auto") -> list[SCLayer]:
    """Per-layer min-max scaling of the weights onto [0, 1]::

        p = (w - lo) / (hi - lo),   lo = min W_l,  hi = max W_l

    (a layer whose weights are all equal, ``c``, takes the range spanned by 0 and ``c``;
    all zero: [0, 1]). ``mode="auto"`` makes a layer bipolar when it holds negative
    weights."""
    if mode not in MODES:
        raise StochasticError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    layers = []
    for w in weights:
        w = np.asarray(w, dtype=np.float64)
        if not np.isfinite(w).all():
            raise StochasticError("weights hold NaN or infinite values")
        lo, hi = float(w.min()), float(w.max())
        if hi == lo:  # one value: span it with 0 so that p stays in [0, 1]
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            if hi == lo:
                hi = 1.0
        p = np.clip((w - lo) / (hi - lo), 0.0, 1.0)
        bipolar = lo < 0 if mode == "auto" else mode == "bipolar"
        layers.append(SCLayer(p, lo, hi, bipolar))
    return layers


# ---------------------------------------------------------------------- bitstreams


def _comparator_words(threshold: np.ndarray, words: int, rng: np.random.Generator
                      ) -> np.ndarray:
    """``words`` 64-bit words per threshold whose bits are ``r < threshold`` for independent
    uniform 16-bit ``r``, 64 bits at a time: a serial comparator over the bit-planes of
    ``r``, most significant first, each plane one random word per 64 bits::

        less  |= equal & ~r_k & t_k        (t_k: bit k of the threshold, as all 0s / all 1s)
        equal &= ~(r_k ^ t_k)
    """
    ones = np.uint64(2**64 - 1)
    less = np.zeros((threshold.size, words), dtype=np.uint64)
    equal = np.full((threshold.size, words), ones, dtype=np.uint64)
    for k in range(SNG_BITS - 1, -1, -1):
        t = np.where((threshold >> k) & 1, ones, np.uint64(0))[:, None]
        r = rng.bit_generator.random_raw(less.size).reshape(less.shape)
        less |= equal & ~r & t
        equal &= ~(r ^ t)
    return less


def bitstreams(p: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Independent streams of ``length`` bits with ``P(1) = p``, packed little-endian into
    ``uint64`` words: shape ``(*p.shape, length // 64)``. Each bit is ``r < round(p · 2^16)``
    for a fresh uniform 16-bit ``r`` (:func:`_comparator_words`); ``p = 0`` gives all 0s,
    ``p = 1`` all 1s and ``p = 1/2`` uniform random words (the same distributions, drawn
    without a comparison)."""
    p = np.asarray(p, dtype=np.float64)
    threshold = np.rint(np.clip(p, 0.0, 1.0) * 2**SNG_BITS).astype(np.uint64)
    words = length // 64
    out = np.zeros((*p.shape, words), dtype=np.uint64)
    out[threshold >= 2**SNG_BITS] = np.uint64(2**64 - 1)
    half = threshold == 2 ** (SNG_BITS - 1)
    if half.any():
        out[half] = rng.bit_generator.random_raw(int(half.sum()) * words).reshape(-1, words)
    general = np.flatnonzero((threshold > 0) & (threshold < 2**SNG_BITS) & ~half)
    flat_out = out.reshape(-1, words)
    flat_threshold = threshold.reshape(-1)
    chunk = max(1, CHUNK_BYTES // (words * 8 * 4))  # four word arrays live at once
    for start in range(0, general.size, chunk):
        index = general[start:start + chunk]
        flat_out[index] = _comparator_words(flat_threshold[index], words, rng)
    return out


def unpack(streams: np.ndarray, length: int) -> np.ndarray:
    """Packed streams back to booleans ``(..., length)``."""
    raw = np.ascontiguousarray(streams).view(np.uint8)
    return np.unpackbits(raw, axis=-1, count=length, bitorder="little").astype(bool)


def stream_value(ones: np.ndarray, length: int, bipolar: bool) -> np.ndarray:
    """A stream's value from its count of 1s: ``ones / L`` (unipolar) or
    ``2 · ones / L - 1`` (bipolar)."""
    ratio = np.asarray(ones, dtype=np.float64) / length
    return 2.0 * ratio - 1.0 if bipolar else ratio


def multiply(a: np.ndarray, b: np.ndarray, bipolar: bool) -> np.ndarray:
    """The SC product of packed streams: AND (unipolar) or XNOR (bipolar)."""
    return ~(a ^ b) if bipolar else a & b


def input_probabilities(x: np.ndarray, bipolar: bool) -> np.ndarray:
    """Inputs in [0, 1] as stream probabilities: ``x`` (unipolar) or ``(x + 1) / 2``."""
    x = np.asarray(x, dtype=np.float64)
    return (x + 1.0) / 2.0 if bipolar else x


@dataclass
class WeightStreams:
    """A layer's weight streams ``(out, in, L/64)`` and their counts of 1s ``(out, in)``
    (drawn once per network, used for every input and step)."""

    layer: SCLayer
    streams: np.ndarray
    ones: np.ndarray
    length: int

    @classmethod
    def draw(cls, layer: SCLayer, length: int, rng: np.random.Generator) -> WeightStreams:
        streams = bitstreams(layer.p, length, rng)
        return cls(layer, streams, np.bitwise_count(streams).sum(-1, dtype=np.int64), length)


def _apc_ones(xs: np.ndarray, ws: np.ndarray, bipolar: bool) -> np.ndarray:
    """``ones[b, i] = sum_j popcount(x_bj * w_ij)`` (an accumulative parallel counter),
    chunked over ``b`` so the product words stay below :data:`CHUNK_BYTES`."""
    rows, n_in, words = xs.shape
    n_out = ws.shape[0]
    out = np.empty((rows, n_out), dtype=np.int64)
    chunk = max(1, CHUNK_BYTES // max(1, n_out * n_in * words * 8))
    for start in range(0, rows, chunk):
        x = xs[start:start + chunk, None]
        if bipolar:  # popcount(XNOR) = bits - popcount(XOR): one pass fewer
            differ = np.bitwise_count(x ^ ws[None]).sum(axis=(2, 3), dtype=np.int64)
            out[start:start + chunk] = n_in * words * 64 - differ
        else:
            out[start:start + chunk] = np.bitwise_count(x & ws[None]).sum(axis=(2, 3),
                                                                          dtype=np.int64)
    return out


def _select_bits(streams: np.ndarray, select: np.ndarray) -> np.ndarray:
    """Bit ``t`` of stream ``select[t]`` for every ``t``: ``streams`` ``(..., N, W)``,
    ``select`` ``(L,)`` indices into ``N`` -> ``(..., L)`` booleans (a multiplexer)."""
    t = np.arange(select.shape[0])
    words = streams[..., select, t // 64]
    return ((words >> (t % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)


def _sums(px: np.ndarray, w: WeightStreams, adder: str, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """``S`` ``(rows, out)`` and ``S_x`` ``(rows,)`` of :func:`sc_dense` for input
    probabilities ``px`` ``(rows, in)``."""
    layer, length = w.layer, w.length
    rows, n_in = px.shape
    bipolar = layer.bipolar
    scale, offset = (2.0, float(n_in)) if bipolar else (1.0, 0.0)
    if adder == "apc" and np.isin(px, (0.0, 1.0)).all():
        # Deterministic input streams (spikes in unipolar): the product of an all-1s stream
        # is the weight stream and that of an all-0s stream all 0s (AND) or its complement
        # (XNOR), so the counter's total follows from the weight streams' counts, exactly.
        ones = px @ w.ones.T
        if bipolar:
            ones = ones + (1.0 - px) @ (length - w.ones).T
        x_ones = px.sum(1) * length
    elif adder == "apc":
        xs = bitstreams(px, length, rng)
        ones = _apc_ones(xs, w.streams, bipolar)
        x_ones = np.bitwise_count(xs).sum(axis=(1, 2), dtype=np.int64)
    else:  # MUX: per bit, one product stream chosen at random; the value is their mean
        xs = bitstreams(px, length, rng)
        s = np.empty((rows, w.streams.shape[0]))
        s_x = np.empty(rows)
        for r in range(rows):
            select = rng.integers(0, n_in, size=length)  # the select line's random index
            x_bits = _select_bits(xs[r], select)  # (L,)
            w_bits = _select_bits(w.streams, select)  # (out, L)
            prod = ~(x_bits ^ w_bits) if bipolar else x_bits & w_bits
            s[r] = n_in * stream_value(prod.sum(-1), length, bipolar)
            s_x[r] = n_in * stream_value(x_bits.sum(), length, bipolar)
        return s, s_x
    return ones * scale / length - offset, x_ones * scale / length - offset


def sc_dense(x: np.ndarray, w: WeightStreams, adder: str, rng: np.random.Generator,
             bias: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """``scale · W·x + b`` for inputs ``x`` ``(rows, in)`` in [0, 1], computed with
    bitstreams: fresh input streams, the layer's weight streams ``w``, its multiply (AND or
    XNOR) and the ``adder``::

        apc:  S = sum_j value(x_j * w_ij),         S_x = sum_j value(x_j)
        mux:  S = N · value(x_{k_t} * w_{i k_t}),   S_x = N · value(x_{k_t})   (k_t random)
        W·x = A · S + B · S_x,  (A, B) = (hi - lo, lo) unipolar, (half, mid) bipolar

    (``value`` from the count of 1s over L, :func:`stream_value`). Inputs are processed in
    chunks so the random draws stay below :data:`CHUNK_BYTES`."""
    layer = w.layer
    px = input_probabilities(x, layer.bipolar)
    rows, n_in = px.shape
    s = np.empty((rows, w.streams.shape[0]))
    s_x = np.empty(rows)
    chunk = max(1, CHUNK_BYTES // max(1, n_in * w.length * 2))
    for start in range(0, rows, chunk):
        s[start:start + chunk], s_x[start:start + chunk] = _sums(
            px[start:start + chunk], w, adder, rng)
    if layer.bipolar:
        a, b0 = (layer.hi - layer.lo) / 2.0, (layer.hi + layer.lo) / 2.0
    else:
        a, b0 = layer.hi - layer.lo, layer.lo
    current = scale * (a * s + b0 * s_x[:, None])
    return current if bias is None else current + bias


# ---------------------------------------------------------------------- network


@dataclass
class SCResult:
    """Output spike counts ``(n, classes)`` and spikes of all layers per input ``(n,)``."""

    counts: np.ndarray
    total_spikes: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return decode(self.counts)


def _float_spec(spec: NetworkSpec) -> NetworkSpec:
    """The contract in float arithmetic (SC currents are real numbers)."""
    return replace(spec, digital=None)


def sc_forward(spec: NetworkSpec, weights: Sequence[np.ndarray],
               biases: Sequence[np.ndarray | None], x: np.ndarray, options: SCOptions,
               progress: bool = False) -> SCResult:
    """Run a float network (model units: a run's weights, or an analog bundle's) with
    every dense layer in stochastic computing and the contract's LIF neurons (float64).
    ``x``: ``(n, features)`` in [0, 1] for a constant current, or spikes ``(T, n, features)``."""
    from tqdm.auto import tqdm

    from spikeforge.hardware.simulate import lif_layer

    float_spec = _float_spec(spec)
    T = spec.timesteps
    held = spec.encoding.type == "constant_current"
    n = x.shape[0] if held else x.shape[1]
    layers = to_sc_weights(weights, options.mode)
    rng = np.random.default_rng(options.seed)
    w_streams = [WeightStreams.draw(layer, options.length, rng) for layer in layers]
    counts, totals = [], []
    with tqdm(total=n, desc=f"SC L={options.length}", unit="input", disable=not progress,
              leave=False) as bar:
        for start in range(0, n, options.batch):
            batch = x[start:start + options.batch] if held else x[:, start:start + options.batch]
            rows = batch.shape[0] if held else batch.shape[1]
            total = np.zeros(rows, dtype=np.int64)
            s: np.ndarray = np.asarray(batch)
            for index, (ws, b) in enumerate(zip(w_streams, biases, strict=True)):
                bias = None if b is None else np.asarray(b, np.float64)
                if index == 0 and held:  # the held input current: one evaluation
                    current = sc_dense(s, ws, options.adder, rng, bias, spec.encoding.scale)
                else:  # spikes of every clock: (T, rows, in)
                    flat = s.reshape(T * rows, -1).astype(np.float64)
                    current = sc_dense(flat, ws, options.adder, rng, bias).reshape(T, rows, -1)
                s, layer_counts = lif_layer(current, float_spec, index)
                total += layer_counts.sum(1)
            counts.append(layer_counts)
            totals.append(total)
            bar.update(rows)
    return SCResult(np.concatenate(counts), np.concatenate(totals))


def sc_accuracy(spec: NetworkSpec, weights: Sequence[np.ndarray],
                biases: Sequence[np.ndarray | None], x: np.ndarray, labels: np.ndarray,
                options: SCOptions, progress: bool = False) -> dict[str, Any]:
    """Accuracy of the stochastic-computing network on ``(x, labels)`` (spike counts, ties
    to the lowest index), spikes per inference, and the options it ran with."""
    result = sc_forward(spec, weights, biases, x, options, progress)
    correct = int((result.predictions == np.asarray(labels)).sum())
    return {"length": options.length, "mode": options.mode, "adder": options.adder,
            "seed": options.seed, "n": int(len(labels)), "correct": correct,
            "accuracy": correct / max(len(labels), 1),
            "mean_spikes_per_inference": float(result.total_spikes.mean())}


def network_from_run(run_dir: str) -> tuple[NetworkSpec, list[np.ndarray],
                                            list[np.ndarray | None]]:
    """A run's contract and float weights (float64), for :func:`sc_forward`."""
    from spikeforge.train import load_run

    _, spec, model, _ = load_run(run_dir)
    if not hasattr(model, "weights"):
        raise StochasticError(f"{run_dir}: stochastic computing needs a fully connected "
                              f"network (--model mlp)")
    weights, biases = model.weights()
    return (spec, [w.double().numpy() for w in weights],
            [None if b is None else b.double().numpy() for b in biases])
