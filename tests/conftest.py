"""Shared fixtures. Tests read datasets from ../shared/datasets (development and CI) unless
SPIKEFORGE_DATA already points somewhere else."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.hardware.bundle import Bundle
from spikeforge.spec import DigitalSpec, EncodingSpec, NetworkSpec, NeuronSpec

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


def tiny_digital_bundle(sizes=(24, 12, 5), timesteps=6, reset="zero", refractory=0,
                encoding="constant_current", bias=True, decay=(230, 8), weight_bits=8,
                input_bits=8, n=8, seed=0, offset=0, target="digital"):
    """A random digital bundle whose thresholds make neurons fire now and then (chosen from
    the currents the inputs cause), and ``n`` inputs in the twin's layout; ``target =
    "analog"`` gives a float bundle of the same shape (for the refusals). Shared by the
    RTL and C tests."""
    rng = np.random.default_rng(seed)
    w_max = 2 ** (weight_bits - 1) - 1
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    weights = [np.clip(rng.integers(-w_max, w_max + 1, (o, i)) + offset, -w_max, w_max)
               for i, o in pairs]
    biases = [rng.integers(-w_max // 3, w_max // 3 + 1, o) if bias else None
              for _, o in pairs]
    held = encoding == "constant_current"
    x = rng.random((n, sizes[0])) if held else rng.random((timesteps, n, sizes[0])) < 0.3
    thresholds = []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        s = (np.rint(x * (2**input_bits - 1)) if (layer == 0 and held)
             else (rng.random((64, w.shape[1])) < 0.3))
        current = s.reshape(-1, w.shape[1]) @ w.T + (0 if b is None else b)
        positive = current[current > 0]
        thresholds.append(max(1, int(np.percentile(positive, 40)) if positive.size else 1))
    digital = DigitalSpec(weight_bits, input_bits, decay[0], decay[1], tuple(thresholds))
    spec = NetworkSpec(sizes, timesteps, NeuronSpec(digital.decay, 1.0, reset, refractory),
                       EncodingSpec(encoding), bias=bias, digital=digital)
    if target == "analog":
        spec = NetworkSpec(sizes, timesteps, NeuronSpec(0.9, 1.0), bias=bias)
        weights = [w / 100.0 for w in weights]
        biases = [None if b is None else b / 100.0 for b in biases]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    return Bundle(spec, target, weights, biases, names, {}), x
