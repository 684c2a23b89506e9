"""Fixtures of the reliability suite (docs/reliability.md): tiny runs and bundles that
every theme breaks in its own way. Everything here is small enough for a 2-core machine:
the 8x8 digits that ship with scikit-learn, or a slice of MNIST."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from spikeforge.config import TrainConfig
from spikeforge.hardware.bundle import Bundle, write_bundle
from spikeforge.hardware.circuit import design_circuit
from spikeforge.hardware.quantize import to_digital
from spikeforge.spec import NetworkSpec

#: a run that trains in about a second: 64-16-10 on the 8x8 digits
DIGITS_RUN = {"dataset": "digits", "hidden": [16], "epochs": 3, "batch_size": 64}


def subprocess_env() -> dict[str, str]:
    """The environment for a ``spikeforge`` child process: the same data folder and thread
    counts as this process (so its arithmetic is this process's)."""
    import numba
    import torch

    # both thread counts: a parallel kernel's sums depend on how the work is split
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
            "NUMBA_NUM_THREADS": str(numba.config.NUMBA_NUM_THREADS)}


SPIKEFORGE = [sys.executable, "-m", "spikeforge"]


@pytest.fixture(scope="session")
def mnist_data() -> Path:
    """The data folder holding mnist/ (as ``data_dir``, for fixtures wider than a test)."""
    path = Path(os.environ.get("SPIKEFORGE_DATA", "/nonexistent"))
    if not (path / "mnist").is_dir():
        pytest.skip("no MNIST files: set SPIKEFORGE_DATA or run `spikeforge data fetch mnist`")
    return path


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> tuple[Path, dict]:
    """A finished digits run (checkpoint, history, metrics; no plots)."""
    from spikeforge.train import fit

    run_dir = tmp_path_factory.mktemp("reliability") / "digits"
    metrics = fit(TrainConfig.from_dict(DIGITS_RUN), run_dir, progress=False, plots=False)
    return run_dir, metrics


def make_bundle(target: str, sizes: tuple[int, ...] = (64, 16, 10), seed: int = 0) -> Bundle:
    """A valid bundle of random weights for ``target``, made without training."""
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(sizes, timesteps=8)
    weights = [rng.normal(0, 0.5, (n_out, n_in))
               for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(0, 0.1, n_out) for n_out in sizes[1:]]
    names = [f"fc{i + 1}" for i in range(len(weights))]
    if target == "digital":
        q = to_digital(spec, weights, biases)
        return Bundle(q.spec, target, q.weights, q.biases, names, {"digital": {"layers": []}})
    circuit, realised_w, realised_b = design_circuit(spec, weights, biases, names)
    return Bundle(spec, target, realised_w, realised_b, names,
                  {"analog": {"circuit": circuit.to_json()}}, circuit.arrays())


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory) -> Callable[[str], Path]:
    """``bundle_factory(target)``: the folder of a valid random bundle (written once per
    target; copy it before breaking it)."""
    made: dict[str, Path] = {}

    def get(target: str) -> Path:
        if target not in made:
            out = tmp_path_factory.mktemp("bundles") / target
            write_bundle(make_bundle(target), out, readme="test bundle\n")
            made[target] = out
        return made[target]

    return get
