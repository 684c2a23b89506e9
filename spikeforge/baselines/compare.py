"""Run several learning rules on one dataset and compare them: the registry behind
``spikeforge compare``, the Markdown table, the JSON record and the plots.

Every method is a ``train(data, settings) -> BaselineResult``
(:mod:`spikeforge.baselines.common`) registered in :data:`METHODS` by module and function
name and imported only when it is used: the STDP rules live in a module of their own
(:mod:`spikeforge.baselines.stdp`), and while it is missing or broken those methods are
reported as unavailable, by name and with the import error, instead of breaking the rest.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.baselines.common import (
    COMPARE_DATASETS,
    BaselineResult,
    BaselineSettings,
    Method,
    limited,
    load_compare_dataset,
)
from spikeforge.errors import ConfigError, SpikeforgeError
from spikeforge.io import write_json

RESULTS_FORMAT = "spikeforge-compare/1"
#: classes per comparison dataset: chance is one over this (a constant guess is right that
#: often on these balanced sets)
N_CLASSES = {"iris": 3, "mnist": 10, "mnist-binary": 2}


class MethodUnavailableError(SpikeforgeError):
    """A registered method whose code cannot be imported (e.g. not written yet)."""


@dataclass(frozen=True)
class MethodInfo:
    """A registered learning rule: where its ``train`` function lives, which comparison
    datasets it runs on, and one line on what it is and what the source found."""

    name: str
    module: str
    function: str
    datasets: tuple[str, ...]
    summary: str

    def load(self) -> Method:
        """The train function, imported now; :class:`MethodUnavailableError` if it cannot be."""
        try:
            return getattr(importlib.import_module(self.module), self.function)
        except (ImportError, AttributeError) as e:
            raise MethodUnavailableError(
                f"method {self.name!r} is unavailable: {self.module}.{self.function} cannot be "
                f"imported ({type(e).__name__}: {e})") from None

    def unavailable(self) -> str | None:
        """Why the method cannot run, or None when it can."""
        try:
            self.load()
        except MethodUnavailableError as e:
            return str(e)
        return None


METHODS: dict[str, MethodInfo] = {info.name: info for info in (
    MethodInfo("ann-sigmoid", "spikeforge.baselines.ann", "train_ann_sigmoid",
               COMPARE_DATASETS, "sigmoid MLP, softmax + cross-entropy, backprop "
               "(source: works)"),
    MethodInfo("ann-relu", "spikeforge.baselines.ann", "train_ann_relu", COMPARE_DATASETS,
               "ReLU MLP 784-128-10, softmax + cross-entropy, Adam (source: works)"),
    MethodInfo("reinforce", "spikeforge.baselines.reinforce", "train_reinforce",
               COMPARE_DATASETS, "policy gradient, ±1 reward, baseline + entropy + K samples "
               "(source: works on simple tasks)"),
    MethodInfo("surrogate", "spikeforge.baselines.surrogate", "train_surrogate",
               COMPARE_DATASETS, "LIF 784-128-10, T=25, surrogate gradients through time "
               "(source: 97.76 %; the project's recipe ~98.2 %)"),
    MethodInfo("r-stdp", "spikeforge.baselines.stdp", "train_r_stdp", COMPARE_DATASETS,
               "reward-modulated STDP on LIF neurons (source: fails, collapses to one "
               "class)"),
    MethodInfo("bp-stdp", "spikeforge.baselines.stdp", "train_bp_stdp", COMPARE_DATASETS,
               "STDP driven by a backpropagated error (BP-STDP)"),
)}


def _check_dataset(dataset: str) -> None:
    if dataset not in COMPARE_DATASETS:
        raise ConfigError(f"dataset {dataset!r} cannot be compared: choose one of "
                          f"{', '.join(COMPARE_DATASETS)}")


def check_settings(settings: BaselineSettings) -> None:
    """Refuse settings no method could honour, naming the option."""
    for name, low in (("epochs", 1), ("limit_train", 1), ("limit_test", 1)):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < low):
            raise ConfigError(f"{name} = {value!r} is not allowed: it must be an integer >= "
                              f"{low}, or absent")
    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int):
        raise ConfigError(f"seed = {settings.seed!r} is not allowed: it must be an integer")


def resolve_methods(dataset: str, methods: Sequence[str] | None = None
                    ) -> tuple[list[tuple[str, Method]], dict[str, str]]:
    """``([(name, train function)], {skipped name: why})`` for ``dataset``.

    ``methods=None`` means every registered method that runs on ``dataset``, skipping (and
    naming) those that cannot be imported. Named methods must exist, run on the dataset and
    import, else a :class:`ConfigError` / :class:`MethodUnavailableError` says which and
    lists the choices."""
    _check_dataset(dataset)
    skipped: dict[str, str] = {}
    if methods is None:
        chosen = []
        for info in METHODS.values():
            if dataset not in info.datasets:
                continue
            try:
                chosen.append((info.name, info.load()))
            except MethodUnavailableError as e:
                skipped[info.name] = str(e)
        return chosen, skipped
    names = list(dict.fromkeys(methods))  # keep the order given, drop repeats
    if not names:
        raise ConfigError(f"no method named: choose from {', '.join(METHODS)}")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}: choose from {', '.join(METHODS)}")
    for name in names:
        if dataset not in METHODS[name].datasets:
            raise ConfigError(f"method {name!r} does not run on {dataset}: it runs on "
                              f"{', '.join(METHODS[name].datasets)}")
    return [(name, METHODS[name].load()) for name in names], skipped


def run_comparison(dataset: str, methods: Sequence[str] | None = None,
                   settings: BaselineSettings | None = None,
                   data_dir: str | os.PathLike | None = None,
                   on_result: Callable[[BaselineResult], None] | None = None
                   ) -> list[BaselineResult]:
    """Train each method (default: all available, :func:`resolve_methods`) on ``dataset``
    with the same ``settings`` and return their results in order. The names, dataset and
    settings are all checked before the data is loaded or anything is trained.
    ``on_result`` is called after each method (e.g. to report progress)."""
    settings = settings or BaselineSettings()
    check_settings(settings)
    chosen, _ = resolve_methods(dataset, methods)
    data = limited(load_compare_dataset(dataset, data_dir, progress=settings.progress),
                   settings)
    results = []
    for name, train in chosen:
        result = train(data, settings)
        if not isinstance(result, BaselineResult):
            raise TypeError(f"method {name!r} returned {type(result).__name__}, not a "
                            f"BaselineResult")
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def chance_level(dataset: str) -> float:
    """Accuracy of a constant guess on a balanced set: 1 / classes."""
    return 1.0 / N_CLASSES[dataset]


# ------------------------------------------------------------------------------ reporting


def format_table(results: Sequence[BaselineResult]) -> str:
    """A Markdown table: method, test accuracy, epochs, training seconds (one row per
    result, in order; a dataset column when the results span several datasets)."""
    several = len({r.dataset for r in results}) > 1
    header = ["method", *(["dataset"] if several else []), "test accuracy", "epochs",
              "seconds"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * (1 + several) + ["---:"] * 3) + "|"]
    for r in results:
        cells = [r.method, *([r.dataset] if several else []), f"{100 * r.test_accuracy:.2f} %",
                 str(r.epochs), f"{r.seconds:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars, tuples and non-finite floats made plain JSON
    (NaN and infinities become null: strict JSON has no such numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def results_to_dict(results: Sequence[BaselineResult],
                    settings: BaselineSettings | None = None) -> dict[str, Any]:
    """The JSON record of a comparison: settings, environment, and per method its table
    row, history, diagnostics, notes and test predictions."""
    from spikeforge.train import environment

    return _jsonable({
        "format": RESULTS_FORMAT,
        "settings": asdict(settings) if settings is not None else None,
        "environment": environment(),
        "results": [{**r.row(), "history": r.history, "diagnostics": r.diagnostics,
                     "notes": r.notes, "predictions": np.asarray(r.predictions)}
                    for r in results],
    })


def save_results(results: Sequence[BaselineResult], path: str | os.PathLike,
                 settings: BaselineSettings | None = None) -> Path:
    """Write :func:`results_to_dict` to ``path`` atomically."""
    write_json(path, results_to_dict(results, settings))
    return Path(path)


def load_results(path: str | os.PathLike) -> list[BaselineResult]:
    """The results of a ``results.json`` written by :func:`save_results` (for re-plotting)."""
    import json

    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SpikeforgeError(f"{path}: cannot be read as comparison results ({e})") from None
    if not isinstance(record, dict) or record.get("format") != RESULTS_FORMAT:
        raise SpikeforgeError(f"{path}: not a {RESULTS_FORMAT} file")
    return [BaselineResult(r["method"], r["dataset"], r["test_accuracy"], r["epochs"],
                           r["seconds"], np.asarray(r["predictions"], dtype=np.int64),
                           r["history"], r["diagnostics"], r["notes"])
            for r in record["results"]]


def plot_comparison(results: Sequence[BaselineResult], path: str | os.PathLike,
                    chance: float | None = None) -> Path:
    """Bar plot of the test accuracies, each bar labelled, with chance level (default:
    ``1 / classes`` of the results' dataset) as a dashed line; one PNG, written atomically."""
    from spikeforge.plots import _save, plt

    if chance is None and results and results[0].dataset in N_CLASSES:
        chance = chance_level(results[0].dataset)
    names = [r.method for r in results]
    acc = [100 * r.test_accuracy for r in results]
    fig, ax = plt.subplots(figsize=(1.1 * len(results) + 3, 3.8))
    bars = ax.bar(range(len(results)), acc, color="#4c72b0")
    for bar, value in zip(bars, acc, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value + 1, f"{value:.1f} %", ha="center",
                va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(100 * chance, color="#c44e52", linestyle="--",
                   label=f"chance {100 * chance:.0f} %")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(results)), names, rotation=20, ha="right")
    datasets = ", ".join(dict.fromkeys(r.dataset for r in results))
    ax.set(ylim=(0, 109), ylabel="test accuracy (%)", title=f"learning rules on {datasets}")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def class_histograms(result: BaselineResult) -> np.ndarray | None:
    """``diagnostics["class_histogram"]`` as an ``(steps, classes)`` count array, or None
    if the result has none; :class:`ValueError` if it is not such a table."""
    raw = result.diagnostics.get("class_histogram")
    if raw is None:
        return None
    try:
        table = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        table = np.zeros(0)
    if table.ndim != 2 or table.size == 0 or not np.isfinite(table).all() or (table < 0).any():
        raise ValueError(f"{result.method}: diagnostics['class_histogram'] must be a non-empty "
                         f"list of per-step lists of class counts")
    return table


