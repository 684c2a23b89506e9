"""The divergence guard: a loss or weights that become NaN or infinite stop the run at
that step with a message (exit code 2), and the last good checkpoint is kept, never
overwritten by a broken one and never reported as a finished result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import spikeforge.train as train
from spikeforge.cli import main
from spikeforge.config import TrainConfig
from spikeforge.train import DivergenceError, fit, load_run

from .conftest import DIGITS_RUN


class _PoisonedObjective:
    """The run's objective, returning NaN from the ``after``-th call of the process on (a
    stand-in for a loss that blows up in the middle of epoch 2)."""

    calls = 0

    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after = inner, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, out: Any, labels: torch.Tensor) -> torch.Tensor:
        _PoisonedObjective.calls += 1
        loss = self.inner(out, labels)
        return loss * math.nan if _PoisonedObjective.calls >= self.after else loss


@pytest.fixture
def nan_in_epoch_2(monkeypatch) -> None:
    batches = math.ceil(1347 / DIGITS_RUN["batch_size"])  # digits: 1,347 training samples
    real = train.make_objective
    _PoisonedObjective.calls = 0
    monkeypatch.setattr(train, "make_objective",
                        lambda config: _PoisonedObjective(real(config), batches + 5))


def _assert_last_good_checkpoint_kept(run_dir: Path, epoch: int) -> None:
    assert not (run_dir / "metrics.json").exists()  # never reported as a finished run
    _, _, model, state = load_run(run_dir)
    assert state["epoch"] == epoch
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + epoch
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                    nan_in_epoch_2):
    run_dir = tmp_path / "run"
    with pytest.raises(DivergenceError) as err:
        fit(TrainConfig.from_dict(DIGITS_RUN), run_dir, progress=False, plots=False)
    message = str(err.value)
    assert message.startswith("epoch 2: the loss became nan at sample 256")
    assert "at a learning rate of 0.00133; lower --lr and train again" in message
    assert f"the checkpoint of epoch 1 is kept in {run_dir}" in message
    _assert_last_good_checkpoint_kept(run_dir, 1)


def test_the_cli_reports_divergence_as_bad_input(tmp_path, capsys, nan_in_epoch_2):
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "3",
                 "--batch-size", "64", "--out", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "spikeforge: error: epoch 2: the loss became nan" in err and "Traceback" not in err
    _assert_last_good_checkpoint_kept(run_dir, 1)


@pytest.mark.parametrize("loss", ["ce_count", "ce_membrane", "mse_rate"])
def test_exploding_weights_stop_the_run_whatever_the_loss(tmp_path, loss):
    """A learning rate of 1e10 blows the weights up to infinity and NaN. Spike-count losses
    stay finite on such a network (a NaN membrane never spikes: the loss sits at
    ln(10)), so the guard watches the weights too; nothing broken is saved."""
    run_dir = tmp_path / "run"
    with pytest.raises(DivergenceError) as err:
        fit(TrainConfig.from_dict({**DIGITS_RUN, "lr": 1e10, "loss": loss}), run_dir,
            progress=False, plots=False)
    message = str(err.value)
    assert message.startswith("epoch 1: the ")
    assert "became NaN or infinite" in message or "the loss became" in message
    assert "at a learning rate of 9.9" in message and "lower --lr and train again" in message
    assert "no epoch had finished, so nothing was saved" in message
    assert not run_dir.exists()  # the folder appears with the first (good) checkpoint


def test_a_diverging_resumed_run_keeps_its_checkpoint(tmp_path, digits_run, monkeypatch):
    """A run continued with --resume that then diverges keeps the checkpoint it resumed
    from, untouched."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(digits_run[0], run_dir)
    (run_dir / "metrics.json").unlink()
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["epoch"], state["history"] = 2, state["history"][:2]
    torch.save(state, run_dir / "checkpoint.pt")
    before = (run_dir / "checkpoint.pt").read_bytes()
    real = train.make_objective
    _PoisonedObjective.calls = 0
    monkeypatch.setattr(train, "make_objective",
                        lambda config: _PoisonedObjective(real(config), 3))
    with pytest.raises(DivergenceError, match="epoch 3: the loss became nan .* the checkpoint "
                                              "of epoch 2 is kept"):
        fit(TrainConfig(), run_dir, resume=True, progress=False, plots=False)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
