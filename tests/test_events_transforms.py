"""Event transforms: hand-made recordings with known outcomes, brute-force references for
the filters, and the bulk (EventRecordings) forms against the single-recording ones on the
real N-MNIST sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from spikeforge.events import EVENT_DTYPE, SENSOR_SIZE, EventRecordings, make_events
from spikeforge.events.reader import load_event_npz
from spikeforge.events.transforms import (
    FIRST_SACCADE_US,
    bin_recordings,
    crop_first_saccade,
    crop_first_saccade_recordings,
    denoise,
    denoise_recordings,
    downsample,
    downsample_recordings,
    refractory,
    refractory_recordings,
    to_frames,
)


@pytest.fixture(scope="module")
def real() -> EventRecordings:
    """The 200 recordings of the shared N-MNIST sample."""
    root = os.environ.get("SPIKEFORGE_DATA")
    path = None if root is None else Path(root) / "nmnist-sample" / "nmnist_sample200.npz"
    if path is None or not path.is_file():
        pytest.skip("no N-MNIST sample: set SPIKEFORGE_DATA to the shared datasets folder")
    return load_event_npz(path)


def ev(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """Events from ``(x, y, t, p)`` rows."""
    return np.array(list(rows), dtype=EVENT_DTYPE) if rows else np.zeros(0, EVENT_DTYPE)


def random_events(rng: np.random.Generator, n: int, size: int = 6,
                  span: int = 5000) -> np.ndarray:
    """Time-ordered events on a small patch, dense enough for the filters to matter
    (duplicate timestamps included)."""
    return make_events(rng.integers(0, size, n), rng.integers(0, size, n),
                       np.sort(rng.integers(0, span, n)), rng.integers(0, 2, n))


# ---------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------

def test_to_frames_bins_by_the_rule():
    # D = 100, 4 bins of 25 µs: [0,25) [25,50) [50,75) [75,100); t >= 100 dropped
    events = ev((1, 2, 0, 1), (1, 2, 24, 1), (3, 4, 25, 0), (5, 6, 74, 1), (5, 6, 75, 1),
                (7, 8, 99, 0), (7, 8, 100, 0))
    frames = to_frames(events, 4, duration_us=100)
    assert frames.shape == (4, 2, 34, 34) and frames.dtype == np.int32
    assert frames.sum() == 6
    assert frames[0, 1, 2, 1] == 2  # [bin, polarity, y, x]
    assert frames[1, 0, 4, 3] == 1
    assert frames[2, 1, 6, 5] == 1 and frames[3, 1, 6, 5] == 1
    assert frames[3, 0, 8, 7] == 1


def test_to_frames_default_duration_and_uneven_bins():
    # D = last t + 1 = 10; 3 bins: bin(t) = t*3 // 10 -> 0,0,0,0,1,1,1,2,2,2
    events = ev(*[(t, 0, t, 0) for t in range(10)])
    frames = to_frames(events, 3)
    assert [frames[b, 0, 0].nonzero()[0].tolist() for b in range(3)] == [
        [0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_to_frames_empty_small_sensor_and_errors():
    assert not to_frames(ev(), 5).any() and to_frames(ev(), 5).shape == (5, 2, 34, 34)
    merged = to_frames(ev((1, 0, 3, 0), (1, 0, 4, 1)), 1, sensor_size=(2, 1, 1))
    assert merged.shape == (1, 1, 1, 2) and merged[0, 0, 0, 1] == 2
    with pytest.raises(ValueError, match="outside the sensor"):
        to_frames(ev((34, 0, 1, 0)), 2)
    with pytest.raises(ValueError, match="polarity"):
        to_frames(ev((3, 0, 1, 2)), 2)
    with pytest.raises(ValueError, match="n_bins"):
        to_frames(ev((3, 0, 1, 0)), 0)


def test_bin_recordings_matches_to_frames_on_the_real_sample(real):
    for duration in (None, FIRST_SACCADE_US):
        frames = bin_recordings(real, 10, duration_us=duration)
        binary = bin_recordings(real, 10, duration_us=duration, binary=True, chunk=7)
        assert frames.shape == (200, 10, 2, 34, 34) and frames.dtype == np.uint8
        for i in range(len(real)):
            expected = to_frames(real[i], 10, real.sensor_size, duration)
            np.testing.assert_array_equal(frames[i], np.minimum(expected, 255))
            np.testing.assert_array_equal(binary[i], expected > 0)


def test_bin_recordings_saturates_and_handles_empty_recordings():
    hot = ev(*[(4, 5, t, 1) for t in range(300)])
    recs = EventRecordings.from_list([hot, ev(), ev((0, 0, 7, 0))], np.array([1, 2, 3]))
    out = np.zeros((3, 1, 2, 34, 34), np.uint8)
    frames = bin_recordings(recs, 1, chunk=2, out=out)
    assert frames is out
    assert frames[0, 0, 1, 5, 4] == 255 and to_frames(hot, 1)[0, 1, 5, 4] == 300
    assert not frames[1].any() and frames[2, 0, 0, 0, 0] == 1 and frames.sum() == 256


def test_bin_recordings_refuses_events_outside_the_sensor():
    recs = EventRecordings.from_list([ev((1, 1, 0, 0)), ev((2, 40, 5, 1))], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"event 1 at \(x, y\) = \(2, 40\)"):
        bin_recordings(recs, 2)


# ---------------------------------------------------------------------------------------
# denoise
# ---------------------------------------------------------------------------------------

def test_denoise_hand_made():
    events = ev((5, 5, 0, 1),      # nothing before it: dropped
                (5, 5, 10, 0),     # only its own pixel before it: dropped
                (6, 6, 20, 1),     # diagonal neighbour at 10: kept
                (20, 20, 30, 1),   # far from everything: dropped
                (4, 5, 1000, 0),   # neighbour (5,5) 990 µs before: kept
                (0, 0, 1500, 0),   # corner pixel, nothing near: dropped
                (1, 1, 1600, 1),   # diagonal of the corner, 100 µs later: kept
                (33, 33, 1700, 0))  # opposite corner, alone: dropped
    kept = denoise(events, filter_time_us=1000)
    assert kept.tolist() == [(6, 6, 20, 1), (4, 5, 1000, 0), (1, 1, 1600, 1)]
    # the window is strict: at exactly filter_time_us the neighbour no longer counts
    assert denoise(events, filter_time_us=990).tolist() == [(6, 6, 20, 1), (1, 1, 1600, 1)]


def _denoise_reference(events: np.ndarray, window: int) -> np.ndarray:
    x, y, t = (events[k].astype(np.int64) for k in ("x", "y", "t"))
    keep = [any(max(abs(x[k] - x[j]), abs(y[k] - y[j])) == 1 and t[k] - t[j] < window
                for j in range(k)) for k in range(len(t))]
    return events[np.array(keep, dtype=bool)]


def test_denoise_matches_brute_force():
    rng = np.random.default_rng(0)
    for window in (1, 50, 400):
        events = random_events(rng, 150)
        np.testing.assert_array_equal(denoise(events, window), _denoise_reference(events, window))


def test_denoise_refuses_unordered_time():
    with pytest.raises(ValueError, match="time-ordered"):
        denoise(ev((1, 1, 5, 0), (2, 2, 4, 0)))


# ---------------------------------------------------------------------------------------
# refractory period
# ---------------------------------------------------------------------------------------

def test_refractory_hand_made():
    events = ev((3, 3, 0, 1),      # first: kept
                (3, 3, 600, 0),    # 600 after the kept one, either polarity: dropped
                (4, 3, 700, 1),    # another pixel: kept
                (3, 3, 1100, 1),   # 1100 after the last KEPT (500 after the last): kept
                (3, 3, 2099, 1),   # 999 after: dropped
                (3, 3, 2100, 0))   # exactly the period: kept
    kept = refractory(events, 1000)
    assert kept.tolist() == [(3, 3, 0, 1), (4, 3, 700, 1), (3, 3, 1100, 1), (3, 3, 2100, 0)]
    assert refractory(events, 0).tolist() == events.tolist()
    with pytest.raises(ValueError, match="non-negative"):
        refractory(events, -1)


def _refractory_reference(events: np.ndarray, period: int) -> np.ndarray:
    last: dict[tuple[int, int], int] = {}
    keep = []
    for x, y, t, _ in events.tolist():
        ok = (x, y) not in last or t - last[(x, y)] >= period
        if ok:
            last[(x, y)] = t
        keep.append(ok)
    return events[np.array(keep, dtype=bool)]


def test_refractory_matches_brute_force():
    rng = np.random.default_rng(1)
    for period in (1, 100, 700):
        events = random_events(rng, 300)
        np.testing.assert_array_equal(refractory(events, period),
                                      _refractory_reference(events, period))


# ---------------------------------------------------------------------------------------
# crop and downsample
# ---------------------------------------------------------------------------------------

def test_crop_first_saccade():
    events = ev((1, 1, 0, 0), (1, 1, FIRST_SACCADE_US - 1, 1), (2, 2, FIRST_SACCADE_US, 0))
    assert len(crop_first_saccade(events)) == 2
    assert len(crop_first_saccade(events, saccade_us=1)) == 1


def test_first_saccade_default_sits_at_the_rate_minimum(real):
    # the evidence for the default: the summed event rate of the real recordings, in 2 ms
    # bins between 60 and 140 ms, is lowest within 5 ms of FIRST_SACCADE_US
    counts, edges = np.histogram(real.t, bins=np.arange(60_000, 140_001, 2_000))
    low = edges[np.argmin(counts)] + 1_000
    assert abs(low - FIRST_SACCADE_US) <= 5_000


def test_downsample():
    events = ev((0, 1, 5, 1), (33, 32, 6, 0), (7, 8, 7, 1))
    out, size = downsample(events, 4)
    assert size == (9, 9, 2)
    assert out.tolist() == [(0, 0, 5, 1), (8, 8, 6, 0), (1, 2, 7, 1)]
    assert events.tolist()[1] == (33, 32, 6, 0)  # input untouched
    assert downsample(events, 2)[1] == (17, 17, 2)
    assert downsample(events, 1)[0].tolist() == events.tolist()
    with pytest.raises(ValueError, match="factor"):
        downsample(events, 0)


# ---------------------------------------------------------------------------------------
# bulk forms == single-recording forms
# ---------------------------------------------------------------------------------------

def _same_per_recording(bulk: EventRecordings, recs: EventRecordings, single) -> None:
    assert len(bulk) == len(recs)
    np.testing.assert_array_equal(bulk.labels, recs.labels)
    np.testing.assert_array_equal(bulk.sample_ids, recs.sample_ids)
    assert bulk.offsets[0] == 0 and bulk.offsets[-1] == len(bulk.t)
    for i in range(len(recs)):
        np.testing.assert_array_equal(bulk[i], single(recs[i]), err_msg=f"recording {i}")


def test_bulk_forms_match_single_forms(real):
    recs = real.subset(slice(0, 40))
    _same_per_recording(denoise_recordings(recs, 5_000), recs, lambda e: denoise(e, 5_000))
    _same_per_recording(refractory_recordings(recs, 2_000), recs,
                        lambda e: refractory(e, 2_000))
    _same_per_recording(crop_first_saccade_recordings(recs), recs, crop_first_saccade)
    small = downsample_recordings(recs, 2)
    assert small.sensor_size == (17, 17, 2)
    _same_per_recording(small, recs, lambda e: downsample(e, 2)[0])
    # and the filters do something on real data without emptying it
    assert 0.5 < denoise_recordings(recs).t.size / recs.t.size < 1
    assert recs.x.dtype == denoise_recordings(recs).x.dtype == np.uint8


def test_bulk_forms_on_empty_recordings():
    recs = EventRecordings.from_list([ev(), ev((1, 1, 5, 0), (2, 2, 6, 1)), ev()],
                                     np.array([0, 1, 2]), sample_ids=np.array([7, 8, 9]))
    out = denoise_recordings(recs)
    np.testing.assert_array_equal(out.offsets, [0, 0, 1, 1])
    np.testing.assert_array_equal(out.sample_ids, [7, 8, 9])
    assert out[1].tolist() == [(2, 2, 6, 1)]
    np.testing.assert_array_equal(refractory_recordings(recs, 10).n_events, [0, 2, 0])


def test_sensor_size_is_respected():
    assert to_frames(ev((1, 1, 0, 0)), 1, sensor_size=SENSOR_SIZE).shape == (1, 2, 34, 34)
    with pytest.raises(ValueError, match="outside the sensor"):
        denoise(ev((5, 1, 0, 0)), sensor_size=(4, 4, 2))
