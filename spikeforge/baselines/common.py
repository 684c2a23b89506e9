"""What every learning-rule baseline shares: the comparison datasets, the result record and
the method registry used by ``spikeforge compare``.

A method is a function ``train(data, settings) -> BaselineResult``. It trains on
``data.train_*`` only, chooses anything it chooses (hyperparameters, the epoch to stop at)
on a validation split it holds out of the training set (:meth:`Dataset.hold_out`), and
scores ``data.test_*`` once, at the end. ``history`` holds one row per epoch (at least
``epoch`` and the training-set or validation accuracy); ``diagnostics`` anything a method
wants plotted or reported (e.g. R-STDP's output-class histogram over training).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikeforge.data.datasets import Dataset, load_dataset
from spikeforge.errors import ConfigError

#: the datasets of the comparison: Iris, MNIST, and MNIST restricted to the digits 0 and 1
COMPARE_DATASETS = ("iris", "mnist", "mnist-binary")


@dataclass(frozen=True)
class BaselineSettings:
    """Run-wide settings of a comparison: ``epochs`` (None: the method's default for the
    dataset), ``seed``, ``limit_train`` / ``limit_test`` (first N samples; for quick runs
    and tests), ``progress`` bars."""

    epochs: int | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    progress: bool = True


@dataclass
class BaselineResult:
    """One method's outcome on one dataset."""

    method: str
    dataset: str
    test_accuracy: float
    epochs: int
    seconds: float
    predictions: np.ndarray  # predicted class per test sample
    history: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The table row: method, dataset, accuracy, epochs, seconds."""
        return {"method": self.method, "dataset": self.dataset,
                "test_accuracy": round(self.test_accuracy, 6), "epochs": self.epochs,
                "seconds": round(self.seconds, 2)}


Method = Callable[[Dataset, BaselineSettings], BaselineResult]


def load_compare_dataset(name: str, data_dir: str | os.PathLike | None = None,
                         progress: bool = True) -> Dataset:
    """``iris`` (scikit-learn), ``mnist``, or ``mnist-binary``: MNIST's 0s and 1s only, the
    source's simplified task (two classes, chance 50 %)."""
    if name not in COMPARE_DATASETS:
        raise ConfigError(f"dataset = {name!r} cannot be compared: choose one of "
                          f"{', '.join(COMPARE_DATASETS)}")
    if name == "mnist-binary":
        data = load_dataset("mnist", data_dir, progress=progress)
        train, test = data.train_y <= 1, data.test_y <= 1
        return Dataset("mnist-binary", data.train_x[train], data.train_y[train],
                       data.test_x[test], data.test_y[test], data.image_shape,
                       data.class_names[:2], data.files)
    return load_dataset(name, data_dir, progress=progress)


def limited(data: Dataset, settings: BaselineSettings) -> Dataset:
    return data.limit(settings.limit_train, settings.limit_test)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels))) if len(labels) else 0.0
