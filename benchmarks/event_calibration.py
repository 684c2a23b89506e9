"""The event simulator against real N-MNIST: simulate the MNIST images behind the 200 real
recordings of ``nmnist_sample200.npz`` (training images 0-199) with a fixed seed, print a
Markdown table of the calibration statistics (real, simulated, ratio) and draw the
comparison plots. Run::

    python benchmarks/event_calibration.py [--data-dir DIR] [--out docs/img] [--seed 0]

The plots go to ``--out`` as ``events-*.png``. ``--fit-path`` first measures the saccade
path from the real events (registration of each 5 ms slice against the digits' edge maps,
then a time warp that makes the simulated event rate follow the real one) and prints the
keypoints to put in :class:`~spikeforge.events.simulator.SimulatorParams`; the table and
plots then use that path. The 200 real recordings are the calibration data: the defaults
were tuned on them (docs/events.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeforge.data.datasets import load_dataset  # noqa: E402
from spikeforge.data.files import resolve_data_dir  # noqa: E402
from spikeforge.events import EventRecordings  # noqa: E402
from spikeforge.events.simulator import (  # noqa: E402
    CANVAS_MARGIN,
    SimulatorParams,
    compare_statistics,
    event_statistics,
    paired_frame_correlation,
    saccade_path,
    scene,
    simulate_recordings,
)
from spikeforge.plots import _save  # noqa: E402

SAMPLE = Path("nmnist-sample") / "nmnist_sample200.npz"
ROOT = Path(__file__).resolve().parents[1]


def load_real(data_dir: Path) -> EventRecordings:
    """The 200 real recordings, read straight from the ``.npz`` (no reader module needed)."""
    with np.load(data_dir / SAMPLE) as f:
        return EventRecordings(f["x"], f["y"], f["t"], f["p"], f["offsets"].astype(np.int64),
                               f["label"].astype(np.int64), f["sample_id"].astype(np.int64))


def load_images(data_dir: Path, sample_ids: np.ndarray) -> np.ndarray:
    """The MNIST training images behind the recordings: sample ``n`` shows image ``n - 1``."""
    mnist = load_dataset("mnist", data_dir, progress=False)
    return mnist.train_x[sample_ids - 1].reshape(-1, 28, 28)


# ----------------------------------------------------------------- measuring the path


def register_slices(real: EventRecordings, images: np.ndarray, params: SimulatorParams,
                    bin_us: int = 5000, min_events: float = 40.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the digit sat during each ``bin_us`` slice of the real recordings.

    For a candidate corner position ``(ox, oy)`` the score is the sum over recordings of
    the normalised correlation between the slice's event-count map and the digit's edge
    map ``|∇B|`` placed there (events come from edges); the best integer position is
    refined to sub-pixel by a parabola through its neighbours, per axis. Returns bin
    centres (ms), x and y (NaN where a slice has fewer than ``min_events`` events per
    recording)."""
    b_img = scene(images, params).astype(np.float64)
    gy, gx = np.gradient(b_img, axis=(1, 2))
    edges = np.hypot(gx, gy)
    n, size = len(real), edges.shape[1]
    shifts = np.arange(-2, 10)
    # placed[k, l]: the edge maps with the digit's corner at (oy, ox) = (shifts[k],
    # shifts[l]) as the 34 x 34 sensor sees them (pixel (y, x) shows canvas row
    # y - oy + margin), unit norm per recording
    placed = np.zeros((len(shifts), len(shifts), n, 34, 34), np.float32)
    for k, oy in enumerate(shifts):
        y_lo, y_hi = max(0, oy - CANVAS_MARGIN), min(34, size + oy - CANVAS_MARGIN)
        for l, ox in enumerate(shifts):
            x_lo, x_hi = max(0, ox - CANVAS_MARGIN), min(34, size + ox - CANVAS_MARGIN)
            placed[k, l, :, y_lo:y_hi, x_lo:x_hi] = edges[
                :, y_lo - oy + CANVAS_MARGIN:y_hi - oy + CANVAS_MARGIN,
                x_lo - ox + CANVAS_MARGIN:x_hi - ox + CANVAS_MARGIN]
    norms = np.linalg.norm(placed.reshape(len(shifts), len(shifts), n, -1), axis=-1)
    placed /= norms[..., None, None] + 1e-12
    rec = np.repeat(np.arange(n), real.n_events)
    n_bins = int(real.t.max()) // bin_us + 1
    centres, xs_out, ys_out = [], [], []
    for b in range(n_bins):
        sel = (real.t >= b * bin_us) & (real.t < (b + 1) * bin_us)
        centres.append((b + 0.5) * bin_us / 1000)
        if sel.sum() < min_events * n:
            xs_out.append(np.nan)
            ys_out.append(np.nan)
            continue
        counts = np.zeros((n, 34, 34))
        np.add.at(counts, (rec[sel], real.y[sel].astype(int), real.x[sel].astype(int)), 1)
        counts /= np.linalg.norm(counts.reshape(n, -1), axis=1)[:, None, None] + 1e-12
        score = np.einsum("klnyx,nyx->kl", placed, counts)
        k, l = np.unravel_index(score.argmax(), score.shape)
        ys_out.append(shifts[k] + _parabola(score[max(k - 1, 0):k + 2, l], k))
        xs_out.append(shifts[l] + _parabola(score[k, max(l - 1, 0):l + 2], l))
    return np.array(centres), np.array(xs_out), np.array(ys_out)


