"""Spike-timing learning rules without gradient descent: reward-modulated STDP and BP-STDP.

Both run the hardware contract's LIF neurons (:mod:`spikeforge.spec`), one clock at a time::

    U[t] = decay · V[t-1] + I[t];   s[t] = U[t] >= threshold;   V[t] = 0 where s[t], else U[t]

(:func:`lif_update`, tested equal to :func:`spikeforge.spec.lif_step`), with no bias and no
refractory period. Inputs are rate codes: an intensity ``x`` in [0, 1] fires with probability
``min(gain · x, 1)`` at every step (:func:`poisson_spikes`, the definition of
:func:`spikeforge.encoders.poisson`, drawn from a seeded NumPy generator); tabular data (Iris)
first becomes a population code, ``n_fields`` Gaussian receptive fields per feature
(:func:`spikeforge.encoders.gaussian_receptive_fields`). Decisions are the contract's: the
output neuron with the most spikes, ties (and a silent output layer) to the lowest index.

``r-stdp`` (:func:`train_r_stdp`) -- reward-modulated STDP (Izhikevich 2007, Florian 2007;
the source's failed MNIST attempt). Per synapse ``j -> i`` and step ``t``::

    x_j[t] = λ_pre · x_j[t-1] + s_j[t]              presynaptic trace (this step included)
    STDP_ij[t] = A+ · s_i[t] · x_j[t] - A- · y_i[t-1] · s_j[t]
    y_i[t] = λ_post · y_i[t-1] + s_i[t]             postsynaptic trace
    e_ij[t] = λ_e · e_ij[t-1] + STDP_ij[t]          eligibility trace, e[0] = 0

Pre-then-post pairs potentiate (a step counts as causal: the input of step t drives the
spike of step t), post-then-pre pairs depress. At the end of a sample the decision earns a
reward ``r = +1`` (correct) or ``-1``; a running baseline ``b`` (the mean reward) turns it into
an advantage, and the eligibility is consolidated::

    A = r - b;   b <- b + α · (r - b);   W <- W + η · w̄ · A · e[T];   W <- normalise(W)

(with ``batch`` samples simulated side by side on the same weights, the baseline still runs
sample by sample and their ``A · e[T]`` are summed into one update). ``w̄`` is the initial
mean weight of the layer (so ``η`` is relative), ``normalise`` clips
weights at 0 (excitatory synapses) and rescales each neuron's incoming weights to their
initial sum (competition between synapses, Diehl & Cook 2015). The output layer has
winner-take-all lateral inhibition: every output spike at step ``t - 1`` injects
``-inhibition`` into the other output neurons' current at step ``t``. Every layer (hidden
layers included) learns by the same rule with the same global advantage. Diagnostics keep
the predicted-class histogram over training and the reward, baseline and advantage per chunk
of training samples: the evidence of why the rule fails on MNIST.

``bp-stdp`` (:func:`train_bp_stdp`) -- Tavanaei & Maida 2017, "BP-STDP: Approximating
backpropagation using spike timing dependent plasticity" (arXiv:1711.04214). A sample is
shown for ``T`` steps split into windows of ``ε`` steps; at the end of each window, with
``c_j`` the spike count of neuron ``j`` in that window (for a held-current input, the charge
``ε · x_j``) and ``z_k = 1`` for the label's output neuron, else 0::

    ξ_k = z_k - [c_k > 0]                           output: +1 target silent, -1 non-target fired
    δ_h = (Σ_k ξ_k · w_kh) · [c_h > 0]              hidden: backpropagated, f' = fired in window
    Δw_kh = μ · ξ_k · c_h;   Δw_hj = μ · δ_h · c_j  (STDP / anti-STDP gated by the teacher)

so the label neuron should fire in every window and the others never. The paper uses IF
neurons (``decay = 1``), here a hyperparameter of the method (the contract allows 1). For
speed on a CPU, ``batch`` samples run side by side with shared weights (matrix products
instead of vector ones) and each window's update is the mean of the per-sample updates, each
still local in space and time; ``batch = 1`` is the paper's online rule.

Protocol (:mod:`spikeforge.baselines.common`): a validation split is held out of the
training set (:func:`~spikeforge.baselines.ann.validation_split`); learning rates
(``lr_candidates``) and the epoch to stop at are chosen on it, and the test set is scored
once at the end. The per-dataset defaults (:func:`r_stdp_config`, :func:`bp_stdp_config`)
were chosen on validation splits only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from spikeforge.baselines.ann import class_histogram, default_epochs, validation_split
from spikeforge.baselines.common import BaselineResult, BaselineSettings, accuracy, limited
from spikeforge.data.datasets import Dataset
from spikeforge.encoders import gaussian_receptive_fields
from spikeforge.errors import ConfigError
from spikeforge.spec import NeuronSpec

Array = np.ndarray

#: BLAS threads while these rules run. Their matrix products are small and many (one per
#: window or sample); on 2 busy cores a multi-threaded BLAS spent ~10x longer synchronising
#: its threads (MNIST BP-STDP 784-1000-10: 5.8 ms/sample with the default pool, 0.4 with one).
BLAS_THREADS = 1

# ---------------------------------------------------------------------------------------------
# Shared pieces: the contract's LIF step, the input codes
# ---------------------------------------------------------------------------------------------


def lif_update(v: Array, current: Array, neuron: NeuronSpec) -> tuple[Array, Array]:
    """One clock of a layer of the contract's LIF neurons without refractory period:
    ``U = decay · V + I``, ``s = U >= threshold``, ``V' = U · (1 - s)`` (reset ``"zero"``)
    or ``U - threshold · s`` (``"subtract"``). Returns ``(spikes (bool), V')``. The same
    operations, in the same order, as :func:`spikeforge.spec.lif_step` with refractory 0."""
    u = neuron.decay * v + current
    s = u >= neuron.threshold
    v_new = u * ~s if neuron.reset == "zero" else u - neuron.threshold * s
    return s, v_new


def poisson_spikes(p: Array, steps: int, rng: np.random.Generator) -> Array:
    """``(steps, *p.shape)`` float32 spikes, 1 with probability ``p`` (already ``gain · x``
    clipped to [0, 1]) independently at each step: :func:`spikeforge.encoders.poisson`."""
    return (rng.random((steps, *p.shape), dtype=np.float32) < p).astype(np.float32)


def input_intensities(x: Array, n_fields: int) -> Array:
    """Samples ``(n, features)`` in [0, 1] as input intensities: ``n_fields`` Gaussian
    receptive fields per feature over [0, 1] (Bohte et al. 2002) when ``n_fields > 0`` (at
    least 3), else the features themselves (pixels)."""
    x = np.asarray(x, dtype=np.float32)
    if n_fields <= 0:
        return x
    with torch.no_grad():
        return gaussian_receptive_fields(torch.from_numpy(x), n_fields).numpy()


def _check_neuron(neuron: NeuronSpec) -> None:
    if neuron.refractory != 0:
        raise ConfigError("the STDP baselines run neurons without a refractory period "
                          f"(neuron.refractory = {neuron.refractory}; use 0)")


def _bar(total: int, desc: str, settings: BaselineSettings) -> Any:
    return tqdm(total=total, desc=desc, unit="sample", leave=False,
                disable=not settings.progress, mininterval=0.5)


def _run_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator,
                                    np.random.Generator, np.random.Generator]:
    """Independent generators for the initial weights, the sample order, the training input
    spikes and the evaluation input spikes: a candidate learning rate changes none of them."""
    init, order, train_spikes, eval_spikes = np.random.SeedSequence(seed).spawn(4)
    return (np.random.default_rng(init), np.random.default_rng(order),
            np.random.default_rng(train_spikes), np.random.default_rng(eval_spikes))


# ---------------------------------------------------------------------------------------------
# R-STDP: the pure update rules
# ---------------------------------------------------------------------------------------------


def stdp_step(e: Array, x_pre: Array, y_post: Array, s_pre: Array, s_post: Array, *,
              a_plus: float, a_minus: float, decay_pre: float, decay_post: float,
              decay_e: float) -> tuple[Array, Array, Array]:
    """One step of the traces and the eligibility of a layer (``e (..., post, pre)``,
    ``x_pre (..., pre)``, ``y_post (..., post)``; ``s_*`` this step's spikes)::

        x' = λ_pre · x + s_pre
        e' = λ_e · e + A+ · s_post ⊗ x' - A- · y ⊗ s_pre      (y: the trace before this step)
        y' = λ_post · y + s_post

    Returns ``(e', x', y')``. The reference definition of :func:`eligibility`."""
    x_new = decay_pre * x_pre + s_pre
    e_new = (decay_e * e + a_plus * s_post[..., :, None] * x_new[..., None, :]
             - a_minus * y_post[..., :, None] * s_pre[..., None, :])
    return e_new, x_new, decay_post * y_post + s_post


def _filtered(spikes: Array, decay: float) -> Array:
    """``f[t] = decay · f[t-1] + spikes[t]`` along the first (time) axis."""
    out = np.empty_like(spikes)
    acc = np.zeros_like(spikes[0])
    for t in range(len(spikes)):
        acc = decay * acc + spikes[t]
        out[t] = acc
    return out


def _stdp_factors(post: Array, decay_post: float, decay_e: float) -> tuple[Array, Array]:
    """The eligibility at the last step as two sums over time of outer products,
    ``e[T] = Σ_t λ_e^(T-t) (A+ · s_post[t] ⊗ x[t] - A- · y[t-1] ⊗ s_pre[t])``: returns the
    time-weighted post factors ``(g·s_post, g·y_prev)``, each ``(T, B, post)``."""
    steps = len(post)
    g = decay_e ** np.arange(steps - 1, -1, -1, dtype=np.float64)[:, None, None]
    y = _filtered(post, decay_post)
    y_prev = np.concatenate([np.zeros_like(y[:1]), y[:-1]])
    return g * post, g * y_prev


def eligibility(pre: Array, post: Array, *, a_plus: float, a_minus: float, decay_pre: float,
                decay_post: float, decay_e: float) -> Array:
    """Eligibility trace ``e[T]`` of every synapse after a sample, per sample: ``pre``
    ``(T, B, n_pre)`` and ``post`` ``(T, B, n_post)`` spikes -> ``(B, n_post, n_pre)``.
    Equal to iterating :func:`stdp_step` from zero traces, in closed form (two matrix
    products over time instead of ``T`` outer products)."""
    pre = np.asarray(pre, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    x = _filtered(pre, decay_pre)
    ltp, ltd = _stdp_factors(post, decay_post, decay_e)
    return (a_plus * np.einsum("tbo,tbi->boi", ltp, x)
            - a_minus * np.einsum("tbo,tbi->boi", ltd, pre))


def r_stdp_delta(pre: Array, post: Array, advantage: Array, *, a_plus: float, a_minus: float,
                 decay_pre: float, decay_post: float, decay_e: float) -> Array:
    """``Σ_b A_b · e_b[T]``: the reward-modulated eligibility of a batch, ``(n_post, n_pre)``
    (the learning rate not applied). The advantage is folded into the post factors, so the
    batch costs two matrix products."""
    pre = np.asarray(pre, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    x = _filtered(pre, decay_pre)
    ltp, ltd = _stdp_factors(post, decay_post, decay_e)
    a = np.asarray(advantage, dtype=np.float64)[None, :, None]
    n_post, n_pre = post.shape[-1], pre.shape[-1]
    ltp, ltd = (ltp * a).reshape(-1, n_post), (ltd * a).reshape(-1, n_post)
    return a_plus * ltp.T @ x.reshape(-1, n_pre) - a_minus * ltd.T @ pre.reshape(-1, n_pre)


def reward_step(reward: float, baseline: float, rate: float) -> tuple[float, float]:
    """``(advantage, new baseline)``: ``A = r - b``, ``b' = b + rate · (r - b)`` (a running
    mean of the reward, REINFORCE's variance reduction)."""
    advantage = reward - baseline
    return advantage, baseline + rate * advantage


def normalise_rows(w: Array, row_sum: Array | float) -> Array:
    """Excitatory weights with a fixed total per neuron: ``w <- max(w, 0)``, then each row
    (a neuron's incoming weights) rescaled to sum to ``row_sum``. A row that lost every
    weight is left at zero."""
    w = np.maximum(w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    scale = np.divide(np.reshape(row_sum, (-1, 1)), total, out=np.zeros_like(total),
                      where=total > 0)
    return w * scale


# ---------------------------------------------------------------------------------------------
# R-STDP: network and training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RSTDPConfig:
    """Hyperparameters of :func:`train_r_stdp` (time constants in steps).

    hidden: hidden layer sizes (() = inputs straight to the outputs).
    n_fields: Gaussian receptive fields per feature (0: the features themselves).
    gain: Poisson spike probability per step of an input at intensity 1.
    drive: initial mean input current per step of a neuron; sets each neuron's weight sum.
    inhibition: lateral inhibitory current per output spike (winner-take-all).
    learning_rate: ``η``, relative to the initial mean weight, times ``lr_decay ** (epoch
        - 1)``; ``lr_candidates``, when given, are all tried and the best on the validation
        split kept.
    batch: samples simulated side by side with the same weights; their updates are summed
        (1 = strictly online).
    histogram_chunk: training samples per row of the class histogram (None: one epoch).
    """

    timesteps: int = 40
    hidden: tuple[int, ...] = ()
    n_fields: int = 10
    gain: float = 0.5
    decay: float = 0.9
    threshold: float = 1.0
    drive: float = 0.3
    inhibition: float = 1.0
    a_plus: float = 1.0
    a_minus: float = 1.0
    tau_pre: float = 5.0
    tau_post: float = 5.0
    tau_e: float = 20.0
    learning_rate: float = 0.01
    lr_decay: float = 1.0
    lr_candidates: tuple[float, ...] = ()
    baseline_rate: float = 0.05
    batch: int = 1
    histogram_chunk: int | None = None

    @property
    def neuron(self) -> NeuronSpec:
        return NeuronSpec(decay=self.decay, threshold=self.threshold, reset="zero")

    def stdp(self) -> dict[str, float]:
        """The keyword arguments of :func:`eligibility` / :func:`r_stdp_delta`."""
        return {"a_plus": self.a_plus, "a_minus": self.a_minus,
                "decay_pre": math.exp(-1.0 / self.tau_pre),
                "decay_post": math.exp(-1.0 / self.tau_post),
                "decay_e": math.exp(-1.0 / self.tau_e)}


#: Default epochs of R-STDP per dataset.
R_STDP_EPOCHS = {"iris": 40, "mnist": 3, "mnist-binary": 3}


def r_stdp_config(dataset: str) -> RSTDPConfig:
    """The defaults for a dataset, chosen on validation splits of the training set.

    Iris: 10 Gaussian fields per feature -> 3 outputs, ``A- = 0.5`` (pseudo-test splits of
    the training set: 94 % against 91 % with ``A- = 1``), learning rate chosen per run.
    MNIST (and its 0/1 subset): pixels -> 10 (2) outputs, no hidden layer, batches of 16,
    learning rate chosen per run from 0.001-0.01 (0.0001-0.03 tried: no better). The
    source's 784-400-10 (and 784-50-2) hidden layers collapse to "always class 0"; pass
    ``hidden`` to reproduce that."""
    if dataset == "iris":
        return RSTDPConfig(a_minus=0.5, lr_candidates=(0.01, 0.03, 0.1))
    return RSTDPConfig(n_fields=0, gain=0.3, timesteps=25, batch=16, learning_rate=0.003,
                       lr_candidates=(0.001, 0.003, 0.01),
                       histogram_chunk=5000 if dataset == "mnist" else 1000)


class _RSTDPNet:
    """Feed-forward LIF layers with winner-take-all inhibition on the output layer."""

    def __init__(self, weights: list[Array], cfg: RSTDPConfig) -> None:
        self.weights = weights
        self.cfg = cfg
        self.neuron = cfg.neuron

    def run(self, p: Array, rng: np.random.Generator) -> list[Array]:
        """Spikes of every layer, input first, each ``(T, B, n)`` float64, for input
        intensities ``p`` ``(B, n_in)`` (already ``gain · x``)."""
        steps = self.cfg.timesteps
        spikes = [poisson_spikes(p, steps, rng).astype(np.float64)]
        for layer, w in enumerate(self.weights):
            pre = spikes[-1]
            currents = (pre.reshape(-1, pre.shape[-1]) @ w.T).reshape(steps, len(p), -1)
            out = np.zeros_like(currents)
            v = np.zeros_like(currents[0])
            last = layer == len(self.weights) - 1
            for t in range(steps):
                current = currents[t]
                if last and self.cfg.inhibition and t > 0:  # lateral inhibition, one step late
                    prev = out[t - 1]
                    current = current - self.cfg.inhibition * (prev.sum(1, keepdims=True) - prev)
                s, v = lif_update(v, current, self.neuron)
                out[t] = s
            spikes.append(out)
        return spikes

    def counts(self, p: Array, rng: np.random.Generator, batch: int = 512) -> Array:
        """Output spike counts ``(n, classes)`` (no learning)."""
        out = [self.run(p[i:i + batch], rng)[-1].sum(0) for i in range(0, len(p), batch)]
        return (np.concatenate(out) if out
                else np.zeros((0, self.weights[-1].shape[0])))


def _init_r_stdp(sizes: Sequence[int], p_probe: Array, cfg: RSTDPConfig,
                 rng: np.random.Generator, spike_rng: np.random.Generator
                 ) -> tuple[list[Array], list[float]]:
    """Uniform excitatory weights whose row sums give a mean input current of ``drive`` per
    step, layer by layer on a probe batch (the hidden layers' measured rates set the next
    layer's sums). Returns the weights and each layer's row sum."""
    weights: list[Array] = []
    sums: list[float] = []
    rate = float(p_probe.mean())
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        row_sum = cfg.drive / max(rate, 1e-3)
        weights.append(normalise_rows(rng.random((n_out, n_in)), row_sum))
        sums.append(row_sum)
        if len(weights) < len(sizes) - 1:  # measure this layer's rate for the next one
            probe = _RSTDPNet(weights, replace(cfg, inhibition=0.0)).run(p_probe, spike_rng)
            rate = float(probe[-1].mean())
    return weights, sums


def _r_stdp_run(fit: Dataset, p_fit: Array, p_val: Array | None, cfg: RSTDPConfig,
                epochs: int, seed: int, settings: BaselineSettings, desc: str
                ) -> dict[str, Any]:
    """Train one R-STDP network on ``fit.train_*`` (validation intensities ``p_val``
    against ``fit.test_y``); returns the best-validation weights and the records."""
    init_rng, order_rng, spike_rng, eval_rng = _run_rngs(seed)
    n_classes = fit.n_classes
    sizes = (p_fit.shape[1], *cfg.hidden, n_classes)
    weights, row_sums = _init_r_stdp(sizes, p_fit[:256], cfg, init_rng, eval_rng)
    net = _RSTDPNet(weights, cfg)
    mean_w = [s / n for s, n in zip(row_sums, sizes[:-1], strict=True)]
    stdp = cfg.stdp()
    y = fit.train_y
    n = len(y)
    chunk = cfg.histogram_chunk or n
    baseline = 0.0
    history: list[dict[str, Any]] = []
    chunks: dict[str, list[Any]] = {k: [] for k in (
        "class_histogram", "class_histogram_samples", "reward_mean", "baseline_mean",
        "advantage_mean", "advantage_abs_mean", "silent_fraction", "tie_fraction")}
    acc = _ChunkStats(n_classes)
    best = _Best(weights)
    val_hist: list[list[int]] = []
    totals = _ChunkStats(n_classes)
    bar = _bar(epochs * n, desc, settings)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        ep = _ChunkStats(n_classes)
        lr = cfg.learning_rate * cfg.lr_decay ** (epoch - 1)
        order = order_rng.permutation(n)
        for i in range(0, n, cfg.batch):
            idx = order[i:i + cfg.batch]
            spikes = net.run(p_fit[idx], spike_rng)
            counts = spikes[-1].sum(0)
            pred = counts.argmax(1)
            rewards = np.where(pred == y[idx], 1.0, -1.0)
            advantages = np.empty_like(rewards)
            baselines = np.empty_like(rewards)
            for k, r in enumerate(rewards):  # the baseline runs sample by sample
                baselines[k] = baseline
                advantages[k], baseline = reward_step(float(r), baseline, cfg.baseline_rate)
            for layer in range(len(weights)):
                delta = r_stdp_delta(spikes[layer], spikes[layer + 1], advantages, **stdp)
                weights[layer] = normalise_rows(
                    weights[layer] + lr * mean_w[layer] * delta, row_sums[layer])
            top = counts.max(1, keepdims=True)
            silent = top[:, 0] == 0
            tied = (counts == top).sum(1) > 1  # the priority encoder picks the lowest index
            for stats in (acc, ep, totals):
                stats.add(pred, y[idx], rewards, baselines, advantages, silent, tied)
            if acc.n >= chunk or (epoch == epochs and i + cfg.batch >= n):
                acc.flush_into(chunks)
                acc = _ChunkStats(n_classes)
            bar.update(len(idx))
        row: dict[str, Any] = {"epoch": epoch, **ep.summary()}
        if p_val is not None:
            val_counts = net.counts(p_val, eval_rng)
            val, margin = best.update(val_counts, fit.test_y, cfg.timesteps, weights, epoch)
            val_hist.append(class_histogram(val_counts.argmax(1), n_classes))
            row["val_accuracy"], row["val_margin"] = round(val, 6), round(margin, 6)
            bar.set_postfix(val=f"{val:.2%}", reward=f"{row['mean_reward']:+.2f}")
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
    bar.close()
    if p_val is None:  # nothing to choose on: the last epoch
        best.key, best.epoch, best.weights = (math.nan, math.nan), epochs, weights
    return {"best": best, "history": history, "chunks": chunks, "totals": totals.summary(),
            "val_class_histogram": val_hist, "row_sums": row_sums}


class _ChunkStats:
    """Running sums of the training decisions and rewards over a chunk of samples."""

    def __init__(self, n_classes: int) -> None:
        self.hist = np.zeros(n_classes, dtype=np.int64)
        self.n = 0
        self.correct = 0
        self.sums = np.zeros(6)  # reward, baseline, advantage, |advantage|, silent, tied

    def add(self, pred: Array, y: Array, rewards: Array, baselines: Array, advantages: Array,
            silent: Array, tied: Array) -> None:
        self.hist += np.bincount(pred, minlength=len(self.hist))
        self.n += len(pred)
        self.correct += int((pred == y).sum())
        self.sums += [rewards.sum(), baselines.sum(), advantages.sum(),
                      np.abs(advantages).sum(), silent.sum(), tied.sum()]

    def summary(self) -> dict[str, float]:
        m = self.sums / max(self.n, 1)
        return {"train_accuracy": round(self.correct / max(self.n, 1), 6),
                "mean_reward": round(float(m[0]), 6), "mean_baseline": round(float(m[1]), 6),
                "mean_advantage": round(float(m[2]), 6),
                "mean_abs_advantage": round(float(m[3]), 6),
                "silent_fraction": round(float(m[4]), 6),
                "tie_fraction": round(float(m[5]), 6)}

    def flush_into(self, chunks: dict[str, list[Any]]) -> None:
        if not self.n:
            return
        s = self.summary()
        chunks["class_histogram"].append(self.hist.tolist())
        chunks["class_histogram_samples"].append(self.n)
        chunks["reward_mean"].append(s["mean_reward"])
        chunks["baseline_mean"].append(s["mean_baseline"])
        chunks["advantage_mean"].append(s["mean_advantage"])
        chunks["advantage_abs_mean"].append(s["mean_abs_advantage"])
        chunks["silent_fraction"].append(s["silent_fraction"])
        chunks["tie_fraction"].append(s["tie_fraction"])


class _Best:
    """The weights of the best validation epoch. The key is the accuracy, then the mean
    spike-count margin ``(c_label - max_other c) / T``: a small validation set (Iris: 22
    samples) often scores several epochs equally (all 100 %), and the margin separates a
    network that barely decides from one that decides with room to spare."""

    def __init__(self, weights: list[Array]) -> None:
        self.key = (-1.0, -math.inf)
        self.epoch = 0
        self.weights = [w.copy() for w in weights]

    @property
    def accuracy(self) -> float:
        return self.key[0]

    def update(self, counts: Array, y: Array, steps: int, weights: list[Array], epoch: int
               ) -> tuple[float, float]:
        val, margin = validation_score(counts, y, steps)
        if (val, margin) > self.key:
            self.key, self.epoch = (val, margin), epoch
            self.weights = [w.copy() for w in weights]
        return val, margin


def validation_score(counts: Array, y: Array, steps: int) -> tuple[float, float]:
    """``(accuracy, mean margin)`` of output spike counts ``(n, classes)``: the decisions as
    :func:`spikeforge.spec.decode`, the margin ``(c_label - max_{k != label} c_k) / T``."""
    counts = np.asarray(counts, dtype=np.float64)
    if not len(y):
        return 0.0, 0.0
    rows = np.arange(len(y))
    own = counts[rows, y]
    others = counts.copy()
    others[rows, y] = -np.inf
    margin = float(np.mean(own - others.max(1))) / steps if counts.shape[1] > 1 else 0.0
    return accuracy(counts.argmax(1), y), margin


def _choose(candidates: Sequence[float], run: Callable[[float], dict[str, Any]]
            ) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """Run every learning rate and keep the best on the validation split (:class:`_Best`'s
    key, the first of equals)."""
    results = [(lr, run(lr)) for lr in candidates]
    trials = [{"learning_rate": lr, "val_accuracy": round(r["best"].key[0], 6),
               "val_margin": round(r["best"].key[1], 6), "best_epoch": r["best"].epoch}
              for lr, r in results]
    lr, best = max(results, key=lambda item: item[1]["best"].key)  # the first of equals
    return lr, best, trials


def _fit_chosen(cfg: Any, held_out: bool, run: Callable[[float], dict[str, Any]]
                ) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Train with each of ``cfg.lr_candidates`` (only when a validation split was held out;
    else ``cfg.learning_rate`` alone) and keep the best (:func:`_choose`). Returns the config
    with the chosen rate, that run's result and every candidate's trial record."""
    candidates = cfg.lr_candidates if (cfg.lr_candidates and held_out) else (cfg.learning_rate,)
    lr, result, trials = _choose(candidates, run)
    return replace(cfg, learning_rate=lr), result, trials


def _test_rng(seed: int) -> np.random.Generator:
    """The generator of the test set's Poisson draws: a stream of its own, so that scoring
    does not depend on how many draws training took."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])


def _selection_notes(trials: list[dict[str, Any]], result: dict[str, Any], n_validation: int,
                     held_out: bool) -> list[str]:
    """What was chosen on the validation split: the learning rate and the epoch kept."""
    notes = []
    if len(trials) > 1:
        notes.append("learning rate chosen on the validation split: " + ", ".join(
            f"{t['learning_rate']:g} -> {t['val_accuracy']:.2%}" for t in trials))
    if held_out:
        notes.append(f"weights of epoch {result['best'].epoch} (best of {n_validation} "
                     f"held-out validation samples, {result['best'].accuracy:.2%})")
    return notes


def train_r_stdp(data: Dataset, settings: BaselineSettings, config: RSTDPConfig | None = None
                 ) -> BaselineResult:
    """Method ``r-stdp``: reward-modulated STDP on the contract's LIF neurons (equations in
    the module docstring). ``config`` defaults to :func:`r_stdp_config` for the dataset.

    ``diagnostics``: ``class_histogram`` (predicted classes of the training decisions, one
    row per ``histogram_chunk`` samples; ``class_histogram_samples`` the row sums), the
    per-chunk ``reward_mean`` / ``baseline_mean`` / ``advantage_mean`` /
    ``advantage_abs_mean`` / ``silent_fraction`` (no output spike) / ``tie_fraction`` (the
    top spike count shared by several outputs, silent ones included: the decision falls to
    the lowest of them, class 0 when all tie), their totals in ``reward_summary``,
    ``val_class_histogram`` per epoch, ``test_class_histogram``. With ``lr_candidates``
    these records (and ``history``) are those of the chosen learning rate; ``lr_trials``
    lists every candidate's validation score."""
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _train_r_stdp(data, settings, config)


def _train_r_stdp(data: Dataset, settings: BaselineSettings, config: RSTDPConfig | None
                  ) -> BaselineResult:
    """The body of :func:`train_r_stdp`."""
    start = time.perf_counter()
    data = limited(data, settings)
    cfg = config or r_stdp_config(data.name)
    _check_neuron(cfg.neuron)
    if cfg.batch < 1 or cfg.timesteps < 1:
        raise ConfigError("r-stdp: batch and timesteps must be >= 1")
    epochs = default_epochs(data.name, R_STDP_EPOCHS, settings)
    fit, held_out = validation_split(data)
    p_fit = np.clip(input_intensities(fit.train_x, cfg.n_fields) * cfg.gain, 0.0, 1.0)
    p_val = (np.clip(input_intensities(fit.test_x, cfg.n_fields) * cfg.gain, 0.0, 1.0)
             if held_out else None)

    def run(lr: float) -> dict[str, Any]:
        return _r_stdp_run(fit, p_fit, p_val, replace(cfg, learning_rate=lr), epochs,
                           settings.seed, settings, f"r-stdp on {data.name} (lr {lr:g})")

    cfg, result, trials = _fit_chosen(cfg, held_out, run)
    lr = cfg.learning_rate
    seconds = time.perf_counter() - start

    net = _RSTDPNet(result["best"].weights, cfg)
    test_rng = _test_rng(settings.seed)
    p_test = np.clip(input_intensities(data.test_x, cfg.n_fields) * cfg.gain, 0.0, 1.0)
    predictions = net.counts(p_test, test_rng).argmax(1)
    sizes = "-".join(map(str, (p_fit.shape[1], *cfg.hidden, data.n_classes)))
    notes = [f"R-STDP {sizes}, LIF decay {cfg.decay:g} threshold {cfg.threshold:g} reset zero, "
             f"T = {cfg.timesteps}, Poisson inputs gain {cfg.gain:g}"
             + (f" on {cfg.n_fields} Gaussian fields per feature" if cfg.n_fields else ""),
             f"lr {lr:g} (x initial mean weight), A+ {cfg.a_plus:g} A- {cfg.a_minus:g}, "
             f"tau pre/post/e {cfg.tau_pre:g}/{cfg.tau_post:g}/{cfg.tau_e:g} steps, baseline "
             f"rate {cfg.baseline_rate:g}, WTA inhibition {cfg.inhibition:g}, batch {cfg.batch}",
             "output layer has lateral (winner-take-all) inhibition: not part of the feed-"
             "forward hardware contract"]
    notes += _selection_notes(trials, result, len(fit.test_y), held_out)
    diagnostics: dict[str, Any] = {
        **result["chunks"], "reward_summary": result["totals"],
        "class_histogram_unit": (f"training chunk of {cfg.histogram_chunk} samples"
                                 if cfg.histogram_chunk else "epoch"),
        "class_histogram_of": "decisions on the training samples as they were trained "
                              "(spike counts, ties to the lowest class)",
        "val_class_histogram": result["val_class_histogram"],
        "test_class_histogram": class_histogram(predictions, data.n_classes),
        "best_epoch": result["best"].epoch, "lr_trials": trials,
        "config": asdict(cfg), "n_train": len(fit.train_y),
        "n_validation": len(fit.test_y) if held_out else 0, "n_test": len(data.test_y)}
    return BaselineResult("r-stdp", data.name, accuracy(predictions, data.test_y), epochs,
                          seconds, predictions, result["history"], diagnostics, notes)


# ---------------------------------------------------------------------------------------------
# BP-STDP: the pure update rules
# ---------------------------------------------------------------------------------------------


def bp_stdp_errors(target: Array, counts: Sequence[Array], weights: Sequence[Array]
                   ) -> list[Array]:
    """The error of every layer's neurons for one window, ``(B, n_l)`` each.

    ``target`` ``(B, n_out)``: 1 for the label's neuron; ``counts[l]``: the spike counts in
    the window of layer ``l + 1`` (hidden layers, then the output layer); ``weights[l]`` is
    ``(n_{l+1}, n_l)``::

        ξ = target - [c_out > 0]                 (output layer)
        δ_l = (δ_{l+1} · W_{l+1}) ⊙ [c_l > 0]    (hidden layers, before this window's update)
    """
    errors = [np.asarray(target, dtype=np.float32) - (counts[-1] > 0)]
    for layer in range(len(weights) - 1, 0, -1):
        errors.insert(0, (errors[0] @ weights[layer]) * (counts[layer - 1] > 0))
    return errors


def bp_stdp_deltas(errors: Sequence[Array], pre_counts: Sequence[Array], lr: float
                   ) -> list[Array]:
    """``ΔW_l = μ · mean_b δ_l[b] ⊗ c_{l-1}[b]``, ``(n_l, n_{l-1})`` each: presynaptic spike
    counts of the window (``pre_counts[0]`` the inputs') times the postsynaptic error, the
    mean over the samples of a batch (for one sample, the paper's rule)."""
    return [lr * (err.T @ pre) / len(pre) for err, pre in zip(errors, pre_counts, strict=True)]


# ---------------------------------------------------------------------------------------------
# BP-STDP: network and training
# ---------------------------------------------------------------------------------------------

ENCODINGS = ("poisson", "constant_current")


@dataclass(frozen=True)
class BPSTDPConfig:
    """Hyperparameters of :func:`train_bp_stdp`.

    hidden: hidden layer sizes. timesteps: ``T`` per sample (training and inference);
    window: ``ε``, the steps between updates (``T`` must be a multiple).
    encoding: ``"poisson"`` (the paper's) or ``"constant_current"`` (the contract's held
        current ``x`` every step; its "spike count" in a window is the charge ``ε · x``).
    decay: membrane decay (1 = the paper's IF neurons).
    init_scale: initial weights are normal with a std giving each neuron a per-step input
        current of std ``init_scale · threshold`` on a probe batch of training samples.
    learning_rate: ``μ`` (``lr_candidates`` as in :class:`RSTDPConfig`), times
        ``lr_decay ** (epoch - 1)``.
    batch: samples run side by side on the same weights; each window's update is the mean
        of their updates (1 = the paper's online rule).
    """

    hidden: tuple[int, ...] = (500,)
    timesteps: int = 20
    window: int = 5
    encoding: str = "poisson"
    gain: float = 1.0
    n_fields: int = 0
    decay: float = 1.0
    threshold: float = 1.0
    init_scale: float = 0.5
    learning_rate: float = 0.005
    lr_decay: float = 1.0
    lr_candidates: tuple[float, ...] = ()
    batch: int = 1

    @property
    def neuron(self) -> NeuronSpec:
        return NeuronSpec(decay=self.decay, threshold=self.threshold, reset="zero")


#: Default epochs of BP-STDP per dataset.
BP_STDP_EPOCHS = {"iris": 40, "mnist": 12, "mnist-binary": 3}


def bp_stdp_config(dataset: str) -> BPSTDPConfig:
    """The defaults for a dataset, chosen on validation splits of the training set: Iris
    40 Gaussian fields -> 30 -> 3 with the learning rate chosen per run; MNIST 784-1000-10
    (one of the paper's nets), Poisson input, ``T = 40`` in windows of 5, batches of 32,
    ``μ = 0.06`` decaying by 0.8 per epoch. On 18,000 images, 4 epochs, scored on 5,000
    other training images: T = 20 95.9-96.1 %, T = 40 96.7 %, T = 80 96.6 %, windows of 2
    96.3 %, of 10 95.7 %, 784-2000-10 96.1 %, 784-500-150-10 95.1 %, held-current input
    95.8 %, decay 0.95 96.5 % (the paper's IF neurons, decay 1, kept)."""
    if dataset == "iris":
        return BPSTDPConfig(hidden=(30,), n_fields=10, learning_rate=0.01,
                            lr_candidates=(0.003, 0.01, 0.03))
    return BPSTDPConfig(hidden=(1000,), timesteps=40, batch=32, learning_rate=0.06,
                        lr_decay=0.8)


class _BPNet:
    """Feed-forward LIF layers run window by window, weights fixed within a window."""

    def __init__(self, weights: list[Array], cfg: BPSTDPConfig) -> None:
        self.weights = weights
        self.cfg = cfg
        self.neuron = cfg.neuron

    def window(self, x: Array, v: list[Array], rng: np.random.Generator
               ) -> tuple[list[Array], list[Array]]:
        """Run one window of ``ε`` steps from membranes ``v`` (updated in place) for inputs
        ``x`` ``(B, n_in)``; returns the spike counts of every layer in the window (inputs
        first) and the new membranes."""
        eps, batch = self.cfg.window, len(x)
        if self.cfg.encoding == "poisson":
            pre = poisson_spikes(np.clip(x * self.cfg.gain, 0.0, 1.0), eps, rng)
            counts = [pre.sum(0)]
        else:  # a held current: the same input every step, the charge eps·x in a window
            pre = None
            counts = [x * eps]
        for layer, w in enumerate(self.weights):
            if pre is None:
                currents = np.broadcast_to(x @ w.T, (eps, batch, w.shape[0]))
            else:  # the weights are fixed within the window: all its steps in one product
                currents = (pre.reshape(-1, pre.shape[-1]) @ w.T).reshape(eps, batch, -1)
            out = np.empty(currents.shape, dtype=np.float32)
            state = v[layer]
            for t in range(eps):
                s, state = lif_update(state, currents[t], self.neuron)
                out[t] = s
            v[layer] = state
            counts.append(out.sum(0))
            pre = out
        return counts, v

    def fresh_state(self, batch: int) -> list[Array]:
        return [np.zeros((batch, w.shape[0]), dtype=np.float32) for w in self.weights]

    def counts(self, x: Array, rng: np.random.Generator, batch: int = 1000) -> Array:
        """Output spike counts ``(n, classes)`` over ``T`` steps (no learning)."""
        out = []
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            v = self.fresh_state(len(xb))
            total = np.zeros((len(xb), self.weights[-1].shape[0]), dtype=np.float32)
            for _ in range(self.cfg.timesteps // self.cfg.window):
                counts, v = self.window(xb, v, rng)
                total += counts[-1]
            out.append(total)
        return np.concatenate(out) if out else np.zeros((0, self.weights[-1].shape[0]))


def _init_bp_stdp(sizes: Sequence[int], x_probe: Array, cfg: BPSTDPConfig,
                  rng: np.random.Generator, spike_rng: np.random.Generator) -> list[Array]:
    """Normal weights, layer by layer: std ``init_scale · threshold / sqrt(Σ_j r_j)`` with
    ``r_j`` the measured mean per-step activity of input ``j`` on a probe batch, so the
    per-step current of every neuron starts with std ``init_scale · threshold``."""
    weights: list[Array] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        net = _BPNet(weights, cfg)
        counts, _ = net.window(x_probe, net.fresh_state(len(x_probe)), spike_rng)
        rates = counts[-1].mean(0) / cfg.window  # activity of this layer's inputs
        std = cfg.init_scale * cfg.threshold / math.sqrt(max(float(rates.sum()), 1.0))
        weights.append((rng.standard_normal((n_out, n_in)) * std).astype(np.float32))
    return weights


def _bp_stdp_run(fit: Dataset, x_fit: Array, x_val: Array | None, cfg: BPSTDPConfig,
                 epochs: int, seed: int, settings: BaselineSettings, desc: str
                 ) -> dict[str, Any]:
    init_rng, order_rng, spike_rng, eval_rng = _run_rngs(seed)
    n_classes = fit.n_classes
    sizes = (x_fit.shape[1], *cfg.hidden, n_classes)
    weights = _init_bp_stdp(sizes, x_fit[:256], cfg, init_rng, eval_rng)
    net = _BPNet(weights, cfg)
    y = fit.train_y
    n = len(y)
    eye = np.eye(n_classes, dtype=np.float32)
    n_windows = cfg.timesteps // cfg.window
    best = _Best(weights)
    history: list[dict[str, Any]] = []
    bar = _bar(epochs * n, desc, settings)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        lr = cfg.learning_rate * cfg.lr_decay ** (epoch - 1)
        order = order_rng.permutation(n)
        err_sum = 0.0
        for i in range(0, n, cfg.batch):
            idx = order[i:i + cfg.batch]
            xb, target = x_fit[idx], eye[y[idx]]
            v = net.fresh_state(len(idx))
            for _ in range(n_windows):
                counts, v = net.window(xb, v, spike_rng)
                errors = bp_stdp_errors(target, counts[1:], weights)
                for layer, dw in enumerate(bp_stdp_deltas(errors, counts[:-1], lr)):
                    weights[layer] += dw
                err_sum += float(np.abs(errors[-1]).sum())
            bar.update(len(idx))
        # no training accuracy from these passes: the teacher corrects the output within the
        # sample (after every window), so the sample's spike counts are nearly always right
        row: dict[str, Any] = {"epoch": epoch,
                               "mean_abs_output_error": round(err_sum / (n * n_windows), 6),
                               "learning_rate": lr}
        if x_val is None:  # no validation split: score the training set without learning
            row["train_accuracy"] = round(accuracy(net.counts(x_fit, eval_rng).argmax(1), y), 6)
        else:
            val, margin = best.update(net.counts(x_val, eval_rng), fit.test_y, cfg.timesteps,
                                      weights, epoch)
            row["val_accuracy"], row["val_margin"] = round(val, 6), round(margin, 6)
            bar.set_postfix(val=f"{val:.2%}")
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
    bar.close()
    if x_val is None:  # nothing to choose on: the last epoch
        best.key, best.epoch, best.weights = (math.nan, math.nan), epochs, weights
    return {"best": best, "history": history}


def train_bp_stdp(data: Dataset, settings: BaselineSettings, config: BPSTDPConfig | None = None
                  ) -> BaselineResult:
    """Method ``bp-stdp``: Tavanaei & Maida's BP-STDP on the contract's LIF neurons
    (equations in the module docstring). ``config`` defaults to :func:`bp_stdp_config`."""
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _train_bp_stdp(data, settings, config)


def _train_bp_stdp(data: Dataset, settings: BaselineSettings, config: BPSTDPConfig | None
                   ) -> BaselineResult:
    """The body of :func:`train_bp_stdp`."""
    start = time.perf_counter()
    data = limited(data, settings)
    cfg = config or bp_stdp_config(data.name)
    _check_neuron(cfg.neuron)
    if cfg.encoding not in ENCODINGS:
        raise ConfigError(f"bp-stdp: encoding = {cfg.encoding!r}: choose one of "
                          f"{', '.join(ENCODINGS)}")
    if cfg.window < 1 or cfg.timesteps % cfg.window or cfg.batch < 1:
        raise ConfigError(f"bp-stdp: timesteps ({cfg.timesteps}) must be a multiple of the "
                          f"window ({cfg.window} >= 1), batch >= 1")
    epochs = default_epochs(data.name, BP_STDP_EPOCHS, settings)
    fit, held_out = validation_split(data)
    x_fit = input_intensities(fit.train_x, cfg.n_fields)
    x_val = input_intensities(fit.test_x, cfg.n_fields) if held_out else None

    def run(lr: float) -> dict[str, Any]:
        return _bp_stdp_run(fit, x_fit, x_val, replace(cfg, learning_rate=lr), epochs,
                            settings.seed, settings, f"bp-stdp on {data.name} (lr {lr:g})")

    cfg, result, trials = _fit_chosen(cfg, held_out, run)
    lr = cfg.learning_rate
    seconds = time.perf_counter() - start

    net = _BPNet(result["best"].weights, cfg)
    test_rng = _test_rng(settings.seed)
    predictions = net.counts(input_intensities(data.test_x, cfg.n_fields), test_rng).argmax(1)
    sizes = "-".join(map(str, (x_fit.shape[1], *cfg.hidden, data.n_classes)))
    notes = [f"BP-STDP {sizes}, LIF decay {cfg.decay:g} (1 = the paper's IF) threshold "
             f"{cfg.threshold:g} reset zero, T = {cfg.timesteps} steps in windows of "
             f"{cfg.window}, {cfg.encoding} input"
             + (f" gain {cfg.gain:g}" if cfg.encoding == "poisson" else "")
             + (f" on {cfg.n_fields} Gaussian fields per feature" if cfg.n_fields else ""),
             f"lr {lr:g} x {cfg.lr_decay:g}^(epoch-1), batch {cfg.batch} (per-window updates "
             f"averaged over the batch), init scale {cfg.init_scale:g}"]
    notes += _selection_notes(trials, result, len(fit.test_y), held_out)
    diagnostics = {"best_epoch": result["best"].epoch, "lr_trials": trials,
                   "config": asdict(cfg), "n_train": len(fit.train_y),
                   "n_validation": len(fit.test_y) if held_out else 0,
                   "n_test": len(data.test_y),
                   "test_class_histogram": class_histogram(predictions, data.n_classes)}
    return BaselineResult("bp-stdp", data.name, accuracy(predictions, data.test_y), epochs,
                          seconds, predictions, result["history"], diagnostics, notes)