def plot_class_histogram(result: BaselineResult, path: str | os.PathLike,
                         class_names: Sequence[str] | None = None) -> Path:
    """How often each class was predicted over training, as a stacked area of fractions
    (``diagnostics["class_histogram"]``: one histogram per epoch or chunk). A network that
    collapses onto one class (the source's R-STDP) fills the plot with one colour; one that
    learns settles at the classes' shares of the data. ``diagnostics["class_histogram_unit"]``
    names the x axis (default ``"epoch"``), ``["class_histogram_of"]`` what was counted; the
    legend shows ``class_names``, else ``diagnostics["class_names"]``, else ``class i``."""
    from spikeforge.plots import _save, plt

    table = class_histograms(result)
    if table is None:
        raise ValueError(f"{result.method} has no diagnostics['class_histogram'] to plot")
    totals = table.sum(1, keepdims=True)
    shares = 100 * table / np.where(totals > 0, totals, 1)
    steps = np.arange(1, len(table) + 1)
    k = table.shape[1]
    class_names = class_names or result.diagnostics.get("class_names")
    labels = list(map(str, class_names)) if class_names and len(class_names) == k else [
        f"class {i}" for i in range(k)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")(np.arange(k) % 20)
    if len(steps) == 1:  # one step: an area needs two points, so draw stacked bars
        bottom = 0.0
        for i in range(k):
            ax.bar(steps, shares[:, i], bottom=bottom, color=colours[i], label=labels[i])
            bottom += shares[0, i]
    else:
        ax.stackplot(steps, shares.T, colors=colours, labels=labels, alpha=0.9)
    ax.axhline(100 / k, color="k", linestyle=":", linewidth=0.8)
    unit = str(result.diagnostics.get("class_histogram_unit", "epoch"))
    counted = result.diagnostics.get("class_histogram_of")
    ax.set(xlabel=unit, ylabel="share of predictions (%)", ylim=(0, 100),
           xlim=(steps[0] - 0.5, steps[-1] + 0.5) if len(steps) == 1 else (steps[0], steps[-1]),
           title=f"{result.method} on {result.dataset}: predicted classes over training")
    if counted:
        ax.text(0.0, -0.2, str(counted), transform=ax.transAxes, fontsize=7, va="top")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs and chunks are whole
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    return _save(fig, path)


def write_outputs(results: Sequence[BaselineResult], out_dir: str | os.PathLike,
                  settings: BaselineSettings | None = None) -> dict[str, Any]:
    """Write ``results.json``, ``comparison.png`` and a ``class_histogram-<method>.png``
    for each result with that diagnostic into ``out_dir``. Returns ``{"results": path,
    "comparison": path, "class_histograms": [paths], "notes": [...]}``; a malformed
    diagnostic is reported in the notes rather than losing the comparison."""
    out = Path(out_dir)
    written: dict[str, Any] = {"results": save_results(results, out / "results.json", settings),
                               "comparison": plot_comparison(results, out / "comparison.png"),
                               "class_histograms": [], "notes": []}
    for r in results:
        try:
            if class_histograms(r) is not None:
                written["class_histograms"].append(
                    plot_class_histogram(r, out / f"class_histogram-{r.method}.png"))
        except ValueError as e:
            written["notes"].append(f"no class histogram plot: {e}")
    return written
