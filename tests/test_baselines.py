"""Learning-rule baselines: each method learns a small slice, the REINFORCE loss matches a
hand computation, results are reproducible, and ``spikeforge compare`` writes its table,
JSON and plots and refuses bad names with the choices."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.baselines import (
    METHODS,
    BaselineResult,
    BaselineSettings,
    MethodInfo,
    MethodUnavailableError,
    format_table,
    load_compare_dataset,
    load_results,
    plot_class_histogram,
    reinforce_loss,
    resolve_methods,
    save_results,
    train_ann_relu,
    train_ann_sigmoid,
    train_reinforce,
    train_surrogate,
)
from spikeforge.baselines.reinforce import leave_one_out, rewards_for
from spikeforge.baselines.surrogate import surrogate_config
from spikeforge.cli import main

QUIET = {"progress": False}


def _need_mnist() -> None:
    folder = os.environ.get("SPIKEFORGE_DATA")
    if folder is None or not (Path(folder) / "mnist").is_dir():
        pytest.skip("no MNIST files: set SPIKEFORGE_DATA or run `spikeforge data fetch mnist`")


@pytest.fixture(scope="module")
def mnist():
    _need_mnist()
    return load_compare_dataset("mnist", progress=False)


@pytest.fixture(scope="module")
def mnist_binary():
    _need_mnist()
    return load_compare_dataset("mnist-binary", progress=False)


@pytest.fixture(scope="module")
def iris():
    return load_compare_dataset("iris", progress=False)


# ------------------------------------------------------------------------------- methods


def test_both_anns_learn_an_mnist_slice_far_above_chance(mnist):
    # 3 epochs of 15 steps: far from converged (the full recipe reaches ~98 %), but a
    # network that did not learn would stay near the 10 % of chance
    settings = BaselineSettings(epochs=3, limit_train=2000, limit_test=500, **QUIET)
    for train in (train_ann_relu, train_ann_sigmoid):
        result = train(mnist, settings)
        assert result.test_accuracy > 0.6, (result.method, result.test_accuracy)
        assert result.epochs == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
        assert all("val_accuracy" in h and "train_loss" in h for h in result.history)
        assert result.predictions.shape == (500,) and result.seconds > 0 and result.notes
        # 10 % of the 2,000 training samples are held out to choose the epoch on
        assert result.diagnostics["n_train"] == 1800
        assert result.diagnostics["n_validation"] == 200


def test_reinforce_learns_mnist_zero_vs_one_from_the_reward_alone(mnist_binary):
    settings = BaselineSettings(epochs=2, limit_train=1000, limit_test=500, **QUIET)
    result = train_reinforce(mnist_binary, settings)
    assert result.test_accuracy > 0.9  # chance 0.5
    histograms = result.diagnostics["class_histogram"]
    assert len(histograms) == 2 and all(sum(h) == 100 for h in histograms)
    assert min(histograms[-1]) > 20  # no collapse onto one class
    rewards = [h["train_reward"] for h in result.history]
    assert -1 <= rewards[0] < rewards[1] <= 1


def test_mnist_binary_holds_only_the_digits_zero_and_one(mnist_binary):
    assert set(np.unique(mnist_binary.train_y)) == {0, 1}
    assert set(np.unique(mnist_binary.test_y)) == {0, 1}
    assert mnist_binary.n_classes == 2 and mnist_binary.n_features == 784
    # MNIST has 5,923 + 6,742 training and 980 + 1,135 test images of 0 and 1
    assert len(mnist_binary.train_y) == 12665 and len(mnist_binary.test_y) == 2115


def test_same_seed_same_result_and_another_seed_another_run(iris):
    def run(train, seed):
        return train(iris, BaselineSettings(epochs=15, seed=seed, **QUIET))

    for train in (train_ann_relu, train_reinforce):
        a, b, c = run(train, 0), run(train, 0), run(train, 1)
        assert a.test_accuracy == b.test_accuracy
        np.testing.assert_array_equal(a.predictions, b.predictions)
        assert a.history == [{**h, "seconds": a.history[i]["seconds"]}
                             for i, h in enumerate(b.history)]
        assert [h["train_loss" if "train_loss" in h else "train_reward"] for h in a.history] != \
            [h["train_loss" if "train_loss" in h else "train_reward"] for h in c.history]


def test_surrogate_trains_exactly_as_train_model_does(iris):
    from spikeforge.baselines.ann import single_thread_if_small
    from spikeforge.train import evaluate, train_model

    settings = BaselineSettings(epochs=2, **QUIET)
    result = train_surrogate(iris, settings)
    assert result.method == "surrogate" and len(result.history) == 2
    config = surrogate_config(iris, settings)
    assert config.hidden == (32,) and config.augment_shift == 0 and config.epochs == 2
    with single_thread_if_small(0):  # as train_surrogate runs a network this small
        model = train_model(config, iris, device="cpu")
    expected = evaluate(model, torch.from_numpy(iris.test_x), torch.from_numpy(iris.test_y))
    np.testing.assert_array_equal(result.predictions, expected.predictions)
    assert result.test_accuracy == expected.accuracy


def test_surrogate_runs_mnist_binary_on_the_mnist_recipe(mnist_binary):
    config = surrogate_config(mnist_binary, BaselineSettings(epochs=3))
    assert config.dataset == "mnist" and config.epochs == 3 and config.hidden == (128,)
    assert config.timesteps == 25 and config.encoding == "constant_current"
    assert config.network_spec(784, mnist_binary.n_classes).layer_sizes == (784, 128, 2)


# ---------------------------------------------------------------- the REINFORCE estimator


def test_reinforce_loss_matches_a_hand_computation():
    # one input, two classes, π = (3/4, 1/4); the two samples took class 0 (reward +1)
    # and class 1 (reward -1); baseline b = 0.5, so the advantages are +0.5 and -1.5
    logits = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    actions = torch.tensor([[0, 1]])
    rewards = rewards_for(actions, torch.tensor([0]))
    assert rewards.tolist() == [[1.0, -1.0]]
    beta = 0.1
    parts = reinforce_loss(logits, actions, rewards, 0.5, beta)
    policy = -(0.5 * math.log(0.75) - 1.5 * math.log(0.25)) / 2
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert parts.policy == pytest.approx(policy, rel=1e-6)
    assert parts.entropy == pytest.approx(entropy, rel=1e-6)
    assert parts.advantage == pytest.approx(-0.5)
    assert parts.loss.item() == pytest.approx(policy - beta * entropy, rel=1e-6)

    parts.loss.backward()
    # ∂ log π(a)/∂z = onehot(a) - π: the mean of A_k (onehot(a_k) - π) is (0.625, -0.625),
    # the loss is minus that; ∂H/∂z_j = -π_j (log π_j + H) adds β·(0.206, -0.206) to it
    d_entropy = [-p * (math.log(p) + entropy) for p in (0.75, 0.25)]
    expected = [-0.625 - beta * d_entropy[0], 0.625 - beta * d_entropy[1]]
    assert logits.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    # descending it raises the logit of the action that beat the baseline
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]


def test_advantage_sign_and_entropy_push_the_policy_the_right_way():
    def grad(reward: float, baseline: float, beta: float) -> torch.Tensor:
        logits = torch.tensor([[0.5, 0.0, -0.5]], requires_grad=True)
        reinforce_loss(logits, torch.tensor([[1]]), torch.tensor([[reward]]), baseline,
                       beta).loss.backward()
        return logits.grad[0]

    assert grad(1.0, 0.0, 0.0)[1] < 0  # rewarded: descent raises the action's logit
    assert grad(-1.0, 0.0, 0.0)[1] > 0  # punished: lowered
    assert grad(1.0, 1.0, 0.0).abs().max() == 0  # no advantage, no policy gradient
    assert grad(-1.0, -1.0, 0.0).abs().max() == 0
    # entropy alone pulls the largest logit down and the smallest up: towards uniform
    g = grad(0.0, 0.0, 1.0)
    assert g[0] > 0 > g[2]


def test_leave_one_out_baseline_is_the_mean_of_the_other_samples():
    rewards = torch.tensor([[1.0, -1.0, -1.0], [1.0, 1.0, -1.0]])
    assert leave_one_out(rewards).tolist() == [[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]


# ------------------------------------------------------------- registry, CLI and outputs


def test_compare_cli_on_iris_prints_one_table_and_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--dataset", "iris", "--methods", "ann-relu,reinforce",
               "--epochs", "40", "--out", str(out), "--no-progress"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert stdout.count("| method |") == 1
    assert "| ann-relu |" in stdout and "| reinforce |" in stdout
    record = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in record["results"]] == ["ann-relu", "reinforce"]
    for r in record["results"]:
        assert r["dataset"] == "iris" and r["epochs"] == 40 and len(r["history"]) == 40
        assert r["test_accuracy"] > 0.6 and len(r["predictions"]) == 38  # chance 1/3
    assert record["settings"]["epochs"] == 40
    for name in ("comparison.png", "class_histogram-reinforce.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert [r.method for r in load_results(out / "results.json")] == ["ann-relu", "reinforce"]


def test_compare_cli_refuses_unknown_methods_and_datasets_with_the_choices(tmp_path, capsys):
    rc = main(["compare", "--dataset", "iris", "--methods", "ann-relu,backprop-magic",
               "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "backprop-magic" in err
    assert all(name in err for name in METHODS)
    rc = main(["compare", "--dataset", "cifar10", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "cifar10" in err and "iris, mnist, mnist-binary" in err
    rc = main(["compare", "--dataset", "iris", "--epochs", "0", "--out", str(tmp_path)])
    assert rc == 2 and "epochs" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_a_method_whose_module_is_missing_is_reported_unavailable(monkeypatch, tmp_path,
                                                                 capsys):
    ghost = MethodInfo("ghost", "spikeforge.baselines.no_such_module", "train_ghost",
                       ("iris",), "a method whose code is not written yet")
    monkeypatch.setitem(METHODS, "ghost", ghost)
    assert "no_such_module" in ghost.unavailable()
    chosen, skipped = resolve_methods("iris")
    assert "ghost" in skipped and "ghost" not in [name for name, _ in chosen]
    assert "ann-relu" in [name for name, _ in chosen]
    with pytest.raises(MethodUnavailableError, match="'ghost' is unavailable"):
        resolve_methods("iris", ["ann-relu", "ghost"])
    rc = main(["compare", "--dataset", "iris", "--methods", "ghost", "--out", str(tmp_path)])
    assert rc == 2 and "ghost" in capsys.readouterr().err


def test_table_json_and_class_histogram_plot_of_a_collapsing_rule(tmp_path):
    collapse = [[30, 25, 25, 20], [60, 20, 10, 10], [100, 0, 0, 0], [100, 0, 0, 0]]
    result = BaselineResult("r-stdp", "mnist", 0.098, 4, 12.5, np.zeros(10, dtype=np.int64),
                            [{"epoch": i + 1} for i in range(4)],
                            {"class_histogram": np.array(collapse)}, ["collapsed"])
    table = format_table([result])
    assert table.splitlines()[0] == "| method | test accuracy | epochs | seconds |"
    assert "| r-stdp | 9.80 % | 4 | 12.5 |" in table
    path = plot_class_histogram(result, tmp_path / "hist.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    save_results([result], tmp_path / "results.json")
    again = load_results(tmp_path / "results.json")[0]
    assert again.diagnostics["class_histogram"] == collapse and again.test_accuracy == 0.098
    bad = BaselineResult("x", "iris", 0.5, 1, 1.0, np.zeros(1), diagnostics={
        "class_histogram": [[1, 2], [3]]})
    with pytest.raises(ValueError, match="class_histogram"):
        plot_class_histogram(bad, tmp_path / "bad.png")
