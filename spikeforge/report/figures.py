"""The report's figures as PNG bytes (matplotlib, headless).

The run's standard plots come from :mod:`spikeforge.plots` (one look across the project);
the figures only a report has (the network as layers, a traced image, Monte-Carlo boards
of two tolerances, the Pareto front with this design on it) are drawn here. Every function
takes plain data and returns the PNG's bytes, so the HTML can inline them and the Markdown
folder can write them unchanged.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Polygon  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 110
#: one colour per kind of thing, the same in every figure
BLUE, ORANGE, GREEN, GREY = "#4c72b0", "#dd8452", "#55a868", "#8c8c8c"


def png(fig: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def via_file(plot: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """Bytes of a :mod:`spikeforge.plots` function, which writes its PNG to a path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        plot(*args, path, **kwargs)
        return path.read_bytes()


def input_picture(sample: np.ndarray, image_shape: tuple[int, ...] | None
                  ) -> np.ndarray | None:
    """A sample as a 2-D picture: the image itself, or for event input ``(T, 2·H·W)`` the
    ON minus OFF spike count per pixel; None when the input is not an image."""
    if image_shape is None:
        return None
    if len(image_shape) == 3 and sample.ndim == 2:
        counts = sample.reshape(-1, *image_shape).sum(0, dtype=np.int64)
        return (counts[-1] - counts[0]).astype(np.float64)
    if len(image_shape) == 2 and sample.size == int(np.prod(image_shape)):
        return np.asarray(sample, np.float64).reshape(image_shape)
    return None


# --------------------------------------------------------------------- the network


def network_figure(inputs: int, input_label: str, layers: Sequence[Any], synapse_word: str,
                   title: str) -> bytes:
    """Input lines and layers as boxes left to right (height ~ log of the width), the
    synapses between them as bands labelled with their counts."""
    columns = [("input", inputs, input_label)] + [
        (layer.name, layer.neurons, f"{layer.neurons:,} neurons") for layer in layers]
    n = len(columns)
    fig, ax = plt.subplots(figsize=(2.6 * n + 1, 3.6))
    top = max(np.log10(c[1] + 1) for c in columns)
    boxes = []
    for i, (name, count, label) in enumerate(columns):
        h = 0.6 + 2.4 * np.log10(count + 1) / top
        x = i * 2.6
        colour = GREY if i == 0 else BLUE
        ax.add_patch(FancyBboxPatch((x, -h / 2), 0.9, h, boxstyle="round,pad=0.05",
                                    fc=colour, ec="black", alpha=0.85))
        ax.text(x + 0.45, h / 2 + 0.25, name, ha="center", va="bottom", fontsize=11,
                weight="bold")
        ax.text(x + 0.45, -h / 2 - 0.2, label, ha="center", va="top", fontsize=9)
        boxes.append((x, h))
    for i, layer in enumerate(layers):
        (x0, h0), (x1, h1) = boxes[i], boxes[i + 1]
        ax.add_patch(Polygon([(x0 + 0.95, h0 / 2), (x1 - 0.05, h1 / 2), (x1 - 0.05, -h1 / 2),
                              (x0 + 0.95, -h0 / 2)], closed=True, fc=ORANGE, alpha=0.25,
                             ec="none"))
        density = layer.synapses / max(layer.neurons * layer.inputs, 1)
        text = (f"{layer.synapses:,} {synapse_word}\n({density:.0%} of {layer.inputs}x"
                f"{layer.neurons})\nfan-in <= {layer.max_fan_in}")
        if layer.bias_parts:
            text += f"\n+ {layer.bias_parts} bias"
        ax.text((x0 + x1 + 0.9) / 2, 0, text, ha="center", va="center", fontsize=8.5)
    ax.set_xlim(-0.5, (n - 1) * 2.6 + 1.4)
    ax.set_ylim(-2.4, 2.4)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return png(fig)


# ---------------------------------------------------------------- a traced image