def _parabola(values: np.ndarray, index: int) -> float:
    """Sub-sample offset of the peak of a parabola through three neighbouring scores."""
    if len(values) < 3 or index == 0:
        return 0.0
    a, b, c = values
    denom = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0


def fit_path(real: EventRecordings, images: np.ndarray, params: SimulatorParams, seed: int,
             iterations: int = 6, keypoint_ms: float = 5.0) -> SimulatorParams:
    """``params`` with the saccade path measured from the real sample.

    Geometry: :func:`register_slices`, smoothed, held constant where the digit rests.
    Timing: within each saccade window the simulated cumulative event count must follow the
    real one; each iteration moves every time ``t`` of the path to where the simulation
    had reached the real fraction of the saccade's events, until both agree."""
    centres, x_reg, y_reg = register_slices(real, images, params)
    ok = np.isfinite(x_reg)
    kernel = np.array([0.25, 0.5, 0.25])  # the slices' estimates jitter by a fraction of a pixel
    x_s = np.convolve(np.pad(x_reg[ok], 1, mode="edge"), kernel, "valid")
    y_s = np.convolve(np.pad(y_reg[ok], 1, mode="edge"), kernel, "valid")
    end_ms = params.duration_us / 1000
    grid = np.arange(0.0, end_ms + 1e-9, 1.0)
    geom_x = np.interp(grid, centres[ok], x_s)
    geom_y = np.interp(grid, centres[ok], y_s)
    windows = [(0.0, 90.0), (90.0, 222.0), (222.0, end_ms)]
    real_ms = np.sort(real.t.astype(np.float64) / 1000)
    timing = grid.copy()  # the path at time t is the registered geometry at timing[t]
    keep = np.arange(0, len(grid), int(keypoint_ms))

    def with_timing(timing: np.ndarray) -> SimulatorParams:
        px = np.interp(timing, grid, geom_x)
        py = np.interp(timing, grid, geom_y)
        return dataclasses.replace(
            params, saccade_x=tuple((float(grid[i]), round(float(px[i]), 2)) for i in keep),
            saccade_y=tuple((float(grid[i]), round(float(py[i]), 2)) for i in keep))

    for it in range(iterations):
        sim = simulate_recordings(images, real.labels, seed, with_timing(timing),
                                  sample_ids=real.sample_ids, progress=False)
        sim_ms = np.sort(sim.t.astype(np.float64) / 1000)
        new = timing.copy()
        for a, b in windows:
            m = (grid >= a) & (grid <= b)
            fr = real_ms[(real_ms >= a) & (real_ms < b)]
            fs = sim_ms[(sim_ms >= a) & (sim_ms < b)]
            frac_real = np.searchsorted(fr, grid[m]) / max(len(fr), 1)
            frac_sim, first = np.unique(np.searchsorted(fs, grid[m]) / max(len(fs), 1),
                                        return_index=True)
            when = np.interp(frac_real, frac_sim, grid[m][first])
            new[m] = np.interp(when, grid, timing)
        timing = 0.5 * (timing + new)  # half steps: the rate responds to timing with a lag
        print(f"  path fit, iteration {it + 1}/{iterations}", flush=True)
    return with_timing(timing)


