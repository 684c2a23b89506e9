"""End to end: a small training run on real MNIST, its run directory, reproducibility,
protection of finished runs, and resuming after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import SMALL_RUN as SMALL

from spikeforge.cli import main
from spikeforge.config import TrainConfig
from spikeforge.errors import CheckpointError
from spikeforge.train import evaluate_run, fit, load_run


def test_small_mnist_run_beats_chance_by_a_wide_margin(small_run, data_dir):
    _, metrics = small_run
    assert metrics["test_accuracy"] > 0.80  # chance is 0.10
    assert metrics["n_test"] == 1000 and metrics["n_train"] == 4000 and metrics["epochs"] == 3


def test_run_directory_holds_everything_needed_to_judge_the_result(small_run):
    run_dir, metrics = small_run
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == metrics["test_accuracy"]
    for key in ("train_seconds", "samples_per_second", "config", "spec", "environment",
                "data_files"):
        assert on_disk[key], key
    assert on_disk["config"]["hidden"] == [128] and on_disk["spec"]["layer_sizes"] == [784, 128, 10]
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss") and len(rows) == 4
    for name in ("training_curves", "confusion_matrix", "spike_raster", "receptive_fields"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    config, spec, model, state = load_run(run_dir)
    assert config == TrainConfig.from_dict(SMALL) and state["epoch"] == 3
    assert model.layers[0].weight.shape == (128, 784)


def test_evaluate_rescores_the_saved_run_exactly(small_run, capsys):
    run_dir, metrics = small_run
    assert evaluate_run(run_dir, progress=False)["test_accuracy"] == metrics["test_accuracy"]
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches_reported"] is True


def test_same_seed_same_data_gives_the_same_accuracy(small_run, tmp_path):
    run_dir, metrics = small_run
    again = fit(TrainConfig.from_dict(SMALL), tmp_path / "again", progress=False, plots=False)
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert (tmp_path / "again" / "history.csv").read_text().split("\n")[1].split(",")[:4] == \
        (run_dir / "history.csv").read_text().split("\n")[1].split(",")[:4]
    other = fit(TrainConfig.from_dict({**SMALL, "seed": 1, "epochs": 1}), tmp_path / "other",
                progress=False, plots=False)
    assert other["config"]["seed"] == 1


def test_a_finished_run_is_never_overwritten_without_force(small_run, tmp_path):
    run_dir, _ = small_run
    with pytest.raises(CheckpointError, match="holds a finished run"):
        fit(TrainConfig.from_dict(SMALL), run_dir, progress=False)
    with pytest.raises(CheckpointError, match="already finished"):
        fit(TrainConfig(), run_dir, resume=True, progress=False)
    target = tmp_path / "replaced"
    fit(TrainConfig.from_dict({**SMALL, "epochs": 1}), target, progress=False, plots=False)
    fit(TrainConfig.from_dict({**SMALL, "epochs": 1, "seed": 5}), target, force=True,
        progress=False, plots=False)
    assert json.loads((target / "metrics.json").read_text())["config"]["seed"] == 5


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path, data_dir):
    settings = {"dataset": "mnist", "limit_train": 20000, "limit_test": 1000, "epochs": 4}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    run_dir = tmp_path / "killed"
    env = {**os.environ, "SPIKEFORGE_DATA": str(data_dir), "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge", "train", *args,
                             f"--out={run_dir}", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    time.sleep(0.3)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] < 4

    resumed = subprocess.run([sys.executable, "-m", "spikeforge", "train", "--resume",
                              str(run_dir), "--no-progress", "--json"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    result = json.loads(resumed.stdout)

    straight = fit(TrainConfig.from_dict(settings), tmp_path / "straight", progress=False,
                   plots=False)
    assert result["test_accuracy"] == straight["test_accuracy"]
    assert (run_dir / "history.csv").read_text().splitlines()[-1].split(",")[:4] == \
        (tmp_path / "straight" / "history.csv").read_text().splitlines()[-1].split(",")[:4]


def test_quantisation_aware_fine_tuning_starts_from_the_run_and_uses_k_bit_weights(
        small_run, tmp_path):
    run_dir, metrics = small_run
    tuned = fit(TrainConfig.from_dict({**SMALL, "epochs": 1, "lr": 1e-9, "quantize_bits": 4,
                                       "init_from": str(run_dir)}),
                tmp_path / "q4", progress=False, plots=False)
    assert abs(tuned["test_accuracy"] - metrics["test_accuracy"]) < 0.05  # not from scratch
    _, _, model, _ = load_run(tmp_path / "q4")
    for weight in model.weights()[0]:
        assert len(torch.unique(weight)) <= 15  # codes -7..7
    with pytest.raises(CheckpointError, match="differ from this run's"):
        fit(TrainConfig.from_dict({**SMALL, "hidden": 64, "init_from": str(run_dir)}),
            tmp_path / "wrong", progress=False, plots=False)
