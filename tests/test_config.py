"""Training configs: TOML files, command-line overrides and errors that name the field."""

from __future__ import annotations

import pytest

from spikeforge.cli import main
from spikeforge.config import TrainConfig, load_toml, parse_hidden
from spikeforge.errors import ConfigError


def test_defaults_are_the_reference_design():
    config = TrainConfig()
    spec = config.network_spec(784, 10)
    assert spec.layer_sizes == (784, 128, 10) and spec.timesteps == 25
    assert (spec.neuron.decay, spec.neuron.threshold, spec.neuron.reset) == (0.9, 1.0, "zero")
    assert spec.encoding.type == "constant_current" and config.surrogate == "fast_sigmoid"


def test_toml_file_with_dashes_or_underscores(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('dataset = "digits"\nbatch-size = 32\nhidden = [256, 128]\n'
                    'reset = "subtract"\n')
    config = TrainConfig.from_dict(load_toml(path))
    assert (config.dataset, config.batch_size, config.hidden) == ("digits", 32, (256, 128))
    assert config.network_spec(64, 10).neuron.reset == "subtract"


@pytest.mark.parametrize(("settings", "message"), [
    ({"decay": 1.2}, "decay = 1.2 is not allowed: it must be a number in (0, 1]"),
    ({"threshold": 0}, "threshold = 0 is not allowed: it must be a number > 0"),
    ({"timesteps": 0}, "timesteps = 0 is not allowed: it must be an integer >= 1"),
    ({"refractory": -2}, "refractory = -2 is not allowed"),
    ({"reset": "hold"}, "reset = 'hold' is not allowed: it must be one of zero, subtract"),
    ({"epochs": 0}, "epochs = 0 is not allowed: it must be an integer >= 1"),
    ({"lr": -1.0}, "lr = -1.0 is not allowed"),
    ({"dataset": "cifar"}, "dataset = 'cifar' is not allowed"),
    ({"hidden": "128,x"}, "hidden = '128,x' is not allowed"),
    ({"hidden": [128, 0]}, "hidden = [128, 0] is not allowed"),
    ({"batchsize": 3}, "unknown option 'batchsize'"),
])
def test_impossible_configs_name_the_field_and_the_allowed_range(settings, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(settings)
    assert message in str(err.value)


def test_hidden_widths_parse_from_every_spelling():
    assert parse_hidden("256,128") == parse_hidden([256, 128]) == (256, 128)
    assert parse_hidden(64) == (64,) and parse_hidden("") == ()


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_toml(path)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--decay", "0", "--out", str(tmp_path / "r")]) == 2
    assert "decay = 0.0 is not allowed" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "3"]) == 2
    assert "--resume continues a run with its stored config" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no checkpoint.pt here" in capsys.readouterr().err


def test_reference_config_file_is_what_train_runs_with_no_arguments():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "reference.toml"
    assert TrainConfig.from_dict(load_toml(path)) == TrainConfig()