# ---------------------------------------------------------------------------- output


def count_rows(real: EventRecordings, sim: EventRecordings) -> list[tuple]:
    """Rows on the pairing: the same image seen by the camera and by the simulator."""
    a, b = real.n_events.astype(np.float64), sim.n_events.astype(np.float64)
    return [("events per recording: correlation real vs simulated (same images)", 1.0,
             float(np.corrcoef(a, b)[0, 1]), float("nan")),
            ("events per recording: median of simulated / real", 1.0,
             float(np.median(b / a)), float("nan")),
            ("binary spike frames (T = 10, per polarity): correlation real vs simulated "
             "(same images)", 1.0, paired_frame_correlation(real, sim), float("nan"))]


def markdown_table(rows: list[tuple]) -> str:
    def fmt(v: float) -> str:
        if isinstance(v, float) and math.isnan(v):
            return ""
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"

    lines = ["| statistic | real | simulated | sim / real |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(r)} |" for name, a, b, r in rows]
    return "\n".join(lines)


def plot_rate(real: dict, sim: dict, path: Path) -> Path:
    fig, (ax, ax_on) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                    gridspec_kw={"height_ratios": [2, 1]})
    t = real["time_ms"] + 2.5
    ax.plot(t, real["rate"], label="real (N-MNIST sample)", color="k")
    ax.plot(t, sim["rate"], label="simulated (same images)", color="C1")
    ax.set(ylabel="events per 5 ms per recording", title="event rate over time")
    ax.legend()
    ax_on.plot(t, real["on_fraction_t"], color="k")
    ax_on.plot(t, sim["on_fraction_t"], color="C1")
    ax_on.set(xlabel="time (ms)", ylabel="ON fraction", ylim=(0.2, 1.0))
    for a in (ax, ax_on):
        a.grid(alpha=0.3)
    return _save(fig, path)