def trace_figure(trace: Any, class_names: Sequence[str], image_shape: tuple[int, ...] | None,
                 threshold: float, title: str) -> bytes:
    """One test image: the input, every layer's spike raster, and the output neurons'
    membranes against the threshold."""
    n_layers = len(trace.spikes)
    fig, axes = plt.subplots(1, n_layers + 2, figsize=(3.3 * (n_layers + 2), 3.2))
    picture = input_picture(trace.sample, image_shape)
    if picture is not None:
        lim = float(np.abs(picture).max()) or 1.0
        events = image_shape is not None and len(image_shape) == 3
        axes[0].imshow(picture, cmap="RdBu_r" if events else "gray_r",
                       vmin=-lim if events else 0, vmax=lim)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
    else:
        flat = np.asarray(trace.sample, np.float64).reshape(-1)
        axes[0].bar(range(flat.size), flat, color=GREY)
        axes[0].set(xlabel="input line")
    axes[0].set_title(f"test image {trace.index}: {class_names[trace.label]}")
    for i, (ax, spikes) in enumerate(zip(axes[1:-1], trace.spikes, strict=True)):
        t, neuron = np.nonzero(spikes)
        ax.scatter(t, neuron, s=5, marker="|", color="black")
        ax.set(xlim=(-0.5, spikes.shape[0] - 0.5), ylim=(-0.5, spikes.shape[1] - 0.5),
               xlabel="clock", ylabel="neuron",
               title=f"layer {i + 1}: {int(spikes.sum())} spikes")
    ax = axes[-1]
    out = trace.membranes[-1]
    if out is not None:
        neurons = trace.membrane_neurons[-1]
        steps = np.arange(1, out.shape[0] + 1)
        for k, j in enumerate(neurons):
            winner = j == trace.prediction
            ax.plot(steps, out[:, k], lw=2.2 if winner else 0.9,
                    color=ORANGE if winner else GREY, alpha=1 if winner else 0.6,
                    label=f"{class_names[j]} (predicted)" if winner else None)
            fired = np.nonzero(trace.spikes[-1][:, j])[0]
            ax.plot(fired + 1, out[fired, k], ".", color=ORANGE if winner else GREY, ms=5)
        ax.axhline(threshold, color="black", ls="--", lw=0.8, label="threshold")
        ax.set(xlabel="clock", ylabel="membrane U (dots: spikes)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"output membranes: predicted {class_names[trace.prediction]}")
    fig.suptitle(title, y=1.03)
    return png(fig)


# --------------------------------------------------------------- Monte Carlo


def monte_carlo_figure(results: Sequence[Any], references: Sequence[tuple[str, float]]
                       ) -> bytes:
    """Histograms of the accuracy of the drawn boards, one per resistor tolerance, with
    the float model, the ideal parts (twin) and the nominal board marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    values = [100 * np.asarray(r.summary["accuracies"]) for r in results]
    every = np.concatenate(values + [np.array([100 * v for _, v in references])])
    lo, hi = float(every.min()), float(every.max())
    # an accuracy on n images moves in steps of 100/n %: bins of whole steps, centred on
    # them, so no bin is empty or doubled by rounding
    step = 100 / max(int(results[0].summary.get("n") or 1), 1)
    width = step * max(1, math.ceil((hi - lo) / step / 30))
    bins = np.arange(lo - width / 2, hi + width, width)
    for r, acc, colour in zip(results, values, (BLUE, ORANGE, GREEN), strict=False):
        ax.hist(acc, bins=bins, alpha=0.6, color=colour,
                label=f"{r.tolerance:.0%} resistors: {len(acc)} boards, "
                      f"5th percentile {np.percentile(acc, 5):.2f} %")
    for (label, value), style in zip(references, ("-", "--", ":"), strict=False):
        ax.axvline(100 * value, color="black", ls=style, lw=1,
                   label=f"{label} {100 * value:.2f} %")
    ax.set(xlabel="test accuracy (%)", ylabel="boards",
           title="Monte Carlo: boards built from real parts")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7.5)
    return png(fig)


# ------------------------------------------------------------------ Pareto


def pareto_figure(rows: Sequence[dict[str, Any]], here: tuple[int, float] | None,
                  here_label: str) -> bytes:
    """Accuracy (5th percentile and median of boards) against part count, as
    benchmarks/pareto.py measures it, with this design as a star."""
    from spikeforge.plots import draw_pareto

    fig, ax = plt.subplots(figsize=(6.6, 4))
    draw_pareto(ax, rows)
    if here is not None:
        ax.plot([here[0]], [100 * here[1]], "*", ms=16, color="crimson", label=here_label)
    ax.set(ylabel="test accuracy (%)", title="Accuracy against part count")
    ax.legend(fontsize=8)
    return png(fig)
