"""The event-camera simulator: determinism, the pixel model's rules, parameter checks and
its statistics against the real N-MNIST sample."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from spikeforge.errors import ConfigError, DatasetError
from spikeforge.events import EVENT_DTYPE, EventRecordings
from spikeforge.events.simulator import (
    SimulatorParams,
    compare_statistics,
    event_statistics,
    recording_rng,
    saccade_path,
    simulate_recording,
    simulate_recordings,
)

SAMPLE = Path("nmnist-sample") / "nmnist_sample200.npz"


def _digits(n: int, seed: int = 0) -> np.ndarray:
    """``n`` digit-like images: a few bright strokes with soft edges on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), np.float32)
    for img in out:
        for _ in range(3):
            (y0, x0), (y1, x1) = rng.uniform(5, 23, (2, 2))
            length = np.hypot(y1 - y0, x1 - x0) + 1e-9
            along = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0)) / length**2, 0, 1)
            dist = np.hypot(yy - (y0 + along * (y1 - y0)), xx - (x0 + along * (x1 - x0)))
            img[:] = np.maximum(img, np.clip(2.0 - dist, 0, 1))
    return out


def _per_pixel_intervals(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals between consecutive events of one pixel and whether the pair's polarity
    is equal."""
    pixel = events["y"].astype(np.int64) * 34 + events["x"]
    order = np.lexsort((events["t"], pixel))
    same = pixel[order][1:] == pixel[order][:-1]
    return np.diff(events["t"][order])[same], (events["p"][order][1:]
                                               == events["p"][order][:-1])[same]


def test_same_recordings_whatever_the_chunking_and_order():
    images = _digits(7)
    labels = np.arange(7)
    ids = np.arange(100, 107)
    whole = simulate_recordings(images, labels, seed=5, sample_ids=ids, progress=False)
    chunked = simulate_recordings(images, labels, seed=5, sample_ids=ids, progress=False,
                                  chunk=3)
    for name in ("x", "y", "t", "p", "offsets", "labels", "sample_ids"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    # recording 4 alone, and the batch reversed, give the same events for that sample
    alone = simulate_recordings(images[4:5], labels[4:5], seed=5, sample_ids=ids[4:5],
                                progress=False)
    reverse = simulate_recordings(images[::-1], labels[::-1], seed=5, sample_ids=ids[::-1],
                                  progress=False, chunk=2)
    np.testing.assert_array_equal(alone[0], whole[4])
    np.testing.assert_array_equal(reverse[2], whole[4])
    # and simulate_recording with the same generator is the same recording
    single = simulate_recording(images[4], recording_rng(5, 104))
    np.testing.assert_array_equal(single, whole[4])
    other = simulate_recordings(images, labels, seed=6, sample_ids=ids, progress=False)
    assert not np.array_equal(other.t, whole.t)


def test_blank_image_gives_only_noise_at_the_set_rate():
    params = SimulatorParams(noise_rate_hz=20.0, noise_on_fraction=0.75)
    recs = simulate_recordings(np.zeros((4, 28, 28)), np.zeros(4), seed=1, params=params,
                               progress=False)
    # Poisson events, less those that fall in the refractory period after another one
    # (1 ms after each event: 2 % of the time at 20 Hz)
    expected = (20.0 * 34 * 34 * params.duration_us * 1e-6 * 4
                * (1 - 20.0 * params.refractory_us * 1e-6))
    assert abs(len(recs.t) - expected) < 4 * np.sqrt(expected)
    assert abs(recs.p.mean() - 0.75) < 0.02
    # noise is spread uniformly over the sensor and the recording
    assert abs(recs.x.mean() - 16.5) < 0.5 and abs(recs.y.mean() - 16.5) < 0.5
    assert abs(recs.t.mean() / params.duration_us - 0.5) < 0.02
    silent = simulate_recordings(np.zeros((2, 28, 28)), np.zeros(2), seed=1, progress=False,
                                 params=dataclasses.replace(params, noise_rate_hz=0.0))
    assert len(silent.t) == 0


def test_edge_moving_over_a_pixel_and_back_gives_on_then_off():
    bar = np.zeros((28, 28), np.float32)
    bar[:, 10:14] = 1.0
    # the bar moves 5 px right and back; no noise, no mismatch, equal thresholds
    params = SimulatorParams(
        saccade_x=((10.0, 0.0), (60.0, 5.0), (110.0, 0.0)), saccade_y=((0.0, 3.0),),
        saccade_jitter_us=0.0, position_jitter_px=0.0, noise_rate_hz=0.0,
        threshold_mismatch=0.0, contrast_threshold_on=0.1, contrast_threshold_off=0.1,
        duration_us=120_000, reference_spread=0.0)
    events = simulate_recording(bar, np.random.default_rng(0), params)
    on, off = (events["p"] == 1).sum(), (events["p"] == 0).sum()
    assert on > 100 and off > 100
    assert abs(on - off) / (on + off) < 0.1
    # the bar's corner starts at x = 10 and reaches x = 15: pixel column 15 lies in the
    # bar's path, brightens on the way out and darkens on the way back. The real sample
    # writes a brightening as p = 0 (brightening_polarity), so p = 0 first, then p = 1
    column = events[(events["x"] == 15) & (events["y"] == 15)]
    assert set(column["p"][column["t"] < 60_000]) == {0}
    assert set(column["p"][column["t"] > 60_000]) == {1}
    flipped = simulate_recording(bar, np.random.default_rng(0),
                                 dataclasses.replace(params, brightening_polarity=1))
    assert np.array_equal(flipped["p"], 1 - events["p"])  # the bit only, nothing else
    assert np.array_equal(flipped["t"], events["t"])
    # nothing moves vertically and the bar is 28 rows tall: rows off the bar stay quiet
    assert not np.any(events["y"] < 3)


def test_events_time_sorted_inside_the_sensor_and_the_recording():
    params = SimulatorParams()
    recs = simulate_recordings(_digits(5, seed=2), np.arange(5), seed=0, progress=False)
    assert recs.offsets[0] == 0 and recs.offsets[-1] == len(recs.t)
    for i in range(len(recs)):
        events = recs[i]
        assert events.dtype == EVENT_DTYPE
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["x"].max() < 34 and events["y"].max() < 34
        assert events["t"].max() < params.duration_us
        assert set(np.unique(events["p"])) <= {0, 1}
    for name, dtype in (("x", np.uint8), ("y", np.uint8), ("t", np.uint32), ("p", np.uint8)):
        assert getattr(recs, name).dtype == dtype


def test_refractory_period_respected_per_pixel():
    params = SimulatorParams(refractory_us=3000.0, noise_rate_hz=30.0)
    recs = simulate_recordings(_digits(3, seed=3), np.zeros(3), seed=2, params=params,
                               progress=False)
    for i in range(len(recs)):
        intervals, _ = _per_pixel_intervals(recs[i])
        assert intervals.min() >= 3000
    # without one, a fast strong edge gives several events within a single step
    quick = dataclasses.replace(params, refractory_us=0.0, noise_rate_hz=0.0,
                                contrast_threshold_on=0.02, contrast_threshold_off=0.02)
    intervals, _ = _per_pixel_intervals(simulate_recording(_digits(1)[0],
                                                           np.random.default_rng(0), quick))
    assert np.mean(intervals < quick.time_step_us) > 0.3


def test_saccade_path_follows_the_keypoints():
    params = SimulatorParams(saccade_smoothing_ms=0.0)
    t_us, dx, dy = saccade_path(params)
    assert t_us[0] == 0 and t_us[-1] == params.duration_us
    assert len(t_us) == len(dx) == len(dy) == params.duration_us // params.time_step_us + 1
    for (t_ms, x), (_, y) in zip(params.saccade_x[::7], params.saccade_y[::7], strict=False):
        k = int(round(t_ms * 1000 / params.time_step_us))
        assert dx[k] == pytest.approx(x) and dy[k] == pytest.approx(y)
    # the three saccades: down, then up and right, then left
    assert dy[70] - dy[10] > 3 and dy[180] - dy[110] < -3 and dx[180] - dx[110] > 2
    assert dx[290] - dx[230] < -3
    _, late_x, _ = saccade_path(SimulatorParams(), shift_us=10_000)
    _, on_time_x, _ = saccade_path(SimulatorParams())
    np.testing.assert_allclose(late_x[60:], on_time_x[50:-10])


@pytest.mark.parametrize("field, value", [
    ("contrast_threshold_on", 0.0), ("contrast_threshold_off", -0.1),
    ("threshold_mismatch", 0.9), ("refractory_us", float("nan")), ("background", 0.0),
    ("blur_sigma_px", -1.0), ("scale", 3.0), ("noise_rate_hz", -1.0),
    ("noise_on_fraction", 1.5), ("display_gamma", 0.0), ("time_step_us", 0),
    ("duration_us", 300_000.5), ("sensor_seed", -1), ("photoreceptor_tau_us", -5.0),
    ("saccade_x", ((0.0, 1.0), (0.0, 2.0))), ("saccade_y", ((0.0, 1.0), (50.0, 40.0))),
    ("saccade_x", ()), ("saccade_y", "fast"),
])
def test_impossible_params_refused(field, value):
    with pytest.raises(ConfigError, match=f"SimulatorParams.{field}"):
        SimulatorParams(**{field: value})


def test_bad_images_refused():
    with pytest.raises(DatasetError, match="shape"):
        simulate_recordings(np.zeros((2, 30, 30)), np.zeros(2), seed=0, progress=False)
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        simulate_recordings(np.full((1, 784), 255.0), np.zeros(1), seed=0, progress=False)


def test_event_statistics_on_a_hand_made_set():
    recs = EventRecordings(
        x=np.array([1, 1, 3, 5], np.uint8), y=np.array([2, 2, 2, 2], np.uint8),
        t=np.array([1000, 6000, 7000, 100], np.uint32), p=np.array([1, 1, 0, 1], np.uint8),
        offsets=np.array([0, 3, 4]), labels=np.array([0, 1]))
    stats = event_statistics(recs)
    assert stats["events_mean"] == 2.0 and stats["events_median"] == 2.0
    assert stats["on_fraction"] == 0.75
    assert stats["active_fraction"] == pytest.approx(3 / (2 * 34 * 34))
    assert stats["isi_median_ms"] == 5.0 and stats["same_polarity"] == 1.0
    np.testing.assert_allclose(stats["rate"][:2], [1.0, 1.0])  # [0, 5) ms and [5, 10) ms
    assert stats["mean_x_t"][1] == 2.0 and stats["saccade_1"] == 2.0
    rows = compare_statistics(stats, stats)
    assert all(r[3] == pytest.approx(1.0) for r in rows if r[3] == r[3])


@pytest.fixture
def real_sample() -> tuple[EventRecordings, np.ndarray]:
    folder = Path(os.environ.get("SPIKEFORGE_DATA", "/nonexistent"))
    if not (folder / SAMPLE).is_file() or not (folder / "mnist").is_dir():
        pytest.skip("no N-MNIST sample or MNIST: set SPIKEFORGE_DATA")
    from spikeforge.data.datasets import load_dataset

    with np.load(folder / SAMPLE) as f:
        real = EventRecordings(f["x"], f["y"], f["t"], f["p"], f["offsets"],
                               f["label"].astype(np.int64), f["sample_id"].astype(np.int64))
    mnist = load_dataset("mnist", folder, progress=False)
    return real, mnist.train_x[real.sample_ids - 1]


def test_statistics_close_to_the_real_sample(real_sample):
    real, images = real_sample
    real = real.subset(slice(0, 20))
    sim = simulate_recordings(images[:20], real.labels, seed=0, sample_ids=real.sample_ids,
                              progress=False)
    a, b = event_statistics(real), event_statistics(sim)
    assert 1 / 1.5 < b["events_mean"] / a["events_mean"] < 1.5
    assert abs(b["on_fraction"] - a["on_fraction"]) < 0.05
    assert abs(b["spread_x"] - a["spread_x"]) < 0.5 and abs(b["spread_y"] - a["spread_y"]) < 0.5
    assert np.corrcoef(a["rate"], b["rate"])[0, 1] > 0.95
    assert np.corrcoef(real.n_events, sim.n_events)[0, 1] > 0.7


def test_bad_batch_arguments_refused():
    images = _digits(2)
    with pytest.raises(DatasetError, match="labels"):
        simulate_recordings(images, np.zeros(3), seed=0, progress=False)
    with pytest.raises(DatasetError, match="sample_ids"):
        simulate_recordings(images, np.zeros(2), seed=0, sample_ids=[-1, 2], progress=False)
    with pytest.raises(ConfigError, match="seed"):
        simulate_recordings(images, np.zeros(2), seed=-3, progress=False)
    with pytest.raises(DatasetError, match="image of shape"):
        simulate_recording(np.zeros(100), np.random.default_rng(0))


def test_simulated_polarities_match_the_real_sample_edge_by_edge():
    """The statistic a polarity mix-up flips: in saccade 1 the digit moves down, and the
    real sample's ON events lie above its OFF events (negative difference); the simulated
    recordings of the same images must agree in sign, and their binned spike frames must
    correlate with the real ones (a swapped simulator scores about 0.1)."""
    from spikeforge.events.reader import load_event_npz
    from spikeforge.events.simulator import event_statistics, paired_frame_correlation

    folder = Path(os.environ.get("SPIKEFORGE_DATA", "")) / "nmnist-sample"
    mnist = Path(os.environ.get("SPIKEFORGE_DATA", "")) / "mnist"
    if not (folder / "nmnist_sample200.npz").is_file() or not mnist.is_dir():
        pytest.skip("needs nmnist-sample/ and mnist/ (SPIKEFORGE_DATA)")
    from spikeforge.data.datasets import load_dataset

    real = load_event_npz(folder / "nmnist_sample200.npz").subset(slice(0, 40))
    images = load_dataset("mnist", progress=False).train_x[real.sample_ids - 1]
    sim = simulate_recordings(images, real.labels, seed=0, sample_ids=real.sample_ids,
                              progress=False)
    real_stats, sim_stats = event_statistics(real), event_statistics(sim)
    for key in ("on_minus_off_y_1", "on_minus_off_x_2"):
        assert real_stats[key] < -1.0 and sim_stats[key] < -1.0, key
    assert paired_frame_correlation(real, sim) > 0.5
