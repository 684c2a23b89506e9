"""Shared fixtures. Tests read datasets from ../shared/datasets (development and CI) unless
SPIKEFORGE_DATA already points somewhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"

if "SPIKEFORGE_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["SPIKEFORGE_DATA"] = str(SHARED_DATA)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def data_dir() -> Path:
    """The folder holding mnist/ and fashion-mnist/ for tests."""
    path = Path(os.environ["SPIKEFORGE_DATA"]) if "SPIKEFORGE_DATA" in os.environ else None
    if path is None or not (path / "mnist").is_dir():
        pytest.skip("no MNIST files: set SPIKEFORGE_DATA or run `spikeforge data fetch mnist`")
    return path


SMALL_RUN = {"dataset": "mnist", "limit_train": 4000, "limit_test": 1000, "epochs": 3}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> tuple[Path, dict]:
    """A small reference-design run on real MNIST (4,000 training images, 3 epochs, scored
    on the first 1,000 test images), shared by the tests that need a trained network."""
    if not (SHARED_DATA / "mnist").is_dir() and "SPIKEFORGE_DATA" not in os.environ:
        pytest.skip("no MNIST files")
    from spikeforge.config import TrainConfig
    from spikeforge.train import fit

    run_dir = tmp_path_factory.mktemp("runs") / "small"
    metrics = fit(TrainConfig.from_dict(SMALL_RUN), run_dir, progress=False)
    return run_dir, metrics
