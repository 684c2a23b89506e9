"""Numba kernels for the CPU: the LIF time loop (training and the twin) in one call per
layer and pass instead of several tensor operations per time step, the training readout
(the last hidden layer and the output layer run per sample, forward and backward:
:func:`lif_readout_forward`, :func:`lif_readout_backward`), and the twin's spike-driven
synaptic currents.

Their LIF steps compute exactly what the torch loop in :mod:`spikeforge.neurons.lif`
computes (the contract of :mod:`spikeforge.spec`, same float operations in the same order,
no fused multiply-add), and the tests hold them to it. The one sum whose order is free is
the readout's synaptic current (:func:`_synaptic_sums`), as it is in BLAS. The neurons are
independent, so each thread takes a block of neurons (the readout kernels: a sample) and
walks it through all ``T`` steps; inside a block the inner loop runs over contiguous
memory and vectorises. Each kernel touches every ``(T, M)`` array once: on a memory-bound
CPU the passes over memory are what costs.

Arrays are 2-D ``(T, M)`` with ``M = batch · neurons``; a current held at every step is
``(1, M)`` with ``constant=True``, and then the backward kernel returns its gradient
summed over time, ``(1, M)``.

Surrogate slopes are evaluated inside the forward kernel for the surrogates listed in
:data:`SURROGATE_KINDS` (their formulas are pinned to the torch ones by the tests); for
any other surrogate the kernel stores the membrane ``U - threshold`` instead and the
caller applies the surrogate's torch derivative.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from spikeforge.surrogates import FastSigmoid, SuperSpike, Surrogate

BLOCK = 1024  # neurons per work item: large enough to vectorise, small enough to balance

#: surrogate class -> (kind code, name of its shape parameter)
SURROGATE_KINDS: dict[type, tuple[int, str]] = {FastSigmoid: (0, "slope"), SuperSpike: (0, "beta")}
STORE_MEMBRANE = -1
NO_SLOPE = -2  # inference, or a layer whose backward pass recomputes its membrane


def surrogate_code(surrogate: Surrogate) -> tuple[int, float]:
    """``(kind, parameter)`` for the kernel, or ``(STORE_MEMBRANE, 0.0)``."""
    entry = SURROGATE_KINDS.get(type(surrogate))
    if entry is None:
        return STORE_MEMBRANE, 0.0
    return entry[0], float(getattr(surrogate, entry[1]))


@njit(cache=True, inline="always")
def _block_bounds(block, m_total):  # pragma: no cover - compiled
    """Neurons ``[lo, hi)`` of work item ``block``."""
    lo = block * BLOCK
    return lo, min(m_total, lo + BLOCK)


@njit(cache=True, inline="always")
def _slopes(kind, u, threshold, p, one, out):  # pragma: no cover - compiled
    """``out[k] = σ'(u[k] - θ)`` for a block; the branch on ``kind`` stays outside the
    loops so that each loop vectorises."""
    if kind == 0:  # fast sigmoid: 1 / (1 + p|x|)^2
        for k in range(u.shape[0]):
            d = one + p * abs(u[k] - threshold)
            out[k] = one / (d * d)
    else:  # STORE_MEMBRANE: the caller evaluates the surrogate
        for k in range(u.shape[0]):
            out[k] = u[k] - threshold


@njit(parallel=True, cache=True, nogil=True)
def lif_forward(current, constant, decay, threshold, reset_zero, refractory, kind, param,
                spikes, slope, active):  # pragma: no cover - compiled
    """Fill ``spikes`` (0/1), ``slope`` (σ'(U - θ)·active, or ``U - θ``; untouched for
    ``kind = NO_SLOPE``) and, with a refractory period, ``active`` (1 where the neuron
    listened) for all steps."""
    steps, m_total = spikes.shape
    zero = spikes.dtype.type(0.0)
    one = spikes.dtype.type(1.0)
    for block in prange((m_total + BLOCK - 1) // BLOCK):
        lo, hi = _block_bounds(block, m_total)
        v = np.zeros(hi - lo, spikes.dtype)
        u = np.empty(hi - lo, spikes.dtype)
        refractory_left = np.zeros(hi - lo, np.int64)
        for t in range(steps):
            row = 0 if constant else t
            i = current[row, lo:hi]
            s = spikes[t, lo:hi]
            if refractory == 0:  # branch-free, vectorised
                for k in range(hi - lo):
                    uk = decay * v[k] + i[k]
                    fired = uk >= threshold
                    u[k] = uk
                    s[k] = one if fired else zero
                    reset = zero if reset_zero else uk - threshold
                    v[k] = reset if fired else uk
                if kind != NO_SLOPE:
                    _slopes(kind, u, threshold, param, one, slope[t, lo:hi])
                continue
            a = active[t, lo:hi]
            for k in range(hi - lo):
                listening = refractory_left[k] <= 0
                uk = decay * v[k] + (i[k] if listening else zero)
                fired = listening and uk >= threshold
                u[k] = uk
                s[k] = one if fired else zero
                a[k] = one if listening else zero
                if fired:
                    refractory_left[k] = refractory
                    v[k] = zero if reset_zero else uk - threshold
                else:
                    refractory_left[k] = max(refractory_left[k] - 1, 0)
                    v[k] = uk
            if kind != NO_SLOPE:
                _slopes(kind, u, threshold, param, one, slope[t, lo:hi])
            if kind >= 0:  # a neuron that was not listening has no gradient
                for k in range(hi - lo):
                    slope[t, lo + k] *= a[k]


@njit(parallel=True, cache=True, nogil=True)
def lif_backward(grad_spikes, slope, spikes, active, decay, reset_zero, refractory, constant,
                 grad_current):  # pragma: no cover - compiled
    """Backwards in time::

        g[t] = dL/ds[t] · slope[t] + decay · keep[t] · g[t+1],   keep = 1 - s  or  1
        dL/dI[t] = g[t] · active[t]      (summed over t when ``constant``)
    """
    steps, m_total = grad_spikes.shape
    one = grad_spikes.dtype.type(1.0)
    for block in prange((m_total + BLOCK - 1) // BLOCK):
        lo, hi = _block_bounds(block, m_total)
        g = np.zeros(hi - lo, grad_spikes.dtype)
        total = np.zeros(hi - lo, grad_spikes.dtype)
        for t in range(steps - 1, -1, -1):
            gs = grad_spikes[t, lo:hi]
            sl = slope[t, lo:hi]
            sp = spikes[t, lo:hi]
            if t == steps - 1:
                for k in range(hi - lo):
                    g[k] = gs[k] * sl[k]
            elif reset_zero:
                for k in range(hi - lo):
                    g[k] = gs[k] * sl[k] + decay * (one - sp[k]) * g[k]
            else:
                for k in range(hi - lo):
                    g[k] = gs[k] * sl[k] + decay * one * g[k]
            if refractory > 0:
                a = active[t, lo:hi]
                for k in range(hi - lo):
                    gi = g[k] * a[k]
                    if constant:
                        total[k] += gi
                    else:
                        grad_current[t, lo + k] = gi
            elif constant:
                for k in range(hi - lo):
                    total[k] += g[k]
            else:
                grad_current[t, lo:hi] = g
        if constant:
            grad_current[0, lo:hi] = total


#: time steps per pass of the readout kernels over a weight row or gradient row: each
#: row is loaded once for four steps instead of once per step (the loads, not the
#: arithmetic, bound these small products)
STEPS_PER_PASS = 4


@njit(cache=True, fastmath={"reassoc"})
def _synaptic_sums(s, weight, out):  # pragma: no cover - compiled
    """``out[t, k] = Σ_j weight[k, j] · s[t, j]`` for ``t < out.shape[0]`` (``s`` has at
    least :data:`STEPS_PER_PASS` - 1 more rows, zero). ``reassoc`` lets the compiler add
    the terms in whatever order vectorises; the result differs from BLAS's by float
    rounding only."""
    steps = out.shape[0]
    for t in range(0, steps, STEPS_PER_PASS):
        s0, s1, s2, s3 = s[t], s[t + 1], s[t + 2], s[t + 3]
        for k in range(weight.shape[0]):
            w = weight[k]
            a0 = s.dtype.type(0.0)
            a1, a2, a3 = a0, a0, a0
            for j in range(w.shape[0]):
                a0 += w[j] * s0[j]
                a1 += w[j] * s1[j]
                a2 += w[j] * s2[j]
                a3 += w[j] * s3[j]
            for dt, total in enumerate((a0, a1, a2, a3)):
                if t + dt < steps:
                    out[t + dt, k] = total


@njit(cache=True, inline="always")
def _hidden_sample(current, constant, b, decay, threshold, reset_zero, scale, scaled, v, u,
                   s):  # pragma: no cover - compiled
    """Sample ``b`` of the readout's hidden layer through all steps (no refractory
    period): the membrane ``U[t]`` into ``u`` and the spikes times the output layer's input
    scale, ``s[t] ⊙ m``, into ``s`` (rows ``t < T``), with :func:`lif_forward`'s
    operations, so the same membrane and spikes as the layer-by-layer kernel."""
    zero = v.dtype.type(0.0)
    one = v.dtype.type(1.0)
    v[:] = zero
    for t in range(u.shape[0]):
        i = current[0 if constant else t, b]
        ut = u[t]
        st = s[t]
        for j in range(v.shape[0]):
            uk = decay * v[j] + i[j]
            ut[j] = uk
            fired = uk >= threshold
            st[j] = one if fired else zero
            reset = zero if reset_zero else uk - threshold
            v[j] = reset if fired else uk
        if scaled:
            for j in range(v.shape[0]):
                st[j] *= scale[b, j]


@njit(parallel=True, cache=True, nogil=True)
def lif_readout_forward(current, constant, weight_out, bias_out, scale, scaled, decay,
                        threshold, reset_zero, membrane_out, counts):  # pragma: no cover
    """The last hidden LIF layer and the output LIF layer after it
    (:func:`spikeforge.neurons.lif.lif_readout`), one sample at a time, reset to zero or
    by subtraction, no refractory period::

        U[t]     = decay · V[t-1] + I[t],         s[t] = U[t] >= θ,  then the reset
        I_out[t] = W_out · (s[t] ⊙ m) + b_out     (m: the output layer's input scale,
                                                    1 unless ``scaled``)
        U_out[t] = decay · V_out[t-1] + I_out[t], s_out[t] = U_out[t] >= θ, the reset

    The LIF steps are :func:`lif_forward`'s operations; the synaptic sums are
    :func:`_synaptic_sums`. Only ``U_out`` (``membrane_out``, ``(T, B, K)``: the output
    layer's slopes and resets for the backward pass) and the spike counts ``(B, K)`` are
    written; the hidden layer's spikes never leave the sample's loop.
    ``current`` ``(1 or T, B, H)``; ``weight_out`` ``(K, H)``; ``bias_out`` ``(K,)``;
    ``scale`` ``(B, H)``.
    """
    steps, batch, k_out = membrane_out.shape
    n = weight_out.shape[1]
    zero = current.dtype.type(0.0)
    one = current.dtype.type(1.0)
    for b in prange(batch):
        v = np.empty(n, current.dtype)
        u = np.empty((steps, n), current.dtype)
        s = np.zeros((steps + STEPS_PER_PASS - 1, n), current.dtype)  # rows past T stay 0
        _hidden_sample(current, constant, b, decay, threshold, reset_zero, scale, scaled, v,
                       u, s)
        current_out = np.empty((steps, k_out), current.dtype)
        _synaptic_sums(s, weight_out, current_out)
        v_out = np.zeros(k_out, current.dtype)
        count = np.zeros(k_out, current.dtype)
        for t in range(steps):
            for k in range(k_out):
                uk = decay * v_out[k] + (current_out[t, k] + bias_out[k])
                fired = uk >= threshold
                membrane_out[t, b, k] = uk
                count[k] += one if fired else zero
                reset = zero if reset_zero else uk - threshold
                v_out[k] = reset if fired else uk
        counts[b, :] = count


@njit(parallel=True, cache=True, nogil=True)
def lif_readout_backward(current, constant, grad_counts, membrane_out, weight_out, scale,
                         scaled, decay, threshold, reset_zero, param, grad_current,
                         grad_weight_parts, grad_bias_parts):  # pragma: no cover - compiled
    """The backward pass of :func:`lif_readout_forward`, one sample at a time, from the
    hidden layer's input current and the output layer's membrane alone (fast-sigmoid
    slopes ``σ'(x) = 1 / (1 + p|x|)²``):

    1. re-run the hidden layer's forward time loop (the same operations as
       :func:`lif_forward`, so the same membrane ``U[t]`` and spikes ``s[t]``), keeping
       ``U`` and ``s ⊙ m`` for this sample;
    2. the output layer's recurrence backwards in time (:func:`lif_backward`'s, with
       ``dL/ds_out[t] = dL/dcounts`` at every step)::

           G[t] = dL/dI_out[t] = dL/dcounts · σ'(U_out[t] - θ) + decay · keep_out[t] · G[t+1]

    3. the hidden layer's, backwards in time::

           dL/ds[t]   = (G[t] · W_out) ⊙ m
           g[t]       = dL/ds[t] · σ'(U[t] - θ) + decay · keep[t] · g[t+1]
           dL/dI[t]   = g[t]                  (summed over t for a held current)

    4. ``dL/dW_out += Σ_t G[t]^T · (s[t] ⊙ m)`` and ``dL/db_out += Σ_t G[t]``.

    ``keep = 1 - s`` for reset "zero" and 1 for "subtract"; ``m`` is the output layer's
    input scale (1 unless ``scaled``). Nothing of size ``T x batch x neurons`` is read but
    the current, and ``dL/ds`` is never stored. The products over the output neurons
    and over time take four terms per pass over a row (loads bound them, not arithmetic).
    ``grad_counts`` ``(B, K)``; ``grad_current`` shaped like ``current``;
    ``grad_weight_parts`` ``(P, K, H)`` and ``grad_bias_parts`` ``(P, K)``: the partial
    sums over each of ``P`` contiguous groups of samples (the caller adds them in order, so
    the sum does not depend on the threads).
    """
    steps, batch, k_out = membrane_out.shape
    n = weight_out.shape[1]
    n_parts = grad_weight_parts.shape[0]
    per = (batch + n_parts - 1) // n_parts
    k4 = k_out - k_out % 4
    zero = current.dtype.type(0.0)
    one = current.dtype.type(1.0)
    for part in prange(n_parts):
        grad_w = grad_weight_parts[part]
        grad_w[:, :] = zero
        grad_b = grad_bias_parts[part]
        grad_b[:] = zero
        u = np.empty((steps, n), current.dtype)
        s = np.zeros((steps + STEPS_PER_PASS - 1, n), current.dtype)  # rows past T stay 0
        grad_out = np.zeros((steps + STEPS_PER_PASS - 1, k_out), current.dtype)
        v = np.empty(n, current.dtype)
        g = np.empty(n, current.dtype)
        grad_s = np.empty(n, current.dtype)
        total = np.empty(n, current.dtype)
        for b in range(part * per, min(batch, part * per + per)):
            # 1. the hidden layer again
            _hidden_sample(current, constant, b, decay, threshold, reset_zero, scale, scaled,
                           v, u, s)
            for t in range(steps - 1, -1, -1):  # 2. the output layer's G[t]
                u_out = membrane_out[t, b]
                for k in range(k_out):
                    d = one + param * abs(u_out[k] - threshold)  # the fast sigmoid of _slopes
                    keep = zero if (reset_zero and u_out[k] >= threshold) else one
                    grad_out[t, k] = (grad_counts[b, k] * (one / (d * d))
                                      + decay * keep * grad_out[t + 1, k])
                    grad_b[k] += grad_out[t, k]
            g[:] = zero
            total[:] = zero
            for t in range(steps - 1, -1, -1):  # 3. the hidden layer's g[t]
                gt = grad_out[t]
                grad_s[:] = zero
                for k in range(0, k4, 4):
                    g0, g1, g2, g3 = gt[k], gt[k + 1], gt[k + 2], gt[k + 3]
                    w0, w1, w2, w3 = (weight_out[k], weight_out[k + 1], weight_out[k + 2],
                                      weight_out[k + 3])
                    for j in range(n):
                        grad_s[j] += (g0 * w0[j] + g1 * w1[j]) + (g2 * w2[j] + g3 * w3[j])
                for k in range(k4, k_out):
                    gk, wk = gt[k], weight_out[k]
                    for j in range(n):
                        grad_s[j] += gk * wk[j]
                if scaled:
                    for j in range(n):
                        grad_s[j] *= scale[b, j]
                ut = u[t]
                for j in range(n):
                    d = one + param * abs(ut[j] - threshold)
                    keep = zero if (reset_zero and ut[j] >= threshold) else one
                    g[j] = grad_s[j] * (one / (d * d)) + decay * keep * g[j]
                if constant:
                    for j in range(n):
                        total[j] += g[j]
                else:
                    grad_current[t, b, :] = g
            if constant:
                grad_current[0, b, :] = total
            for t in range(0, steps, STEPS_PER_PASS):  # 4. dL/dW_out
                s0, s1, s2, s3 = s[t], s[t + 1], s[t + 2], s[t + 3]
                for k in range(k_out):
                    g0, g1 = grad_out[t, k], grad_out[t + 1, k]
                    g2, g3 = grad_out[t + 2, k], grad_out[t + 3, k]
                    row = grad_w[k]
                    for j in range(n):
                        row[j] += (g0 * s0[j] + g1 * s1[j]) + (g2 * s2[j] + g3 * s3[j])


@njit(cache=True, inline="always")
def _fire_and_reset(uk, listening, threshold, reset_zero, refractory, k, v, refractory_left,
                    s, n):  # pragma: no cover - compiled
    """Neuron ``k`` of the twin's kernels after its membrane update ``uk``: spike if it
    listens and reaches the threshold, count it, run the refractory countdown, reset (to
    zero or by subtraction) or keep the membrane."""
    fired = listening and uk >= threshold
    s[k] = fired
    n[k] += fired
    if refractory > 0:
        if fired:
            refractory_left[k] = refractory
        elif refractory_left[k] > 0:
            refractory_left[k] -= 1
    if fired:
        v[k] = 0 if reset_zero else uk - threshold
    else:
        v[k] = uk


def membrane_step(v, i, decay, decay_num, decay_shift):
    """The twin's membrane update before the spike check, for both arithmetics::

        U = decay · V + I                              (float membranes: analog)
        U = ((V · decay_num) >> decay_shift) + int(I)  (int64 membranes: the digital target)

    ``>>`` is the arithmetic shift, ``floor(V · decay_num / 2^decay_shift)`` for negative
    ``V`` too, as the hardware computes it; the digital current holds integer values in any
    numeric dtype. In the kernels the membrane's type picks the formula at compile time
    (the overload below), so one kernel serves both targets."""
    if isinstance(v, (int, np.integer)):
        return ((v * decay_num) >> decay_shift) + np.int64(i)
    return decay * v + i


@overload(membrane_step, inline="always")
def _membrane_step_compiled(v, i, decay, decay_num, decay_shift):  # pragma: no cover
    if isinstance(v, types.Integer):
        def integer(v, i, decay, decay_num, decay_shift):
            return ((v * decay_num) >> decay_shift) + np.int64(i)
        return integer

    def floating(v, i, decay, decay_num, decay_shift):
        return decay * v + i
    return floating


@njit(parallel=True, cache=True, nogil=True)
def lif_spikes(current, constant, membrane_like, decay, decay_num, decay_shift, threshold,
               reset_zero, refractory, spikes, counts):  # pragma: no cover - compiled
    """Inference only (the twin): fill ``spikes`` (bool ``(T, M)``) and each neuron's spike
    count ``counts`` (``(M,)``). Membranes take ``membrane_like``'s dtype: float (the analog
    target: ``decay`` and a float ``threshold``) or int64 (the digital target:
    ``decay_num``, ``decay_shift`` and an integer ``threshold``); :func:`membrane_step`
    has both updates."""
    steps, m_total = spikes.shape
    zero = current.dtype.type(0.0)
    for block in prange((m_total + BLOCK - 1) // BLOCK):
        lo, hi = _block_bounds(block, m_total)
        v = np.zeros(hi - lo, membrane_like.dtype)
        refractory_left = np.zeros(hi - lo, np.int64)
        n = counts[lo:hi]
        n[:] = 0
        for t in range(steps):
            i = current[0 if constant else t, lo:hi]
            s = spikes[t, lo:hi]
            for k in range(hi - lo):
                listening = refractory_left[k] <= 0
                uk = membrane_step(v[k], i[k] if listening else zero, decay, decay_num,
                                   decay_shift)
                _fire_and_reset(uk, listening, threshold, reset_zero, refractory, k, v,
                                refractory_left, s, n)


@njit(parallel=True, cache=True, nogil=True)
def lif_readout_counts(current, constant, steps, membrane_like, decay, decay_num,
                       decay_shift, threshold_hidden, threshold_out, reset_zero, refractory,
                       weight, bias, hidden_counts,
                       counts):  # pragma: no cover - compiled
    """The twin's last hidden layer and output layer, one sample at a time: the hidden
    layer through all ``T`` steps as :func:`lif_spikes` runs it, then the output layer's
    current ``W · s[t] + b`` for every step (:func:`_synaptic_sums`, in ``weight``'s dtype),
    then the output layer as :func:`lif_spikes` runs it. No spike train is written, only
    the spike counts of both layers (``hidden_counts`` ``(B, H)``, ``counts`` ``(B, K)``).

    The sums run in the order that vectorises: exact for the digital target (integers in
    float32 below 2^24, where :func:`spikeforge.hardware.simulate.exact_in_float32` says
    so, else in float64), float64 rounding for the analog target, as BLAS's would be.
    ``current`` ``(1 or T, B, H)``; ``weight`` ``(K, H)``; ``bias`` ``(K,)``.
    """
    batch, n = current.shape[1], current.shape[2]
    k_out = weight.shape[0]
    zero = current.dtype.type(0.0)
    zero_out = weight.dtype.type(0.0)
    one_out = weight.dtype.type(1.0)
    zero_v = membrane_like.dtype.type(0)
    for b in prange(batch):
        v = np.zeros(n, membrane_like.dtype)
        refractory_left = np.zeros(n, np.int64)
        fired = np.empty(n, np.bool_)
        s = np.zeros((steps + STEPS_PER_PASS - 1, n), weight.dtype)  # rows past T stay 0
        n_hidden = hidden_counts[b]
        n_hidden[:] = 0
        for t in range(steps):
            i = current[0 if constant else t, b]
            st = s[t]
            if refractory == 0:  # _fire_and_reset without the countdown, branch-free
                for k in range(n):
                    uk = membrane_step(v[k], i[k], decay, decay_num, decay_shift)
                    spiked = uk >= threshold_hidden
                    st[k] = one_out if spiked else zero_out
                    n_hidden[k] += spiked
                    reset = zero_v if reset_zero else uk - threshold_hidden
                    v[k] = reset if spiked else uk
                continue
            for k in range(n):
                listening = refractory_left[k] <= 0
                uk = membrane_step(v[k], i[k] if listening else zero, decay, decay_num,
                                   decay_shift)
                _fire_and_reset(uk, listening, threshold_hidden, reset_zero, refractory, k,
                                v, refractory_left, fired, n_hidden)
                st[k] = one_out if fired[k] else zero_out
        current_out = np.empty((steps, k_out), weight.dtype)
        _synaptic_sums(s, weight, current_out)
        v_out = np.zeros(k_out, membrane_like.dtype)
        refractory_out = np.zeros(k_out, np.int64)
        fired_out = np.empty(k_out, np.bool_)
        n_out = counts[b]
        n_out[:] = 0
        for t in range(steps):
            for k in range(k_out):
                listening = refractory_out[k] <= 0
                i_k = current_out[t, k] + bias[k]
                uk = membrane_step(v_out[k], i_k if listening else zero_out, decay,
                                   decay_num, decay_shift)
                _fire_and_reset(uk, listening, threshold_out, reset_zero, refractory, k,
                                v_out, refractory_out, fired_out, n_out)


@njit(parallel=True, cache=True, nogil=True)
def integer_codes(x, input_max, out):  # pragma: no cover - compiled
    """The digital target's input codes ``round(x · input_max)`` (half to even, as
    ``np.rint``; the product in float64) written into ``out`` (float32: exact below 2^24)
    in one parallel pass."""
    rows, cols = x.shape
    for r in prange(rows):
        for c in range(cols):
            out[r, c] = np.rint(np.float64(x[r, c]) * input_max)


@njit(parallel=True, cache=True, nogil=True)
def spike_currents(spikes, weights_t, bias, has_bias, out):  # pragma: no cover - compiled
    """Event-driven synapses of ``K`` networks (boards) at once: ``out[r, b] = bias[b] +
    the sum of weights_t[b, j] over the inputs j of board b that spiked in row r``.

    ``spikes`` bool ``(R, K, in)``; ``weights_t`` each board's ``W.T`` ``(K, in, out)``;
    ``bias`` ``(K, out)``; ``out`` ``(R, K, out)``; a single network is ``K = 1``. Only
    spikes cost work, as on the hardware: each row first lists its spiking inputs
    (branch-free), then adds their weight rows, in input order, so a board's sums do not
    depend on the others."""
    rows, n_boards, n_in = spikes.shape
    n_out = weights_t.shape[2]
    for block in prange((rows + 63) // 64):
        fired = np.empty(n_in, np.int64)
        for r in range(block * 64, min(rows, block * 64 + 64)):
            for b in range(n_boards):
                count = 0
                for j in range(n_in):
                    fired[count] = j
                    count += spikes[r, b, j]
                acc = out[r, b]
                for k in range(n_out):
                    acc[k] = bias[b, k] if has_bias else 0.0
                w_board = weights_t[b]
                for c in range(count):
                    w = w_board[fired[c]]
                    for k in range(n_out):
                        acc[k] += w[k]


@njit(cache=True, inline="always")
def _board_step(v, i, decay, threshold, residual, v_low, v_high):  # pragma: no cover
    """One clock of a drawn board's neuron (its own constants, the op-amp's swing and the
    incomplete reset): ``(spiked, V after the clock)``::

        U = clip(decay · V + I, v_low, v_high),   s = U >= threshold,
        V = residual · U where s, else U
    """
    uk = min(max(decay * v + i, v_low), v_high)
    spiked = uk >= threshold
    return spiked, residual * uk if spiked else uk


@njit(parallel=True, cache=True, nogil=True)
def lif_spikes_board(current, constant, n_out, decay, threshold, residual, v_low, v_high,
                     spikes, counts):  # pragma: no cover - compiled
    """Inference on a drawn analog board: :func:`lif_spikes` with every neuron's own
    ``decay``, ``threshold`` and reset ``residual`` (``(n_out,)`` each; element ``m`` of a
    ``(T, M)`` row belongs to neuron ``m % n_out``), and the membrane clipped to the op-amp's
    swing ``[v_low, v_high]`` (:func:`_board_step`)."""
    steps, m_total = spikes.shape
    for block in prange((m_total + BLOCK - 1) // BLOCK):
        lo, hi = _block_bounds(block, m_total)
        v = np.zeros(hi - lo, current.dtype)
        n = counts[lo:hi]
        n[:] = 0
        for t in range(steps):
            i = current[0 if constant else t, lo:hi]
            s = spikes[t, lo:hi]
            for k in range(hi - lo):
                neuron = (lo + k) % n_out
                fired, v[k] = _board_step(v[k], i[k], decay[neuron], threshold[neuron],
                                          residual[neuron], v_low, v_high)
                s[k] = fired
                n[k] += fired


@njit(parallel=True, cache=True, nogil=True)
def lif_readout_counts_board(current, constant, steps, n_boards, decay_hidden,
                             threshold_hidden, residual_hidden, v_low_hidden, v_high_hidden,
                             weight, bias, decay_out, threshold_out, residual_out, v_low_out,
                             v_high_out, hidden_counts,
                             counts):  # pragma: no cover - compiled
    """:func:`lif_readout_counts` for ``K`` drawn analog boards at once: for every (input,
    board), the board's last hidden layer through all ``T`` steps as
    :func:`lif_spikes_board` runs it, the output currents ``W_k · s[t] + b_k`` of every step
    (:func:`_synaptic_sums`), then the board's output layer as :func:`lif_spikes_board`
    runs it; only spike counts are written. ``current`` ``(1 or T, B, K·H)``; ``weight``
    ``(K, O, H)``; ``bias`` ``(K, O)``; the neuron constants ``(K·H,)`` and ``(K·O,)``;
    ``hidden_counts`` ``(B, K·H)``; ``counts`` ``(B, K·O)``."""
    batch = current.shape[1]
    n = weight.shape[2]
    k_out = weight.shape[1]
    zero = current.dtype.type(0.0)
    one = current.dtype.type(1.0)
    for item in prange(batch * n_boards):
        b = item // n_boards
        board = item % n_boards
        lo, lo_out = board * n, board * k_out
        v = np.zeros(n, current.dtype)
        s = np.zeros((steps + STEPS_PER_PASS - 1, n), current.dtype)  # rows past T stay 0
        n_hidden = hidden_counts[b, lo:lo + n]
        n_hidden[:] = 0
        for t in range(steps):
            i = current[0 if constant else t, b, lo:lo + n]
            st = s[t]
            for j in range(n):
                neuron = lo + j
                fired, v[j] = _board_step(v[j], i[j], decay_hidden[neuron],
                                          threshold_hidden[neuron], residual_hidden[neuron],
                                          v_low_hidden, v_high_hidden)
                st[j] = one if fired else zero
                n_hidden[j] += fired
        current_out = np.empty((steps, k_out), current.dtype)
        _synaptic_sums(s, weight[board], current_out)
        v_out = np.zeros(k_out, current.dtype)
        n_out = counts[b, lo_out:lo_out + k_out]
        n_out[:] = 0
        for t in range(steps):
            for k in range(k_out):
                neuron = lo_out + k
                fired, v_out[k] = _board_step(v_out[k], current_out[t, k] + bias[board, k],
                                              decay_out[neuron], threshold_out[neuron],
                                              residual_out[neuron], v_low_out, v_high_out)
                n_out[k] += fired
