"""The training toolkit end to end through the CLI: other cells, surrogates, losses,
encodings and the ConvSpikingNet train; the hardware targets refuse what they cannot build,
by name, with the fix; bad combinations are refused before training."""

from __future__ import annotations

import json

import pytest

from spikeforge.cli import main
from spikeforge.config import TrainConfig
from spikeforge.errors import ConfigError
from spikeforge.hardware.export import check_buildable

# 8x8 digits: one-pixel shifts and dropout (the MNIST recipe) only slow a 5-epoch run down
DIGITS = ["train", "--dataset", "digits", "--epochs", "5", "--batch-size", "32", "--dropout", "0",
          "--augment-shift", "0", "--no-progress", "--json"]


def _train(args: list[str], capsys) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_alif_with_atan_membrane_loss_and_spike_penalty_trains_but_is_not_exported(
        tmp_path, capsys):
    run = tmp_path / "alif"
    metrics = _train([*DIGITS, "--neuron", "alif", "--surrogate", "atan", "--loss",
                      "ce_membrane", "--spike-l1", "0.01", "--learn-decay", "--out", str(run)],
                     capsys)
    assert metrics["test_accuracy"] > 0.7  # chance is 0.1
    assert metrics["config"]["neuron"] == "alif" and metrics["config"]["learn_decay"] is True
    assert metrics["readout"] == "membrane"  # what ce_membrane trains
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matches_reported"] is True
    code = main(["export", str(run), "--target", "digital", "--out", str(tmp_path / "b")])
    assert code == 2
    err = capsys.readouterr().err
    assert "alif" in err and "--neuron lif" in err
    config = TrainConfig(loss="ce_membrane")
    with pytest.raises(Exception, match="spike counts"):
        check_buildable(config, "analog")


def test_mse_rate_loss_and_other_surrogates_train(tmp_path, capsys):
    for surrogate in ("triangular", "straight_through"):
        metrics = _train([*DIGITS, "--loss", "mse_rate", "--surrogate", surrogate,
                          "--out", str(tmp_path / surrogate)], capsys)
        assert metrics["test_accuracy"] > 0.5, surrogate


def test_conv_net_trains_on_mnist_and_no_target_builds_it(tmp_path, capsys, data_dir):
    run = tmp_path / "conv"
    metrics = _train(["train", "--model", "conv", "--channels", "8,16", "--hidden", "32",
                      "--timesteps", "6", "--epochs", "1", "--batch-size", "32",
                      "--limit-train", "3000", "--limit-test", "300", "--no-progress", "--json",
                      "--out", str(run)], capsys)
    assert metrics["test_accuracy"] > 0.4  # chance is 0.1
    assert (run / "plots" / "spike_raster.png").is_file()
    assert main(["export", str(run), "--target", "analog", "--out", str(tmp_path / "b")]) == 2
    assert "--model mlp" in capsys.readouterr().err


def test_poisson_input_trains_and_targets_refuse_it(tmp_path, capsys):
    metrics = _train([*DIGITS, "--encoding", "poisson", "--out", str(tmp_path / "p")], capsys)
    assert metrics["test_accuracy"] > 0.5
    assert metrics["spec"]["encoding"]["type"] == "spikes"
    with pytest.raises(Exception, match="constant_current"):
        check_buildable(TrainConfig(encoding="poisson"), "digital")


def test_if_neuron_is_the_lif_without_leak_and_buildable_on_the_digital_target_only():
    config = TrainConfig(neuron="if")
    assert config.network_spec(4, 2).neuron.decay == 1.0
    check_buildable(config, "digital")
    with pytest.raises(ConfigError, match="analog"):
        check_buildable(config, "analog")
    check_buildable(TrainConfig(), "analog")


@pytest.mark.parametrize("options, message", [
    ({"model": "conv", "dataset": "iris"}, "not images"),
    ({"model": "conv", "series": "E24"}, "no target builds a conv net"),
    ({"model": "conv", "neuron": "alif"}, "fused LIF"),
    ({"neuron": "hodgkin"}, "lif, if, synaptic"),
    ({"surrogate": "erf"}, "atan"),
    ({"surrogate": "atan", "surrogate_slope": -1}, "surrogate_slope"),
    ({"loss": "hinge"}, "ce_membrane"),
    ({"encoding": "rate"}, "poisson"),
    ({"channels": "8,0"}, "channels"),
])
def test_impossible_toolkit_configs_are_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)
