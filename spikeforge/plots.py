"""Plots of a run: training curves, confusion matrix, spike raster, receptive fields.

Every function takes plain arrays and a path and writes one PNG atomically, so the same
figures can be made from a bundle or a report without a model in memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeforge.io import atomic_open  # noqa: E402
from spikeforge.spec import decode  # noqa: E402


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Loss and train/test accuracy against epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="train loss (CE on spike counts)", yscale="log")
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], marker=".",
                label="train (with augmentation and dropout)")
    ax_acc.plot(epochs, [100 * h["test_accuracy"] for h in history], marker=".", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                          class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Counts of (true class, predicted class); the diagonal is what the network gets right."""
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({accuracy:.2%})")
    return _save(fig, path)


def plot_spike_raster(layer_spikes: Sequence[np.ndarray], sample: np.ndarray,
                      image_shape: tuple[int, ...] | None, path: str | os.PathLike,
                      title: str = "") -> Path:
    """One input and the spikes ``(T, n)`` of every layer it causes, one panel per layer.
    An event sample ``(T, 2·H·W)`` is drawn as its ON minus OFF spike count per pixel."""
    n_panels = len(layer_spikes) + 1
    fig, axes = plt.subplots(1, n_panels, figsize=(3.6 * n_panels, 3.4))
    if image_shape is not None and len(image_shape) == 3 and sample.ndim == 2:
        counts = sample.reshape(-1, *image_shape).sum(0, dtype=np.int64)
        net = counts[-1] - counts[0]  # polarity channels: 0 = OFF, 1 = ON
        lim = max(int(np.abs(net).max()), 1)
        axes[0].imshow(net, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
    elif image_shape is not None and len(image_shape) == 2:
        axes[0].imshow(sample.reshape(image_shape), cmap="gray_r")
        axes[0].set_xticks([])
        axes[0].set_yticks([])
    else:
        axes[0].bar(range(len(sample)), sample)
        axes[0].set(xlabel="input line")
    axes[0].set_title("input")
    for i, (ax, spikes) in enumerate(zip(axes[1:], layer_spikes, strict=True), start=1):
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=4, marker="|", color="black")
        ax.set(xlim=(-0.5, spikes.shape[0] - 0.5), ylim=(-0.5, spikes.shape[1] - 0.5),
               xlabel="time step", ylabel="neuron",
               title=f"layer {i} ({int(spikes.sum())} spikes)")
    if title:
        fig.suptitle(title, y=1.04)
    return _save(fig, path)


def plot_receptive_fields(weights: np.ndarray, image_shape: tuple[int, ...] | None,
                          path: str | os.PathLike, max_neurons: int = 64) -> Path:
    """First-layer weights of each neuron, drawn in input space (red +, blue -)."""
    if image_shape is None or len(image_shape) != 2:
        fig, ax = plt.subplots(figsize=(6, 4))
        lim = np.abs(weights).max() or 1.0
        im = ax.imshow(weights, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set(xlabel="input", ylabel="neuron", title="first-layer weights")
        fig.colorbar(im, ax=ax)
        return _save(fig, path)
    n = min(len(weights), max_neurons)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            w = weights[i].reshape(image_shape)
            lim = np.abs(w).max() or 1.0
            ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(f"receptive fields of the first {n} first-layer neurons")
    return _save(fig, path)


def plot_run(run_dir: str | os.PathLike, model: Any, data: Any,
             history: Sequence[dict[str, Any]], evaluation: Any) -> list[Path]:
    """All standard plots of a finished run into ``run_dir/plots``."""
    import torch

    folder = Path(run_dir) / "plots"
    sample = data.test_x[:1]
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(sample), record=True)
    spikes = [s[:, 0].reshape(s.shape[0], -1).numpy() for s in out.spikes]
    predicted = int(decode(out.counts[0]))
    title = (f"test sample 0: label {data.class_names[int(data.test_y[0])]}, "
             f"predicted {data.class_names[predicted]}")
    paths = [
        plot_training_curves(history, folder / "training_curves.png"),
        plot_confusion_matrix(evaluation.labels, evaluation.predictions, data.class_names,
                              folder / "confusion_matrix.png"),
        plot_spike_raster(spikes, sample[0], data.image_shape, folder / "spike_raster.png", title),
    ]
    if hasattr(model, "layers"):  # a fully connected first layer: its weights are images
        paths.append(plot_receptive_fields(model.layers[0].weight.detach().numpy(),
                                           data.image_shape, folder / "receptive_fields.png"))
    return paths


def draw_pareto(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Accuracy against part count on ``ax``, as ``benchmarks/pareto.py`` measures it: the
    5th percentile and the median of drawn boards for each design (``rows``: that script's
    JSON lines), each point labelled with the design's layer sizes, parts on a log axis."""
    parts = np.array([r["total_parts"] for r in rows], dtype=np.float64)
    order = np.argsort(parts)
    for key, style, label in (("mc_p5", "o-", "5th percentile of boards"),
                              ("mc_median", "s--", "median of boards")):
        values = np.array([100 * r[key] for r in rows])
        ax.plot(parts[order], values[order], style, label=label)
    for r in rows:
        ax.annotate("-".join(map(str, r["layers"])), (r["total_parts"], 100 * r["mc_p5"]),
                    textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set(xscale="log", xlabel="parts on the board (all kinds)")
    ax.grid(True, which="both", alpha=0.3)


def plot_monte_carlo(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """Histogram of the accuracy of drawn boards, with the ideal and nominal parts and the
    5th percentile marked."""
    acc = 100 * np.asarray(summary["accuracies"])
    o = summary["options"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bins = max(5, min(40, len(acc) // 3))
    ax.hist(acc, bins=bins, color="#4c72b0", alpha=0.85, label=f"{len(acc)} boards")
    for value, style, label in ((summary["ideal"], "-", "ideal parts"),
                                (summary["nominal"], "--", "nominal parts"),
                                (summary["p5"], ":", "5th percentile")):
        ax.axvline(100 * value, color="k", linestyle=style, label=f"{label} {100 * value:.2f} %")
    ax.set(xlabel="test accuracy (%)", ylabel="boards",
           title=f"Monte Carlo: {o['resistor_tolerance']:.1%} resistors, "
                 f"{o['capacitor_tolerance']:.0%} capacitors, {o['distribution']}")
    ax.legend(fontsize=8)
    return _save(fig, path)