def plot_trajectory(real: dict, sim: dict, params: SimulatorParams, path: Path) -> Path:
    fig, (ax, ax_xy) = plt.subplots(1, 2, figsize=(11, 3.8),
                                    gridspec_kw={"width_ratios": [2, 1]})
    t = real["time_ms"] + 2.5
    for key, colour in (("mean_x_t", "C0"), ("mean_y_t", "C3")):
        axis = key[5]
        ax.plot(t, real[key], color=colour, label=f"real mean {axis}")
        ax.plot(t, sim[key], color=colour, ls="--", label=f"simulated mean {axis}")
    ax.set(xlabel="time (ms)", ylabel="mean event position (px)",
           title="where the events are (mean over recordings)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    t_us, dx, dy = saccade_path(params)
    sc = ax_xy.scatter(dx, dy, c=t_us / 1000, s=6, cmap="viridis")
    ax_xy.plot(dx, dy, color="0.6", lw=0.6, zorder=0)
    ax_xy.invert_yaxis()  # sensor y points down
    ax_xy.set(xlabel="digit corner x (px)", ylabel="digit corner y (px)",
              title="the simulated saccades", aspect="equal")
    fig.colorbar(sc, ax=ax_xy, label="time (ms)")
    return _save(fig, path)


def _count_map(recs: EventRecordings, i: int, polarity: int) -> np.ndarray:
    ev = recs[i]
    ev = ev[ev["p"] == polarity]
    out = np.zeros((34, 34))
    np.add.at(out, (ev["y"], ev["x"]), 1)
    return out


def plot_maps(real: EventRecordings, sim: EventRecordings, images: np.ndarray,
              path: Path, which: tuple[int, ...] = (0, 1, 2, 3, 4)) -> Path:
    fig, axes = plt.subplots(3, len(which), figsize=(2.3 * len(which), 7.2))
    for col, i in enumerate(which):
        axes[0, col].imshow(images[i], cmap="gray")
        axes[0, col].set_title(f"MNIST train {int(real.sample_ids[i]) - 1}", fontsize=9)
        for row, recs, name in ((1, real, "real"), (2, sim, "simulated")):
            on, off = _count_map(recs, i, 1), _count_map(recs, i, 0)
            top = max(on.max(), off.max(), 1)
            rgb = np.stack([on / top, np.zeros_like(on), off / top], axis=-1)
            axes[row, col].imshow(np.clip(rgb * 1.6, 0, 1))
            axes[row, col].set_title(f"{name}: {len(recs[i]):,} events", fontsize=9)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("events per pixel (red ON, blue OFF), whole recording")
    return _save(fig, path)


def plot_counts(real: EventRecordings, sim: EventRecordings, path: Path) -> Path:
    fig, (ax, ax_pair) = plt.subplots(1, 2, figsize=(10, 3.8))
    a, b = real.n_events, sim.n_events
    bins = np.linspace(0, max(a.max(), b.max()) * 1.05, 30)
    ax.hist(a, bins, histtype="step", color="k", lw=1.5, label="real")
    ax.hist(b, bins, histtype="step", color="C1", lw=1.5, label="simulated")
    ax.set(xlabel="events per recording", ylabel="recordings", title="events per recording")
    ax.legend()
    ax_pair.scatter(a, b, s=8, c=real.labels, cmap="tab10")
    top = bins[-1]
    ax_pair.plot([0, top], [0, top], color="0.5", lw=0.8)
    ax_pair.set(xlabel="real events", ylabel="simulated events (same image)",
                title=f"per image (r = {np.corrcoef(a, b)[0, 1]:.3f}; colour: digit)")
    for x in (ax, ax_pair):
        x.grid(alpha=0.3)
    return _save(fig, path)


def plot_intervals(real: EventRecordings, sim: EventRecordings, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bins = np.arange(0, 20.01, 0.25)
    for recs, name, colour in ((real, "real", "k"), (sim, "simulated", "C1")):
        rec = np.repeat(np.arange(len(recs)), recs.n_events)
        pixel = (rec * 34 + recs.y.astype(np.int64)) * 34 + recs.x.astype(np.int64)
        t = recs.t.astype(np.int64)
        order = np.lexsort((t, pixel))
        same = pixel[order][1:] == pixel[order][:-1]
        isi = np.diff(t[order])[same] / 1000
        ax.hist(isi, bins, histtype="step", density=True, color=colour, lw=1.5, label=name)
    ax.set(xlabel="interval between consecutive events of one pixel (ms)", ylabel="density",
           title="per-pixel inter-event intervals")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and nmnist-sample/ "
                        "(default: SPIKEFORGE_DATA or the usual data folder)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder of the plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-path", action="store_true",
                        help="measure the saccade path from the real events first")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    if not (data_dir / SAMPLE).is_file() and (ROOT.parent / "shared" / "datasets").is_dir():
        data_dir = ROOT.parent / "shared" / "datasets"  # the development checkout's copy
    real = load_real(data_dir)
    images = load_images(data_dir, real.sample_ids)
    params = SimulatorParams()
    if args.fit_path:
        params = fit_path(real, images, params, args.seed)
        print(f"saccade_x = {params.saccade_x}\nsaccade_y = {params.saccade_y}")
    simulate_recordings(images[:2], real.labels[:2], args.seed, params, progress=False)  # jit
    start = time.perf_counter()
    sim = simulate_recordings(images, real.labels, args.seed, params,
                              sample_ids=real.sample_ids, progress=False)
    seconds = time.perf_counter() - start
    real_stats, sim_stats = event_statistics(real), event_statistics(sim)
    rows = compare_statistics(real_stats, sim_stats) + count_rows(real, sim)
    print(markdown_table(rows))
    print(f"\n{len(images)} recordings simulated in {seconds:.2f} s "
          f"({len(images) / seconds:.0f} recordings/s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for written in (plot_rate(real_stats, sim_stats, out / "events-rate.png"),
                    plot_trajectory(real_stats, sim_stats, params, out / "events-trajectory.png"),
                    plot_maps(real, sim, images, out / "events-maps.png"),
                    plot_counts(real, sim, out / "events-per-recording.png"),
                    plot_intervals(real, sim, out / "events-intervals.png")):
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
