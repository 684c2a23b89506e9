"""The STDP baselines (spikeforge.baselines.stdp): the update rules on hand-computed tiny
examples, the LIF dynamics against the contract, and short Iris runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spikeforge.baselines import stdp
from spikeforge.baselines.common import BaselineSettings, load_compare_dataset
from spikeforge.spec import LIFState, NetworkSpec, NeuronSpec, lif_step, reference_forward

FAST = BaselineSettings(epochs=12, seed=3, progress=False)


@pytest.fixture(scope="module")
def iris():
    return load_compare_dataset("iris", progress=False)


# --- the contract's LIF -------------------------------------------------------------------


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_update_is_the_contracts_lif_step(reset):
    rng = np.random.default_rng(0)
    neuron = NeuronSpec(decay=0.9, threshold=1.0, reset=reset)
    v = rng.normal(0.5, 0.6, (4, 7)).astype(np.float32)
    for _ in range(5):
        current = rng.normal(0.3, 0.5, v.shape).astype(np.float32)
        s_ref, state = lif_step(LIFState(v, np.zeros(v.shape, dtype=np.int64)), current, neuron)
        s, v_new = stdp.lif_update(v, current, neuron)
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(v_new, state.v)
        v = v_new


def _dyadic(rng, shape, scale=16):
    """Weights that are multiples of 1/16: every sum is exact in floating point, so the
    order of the additions (one matrix product or one per step) cannot flip a spike."""
    return (rng.integers(-8, 14, shape) / scale).astype(np.float32)


def test_r_stdp_network_runs_the_reference_forward():
    rng = np.random.default_rng(1)
    cfg = stdp.RSTDPConfig(timesteps=9, hidden=(5,), inhibition=0.0, decay=0.875)
    weights = [_dyadic(rng, (5, 6)).astype(np.float64), _dyadic(rng, (3, 5)).astype(np.float64)]
    p = rng.random((4, 6)).astype(np.float32)
    spikes = stdp._RSTDPNet(weights, cfg).run(p, np.random.default_rng(7))
    inputs = stdp.poisson_spikes(p, 9, np.random.default_rng(7)).astype(np.float64)
    spec = NetworkSpec((6, 5, 3), 9, NeuronSpec(decay=0.875), bias=False)
    ref = reference_forward(weights, [None, None], inputs, spec)
    np.testing.assert_array_equal(spikes[0], inputs)
    for layer in range(2):
        np.testing.assert_array_equal(spikes[layer + 1], np.stack(ref[layer]))


def test_winner_take_all_inhibition_silences_the_other_outputs():
    # one input spiking every step drives both outputs; the first reaches the threshold at
    # t = 1, and its spike injects -5 into the other's current at t = 2: it never fires
    cfg = stdp.RSTDPConfig(timesteps=6, inhibition=5.0, decay=1.0)
    weights = [np.array([[0.6], [0.45]])]
    spikes = stdp._RSTDPNet(weights, cfg).run(np.ones((1, 1), np.float32),
                                               np.random.default_rng(0))
    out = spikes[-1][:, 0]
    np.testing.assert_array_equal(out[:, 0], [0, 1, 0, 1, 0, 1])
    assert out[:, 1].sum() == 0
    free = stdp._RSTDPNet(weights, replace(cfg, inhibition=0.0)).run(
        np.ones((1, 1), np.float32), np.random.default_rng(0))
    assert free[-1][:, 0, 1].sum() == 2  # without inhibition it fires at t = 2 and t = 5


def test_bp_stdp_network_runs_the_reference_forward():
    rng = np.random.default_rng(2)
    cfg = stdp.BPSTDPConfig(hidden=(5,), timesteps=8, window=4, encoding="constant_current",
                            decay=0.75)
    weights = [_dyadic(rng, (5, 6)), _dyadic(rng, (3, 5))]
    x = (rng.integers(0, 17, (4, 6)) / 16).astype(np.float32)
    counts = stdp._BPNet(weights, cfg).counts(x, np.random.default_rng(0))
    spec = NetworkSpec((6, 5, 3), 8, NeuronSpec(decay=0.75), bias=False)
    ref = reference_forward(weights, [None, None], x, spec)
    np.testing.assert_array_equal(counts, np.stack(ref[1]).sum(0))


# --- R-STDP update rule ------------------------------------------------------------------

PRE = np.array([[1, 0], [0, 1], [1, 0]], dtype=float)[:, None, :]  # (T=3, B=1, 2 inputs)
POST = np.array([[0], [1], [0]], dtype=float)[:, None, :]  # (T=3, B=1, 1 output)
WINDOW = {"a_plus": 1.0, "a_minus": 0.5, "decay_pre": 0.5, "decay_post": 0.5, "decay_e": 0.5}


def test_eligibility_hand_computed():
    # t0: x = [1, 0], no post spike: e = 0, y = 0
    # t1: x = [0.5, 1], post spikes: e = A+ x = [0.5, 1], y = 1
    # t2: x = [1.25, 0.5], pre 0 spikes after post: e = 0.5 e - A- y [1, 0] = [-0.25, 0.5]
    expected = np.array([[[-0.25, 0.5]]])
    np.testing.assert_allclose(stdp.eligibility(PRE, POST, **WINDOW), expected)
    e, x, y = np.zeros((1, 1, 2)), np.zeros((1, 2)), np.zeros((1, 1))
    for t in range(3):
        e, x, y = stdp.stdp_step(e, x, y, PRE[t], POST[t], **WINDOW)
    np.testing.assert_allclose(e, expected)
    np.testing.assert_allclose(x, [[1.25, 0.5]])
    np.testing.assert_allclose(y, [[0.5]])


def test_reward_modulated_update_hand_computed():
    advantage, baseline = stdp.reward_step(1.0, 0.2, rate=0.1)  # correct decision
    assert advantage == pytest.approx(0.8) and baseline == pytest.approx(0.28)
    delta = stdp.r_stdp_delta(PRE, POST, np.array([advantage]), **WINDOW)
    np.testing.assert_allclose(0.1 * delta, [[-0.02, 0.04]])  # η = 0.1: η · A · e
    wrong, _ = stdp.reward_step(-1.0, 0.2, rate=0.1)
    np.testing.assert_allclose(stdp.r_stdp_delta(PRE, POST, np.array([wrong]), **WINDOW),
                               [[0.3, -0.6]])  # -1.2 · e: the sign flips


def test_eligibility_closed_form_equals_the_step_recursion():
    rng = np.random.default_rng(4)
    pre = (rng.random((7, 3, 5)) < 0.4).astype(float)
    post = (rng.random((7, 3, 2)) < 0.3).astype(float)
    window = {"a_plus": 1.0, "a_minus": 0.7, "decay_pre": 0.8, "decay_post": 0.6,
              "decay_e": 0.9}
    e, x, y = np.zeros((3, 2, 5)), np.zeros((3, 5)), np.zeros((3, 2))
    for t in range(7):
        e, x, y = stdp.stdp_step(e, x, y, pre[t], post[t], **window)
    np.testing.assert_allclose(stdp.eligibility(pre, post, **window), e, atol=1e-12)
    adv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(stdp.r_stdp_delta(pre, post, adv, **window),
                               np.einsum("b,boi->oi", adv, e), atol=1e-12)


def test_normalise_rows_clips_and_rescales():
    w = stdp.normalise_rows(np.array([[-0.1, 0.3, 0.1], [0.0, 0.0, -1.0]]), 1.0)
    np.testing.assert_allclose(w, [[0.0, 0.75, 0.25], [0.0, 0.0, 0.0]])


# --- BP-STDP update rule -----------------------------------------------------------------


def test_bp_stdp_update_hand_computed():
    # one window of 3 steps: 2 inputs -> 2 hidden -> 2 outputs, label 0
    s_in = np.array([[1, 1], [0, 0], [1, 0]], dtype=np.float32)  # counts [2, 1]
    s_hid = np.array([[0, 0], [1, 0], [0, 0]], dtype=np.float32)  # counts [1, 0]
    s_out = np.array([[0, 1], [0, 0], [0, 1]], dtype=np.float32)  # counts [0, 2]
    counts = [s.sum(0, keepdims=True) for s in (s_in, s_hid, s_out)]
    w_out = np.array([[0.5, -0.2], [0.3, 0.4]], dtype=np.float32)
    w_hid = np.zeros((2, 2), dtype=np.float32)
    target = np.array([[1.0, 0.0]], dtype=np.float32)
    errors = stdp.bp_stdp_errors(target, counts[1:], [w_hid, w_out])
    # ξ = z - [c > 0] = [1 - 0, 0 - 1]; δ_h = (ξ · W_out) ⊙ [c_h > 0] = [0.2, -0.6] ⊙ [1, 0]
    np.testing.assert_allclose(errors[1], [[1.0, -1.0]])
    np.testing.assert_allclose(errors[0], [[0.2, 0.0]], atol=1e-7)
    d_hid, d_out = stdp.bp_stdp_deltas(errors, counts[:-1], lr=0.1)
    np.testing.assert_allclose(d_out, [[0.1, 0.0], [-0.1, 0.0]])  # μ ξ_k c_h
    np.testing.assert_allclose(d_hid, [[0.04, 0.02], [0.0, 0.0]], atol=1e-7)  # μ δ_h c_j


def test_bp_stdp_no_error_when_the_outputs_are_right_and_batches_average():
    target = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    out = np.array([[0.0, 3.0], [0.0, 1.0]], dtype=np.float32)  # sample 0 right, 1 wrong
    pre = np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32)
    (xi,) = stdp.bp_stdp_errors(target, [out], [np.zeros((2, 2), np.float32)])
    np.testing.assert_allclose(xi, [[0.0, 0.0], [1.0, -1.0]])
    (delta,) = stdp.bp_stdp_deltas([xi], [pre], lr=1.0)
    np.testing.assert_allclose(delta, [[1.5, 0.0], [-1.5, 0.0]])  # mean of the two samples


def test_validation_score_margin():
    counts = np.array([[3.0, 1.0, 0.0], [2.0, 2.0, 0.0]])
    acc, margin = stdp.validation_score(counts, np.array([0, 1]), steps=4)
    assert acc == 0.5  # the tie goes to the lowest index
    assert margin == pytest.approx((2.0 + 0.0) / 2 / 4)


# --- training on Iris --------------------------------------------------------------------


def _fast_r(lr: float = 0.03) -> stdp.RSTDPConfig:
    return replace(stdp.r_stdp_config("iris"), lr_candidates=(), learning_rate=lr)


def _fast_bp() -> stdp.BPSTDPConfig:
    return replace(stdp.bp_stdp_config("iris"), lr_candidates=())


def test_r_stdp_learns_iris_and_keeps_diagnostics(iris):
    result = stdp.train_r_stdp(iris, FAST, _fast_r())
    assert result.method == "r-stdp" and result.epochs == 12
    assert result.test_accuracy > 0.8
    d = result.diagnostics
    rows = np.array(d["class_histogram"])
    assert rows.shape[1] == 3
    np.testing.assert_array_equal(rows.sum(1), d["class_histogram_samples"])
    assert rows.sum() == 12 * d["n_train"]  # every training decision is counted once
    for key in ("reward_mean", "baseline_mean", "advantage_mean", "advantage_abs_mean",
                "silent_fraction", "tie_fraction"):
        assert len(d[key]) == len(rows)
    assert sum(d["test_class_histogram"]) == len(iris.test_y)
    assert len(result.history) == 12 and {"mean_reward", "val_accuracy"} <= set(
        result.history[0])
    assert len(result.predictions) == len(iris.test_y) and result.seconds > 0


def test_bp_stdp_learns_iris(iris):
    result = stdp.train_bp_stdp(iris, FAST, _fast_bp())
    assert result.method == "bp-stdp" and len(result.history) == 12
    assert result.test_accuracy > 0.8


def _timeless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_seed_same_result(iris):
    settings = BaselineSettings(epochs=3, seed=5, progress=False, limit_train=60)
    for train, cfg in ((stdp.train_r_stdp, _fast_r()), (stdp.train_bp_stdp, _fast_bp())):
        a, b, c = (train(iris, s, cfg) for s in (settings, settings, replace(settings, seed=6)))
        np.testing.assert_array_equal(a.predictions, b.predictions)
        assert _timeless(a.history) == _timeless(b.history)
        assert a.diagnostics.get("class_histogram") == b.diagnostics.get("class_histogram")
        assert _timeless(c.history) != _timeless(a.history)  # the seed matters


def test_lr_candidates_are_chosen_on_validation(iris):
    cfg = replace(_fast_bp(), lr_candidates=(0.003, 0.03))
    result = stdp.train_bp_stdp(iris, BaselineSettings(epochs=2, seed=0, progress=False), cfg)
    trials = result.diagnostics["lr_trials"]
    assert [t["learning_rate"] for t in trials] == [0.003, 0.03]
    best = max(trials, key=lambda t: (t["val_accuracy"], t["val_margin"]))
    assert result.diagnostics["config"]["learning_rate"] == best["learning_rate"]
