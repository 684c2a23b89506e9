"""Event transforms: binning into frames, denoising, refractory filter, first-saccade crop,
spatial downsampling.

Each transform comes twice: on one recording (a structured :data:`EVENT_DTYPE` array, the
layout tonic uses) and, suffixed ``_recordings``, on a whole :class:`EventRecordings` in
one pass over its flat columns, with no Python loop per recording (the simulated N-MNIST
holds 70,000 recordings and 280 million events). The filters that must walk events in
time order (denoise, refractory) and the binning run as Numba kernels; both forms share
one kernel, so they agree by construction, and :func:`to_frames` is a separate NumPy
implementation against which :func:`bin_recordings` is tested.

Conventions: ``sensor_size = (width, height, polarities)``; a frame is indexed
``[bin, polarity, y, x]`` with polarity 0 = OFF and 1 = ON (the value of ``p``); events
are time-ordered inside a recording (the filters check it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from tqdm.auto import tqdm

from spikeforge.events import SENSOR_SIZE, EventRecordings

#: default end of N-MNIST's first saccade, µs (see :func:`crop_first_saccade`)
FIRST_SACCADE_US = 90_000
#: default support window of :func:`denoise`, µs
DENOISE_US = 10_000

_NEVER = -(1 << 62)  # "no event yet": far enough back that t - _NEVER never underflows
_OK = -1


# ---------------------------------------------------------------------------------------
# checks shared by both forms
# ---------------------------------------------------------------------------------------

def _positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def _raise_bad_event(k: int, x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray | None,
                     sensor_size: tuple[int, int, int]) -> None:
    """The error for event ``k``, which a kernel flagged (outside the sensor, or earlier
    than the event before it in its recording)."""
    width, height, polarities = sensor_size
    xk, yk = int(x[k]), int(y[k])
    if not (0 <= xk < width and 0 <= yk < height):
        raise ValueError(f"event {k} at (x, y) = ({xk}, {yk}) lies outside the sensor "
                         f"{sensor_size}: pass the recording's sensor_size")
    if p is not None and polarities > 1 and not 0 <= int(p[k]) < polarities:
        raise ValueError(f"event {k} has polarity {int(p[k])}; the sensor has {polarities} "
                         f"(0 = OFF, 1 = ON)")
    raise ValueError(f"event {k} (t = {int(t[k])} µs) is earlier than the event before it "
                     f"(t = {int(t[k - 1])} µs): recordings must be time-ordered")


def _columns(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous ``x, y, t, p`` of a structured array (Numba compiles one kernel per
    layout; contiguous columns keep that to one per dtype)."""
    return tuple(np.ascontiguousarray(events[k]) for k in ("x", "y", "t", "p"))


def _single(events: np.ndarray) -> np.ndarray:
    """Offsets of one recording, so the bulk kernels serve the single-recording form."""
    return np.array([0, len(events)], dtype=np.int64)


def _select(recs: EventRecordings, keep: np.ndarray,
            sensor_size: tuple[int, int, int] | None = None) -> EventRecordings:
    """The events where ``keep`` is true, recordings (and their labels) unchanged."""
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return EventRecordings(recs.x[keep], recs.y[keep], recs.t[keep], recs.p[keep],
                           kept_before[recs.offsets], recs.labels.copy(),
                           None if recs.sample_ids is None else recs.sample_ids.copy(),
                           recs.sensor_size if sensor_size is None else sensor_size,
                           dict(recs.info))


# ---------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------

def to_frames(events: np.ndarray, n_bins: int, sensor_size: tuple[int, int, int] = SENSOR_SIZE,
              duration_us: int | None = None) -> np.ndarray:
    """Event counts per time bin, polarity and pixel: ``(n_bins, polarities, H, W)`` int32.

    With ``D = duration_us`` (default: the recording's last, i.e. largest, timestamp + 1),
    bin ``i`` covers ``[i·D/n, (i+1)·D/n)``, so an event at time ``t < D`` lands in bin
    ``floor(t·n / D)`` (integer arithmetic, no rounding error); events at ``t ≥ D`` are
    dropped. Channel = ``p`` (0 = OFF, 1 = ON); with ``polarities = 1`` both go to
    channel 0. Counts are exact (:func:`bin_recordings` saturates them at 255).
    """
    _positive("n_bins", n_bins)
    _positive("duration_us", duration_us, allow_none=True)
    width, height, polarities = sensor_size
    frames = np.zeros(n_bins * polarities * height * width, dtype=np.int64)
    if len(events) == 0:
        return frames.astype(np.int32).reshape(n_bins, polarities, height, width)
    x, y, t, p = (np.asarray(events[k]).astype(np.int64) for k in ("x", "y", "t", "p"))
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height) | (t < 0)
    if polarities > 1:
        outside |= (p < 0) | (p >= polarities)
    else:
        p = np.zeros_like(p)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        if t[k] < 0:
            raise ValueError(f"event {k} has a negative timestamp ({t[k]} µs)")
        _raise_bad_event(k, x, y, t, p, sensor_size)
    duration = int(t.max()) + 1 if duration_us is None else int(duration_us)
    inside = t < duration
    index = (((t[inside] * n_bins // duration) * polarities + p[inside]) * height
             + y[inside]) * width + x[inside]
    frames += np.bincount(index, minlength=frames.size)
    return frames.astype(np.int32).reshape(n_bins, polarities, height, width)


@njit(cache=True, nogil=True)
def _bin_kernel(x, y, t, p, offsets, first, stop, n_bins, duration, binary, width, height,
                polarities, out):  # pragma: no cover - compiled
    """Count the events of recordings ``[first, stop)`` into ``out[r - first]`` (uint8,
    saturating at 255, or 0/1 when ``binary``); ``duration <= 0``: each recording's own.
    Returns the index of the first event outside the sensor, or -1. ``out`` must be zero."""
    for r in range(first, stop):
        a = offsets[r]
        b = offsets[r + 1]
        if a == b:
            continue
        d = np.int64(duration)
        if d <= 0:
            d = np.int64(0)
            for k in range(a, b):
                if np.int64(t[k]) > d:
                    d = np.int64(t[k])
            d += 1
        frame = out[r - first]
        for k in range(a, b):
            tk = np.int64(t[k])
            xk = np.int64(x[k])
            yk = np.int64(y[k])
            pk = np.int64(p[k]) if polarities > 1 else np.int64(0)
            # bounds first: Numba does not check indices, a bad event would write elsewhere
            if xk < 0 or xk >= width or yk < 0 or yk >= height or pk < 0 or pk >= polarities:
                return k
            if tk < 0 or tk >= d:
                continue
            i = tk * n_bins // d
            if binary:
                frame[i, pk, yk, xk] = 1
            elif frame[i, pk, yk, xk] < 255:
                frame[i, pk, yk, xk] += 1
    return -1


def bin_recordings(recs: EventRecordings, n_bins: int, duration_us: int | None = None,
                   chunk: int = 4096, progress: bool = False, binary: bool = False,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Frames of every recording: ``(n, n_bins, polarities, H, W)`` uint8.

    Recording ``r`` gets exactly ``min(to_frames(recs[r], n_bins, recs.sensor_size,
    duration_us), 255)`` (or ``> 0`` as 0/1 when ``binary``). With ``duration_us=None``
    each recording is divided by its own duration (last timestamp + 1), so bins of
    different recordings span different times; pass a fixed ``duration_us`` (e.g.
    :data:`FIRST_SACCADE_US` after :func:`crop_first_saccade_recordings`) for bins of one
    width.

    One compiled pass over the events writes straight into the output, so memory beyond
    the output is constant; ``chunk`` recordings go per call (the progress bar's step).
    ``out``: a zeroed array to fill instead (e.g. a ``np.lib.format.open_memmap`` when
    the frames of 70,000 recordings do not fit in memory).
    """
    _positive("n_bins", n_bins)
    _positive("duration_us", duration_us, allow_none=True)
    _positive("chunk", chunk)
    width, height, polarities = recs.sensor_size
    shape = (len(recs), n_bins, polarities, height, width)
    if out is None:
        out = np.zeros(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 of shape {shape}, not {out.dtype} {out.shape}")
    offsets = np.ascontiguousarray(recs.offsets, dtype=np.int64)
    with tqdm(total=len(recs), desc="binning", unit="rec", disable=not progress,
              leave=False) as bar:
        for first in range(0, len(recs), chunk):
            stop = min(len(recs), first + chunk)
            bad = _bin_kernel(recs.x, recs.y, recs.t, recs.p, offsets, first, stop, n_bins,
                              0 if duration_us is None else int(duration_us), binary, width,
                              height, polarities, out[first:stop])
            if bad != _OK:
                _raise_bad_event(bad, recs.x, recs.y, recs.t, recs.p, recs.sensor_size)
            bar.update(stop - first)
    return out


# ---------------------------------------------------------------------------------------
# denoise
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _valid_event(x, y, t, k, width, height, previous):  # pragma: no cover - compiled
    """Event ``k`` as int64 ``(x, y, t)`` and whether it lies on the sensor and not before
    the recording's previous event (the filters' shared input check)."""
    xk = np.int64(x[k])
    yk = np.int64(y[k])
    tk = np.int64(t[k])
    return xk, yk, tk, 0 <= xk < width and 0 <= yk < height and tk >= previous


@njit(cache=True, nogil=True)
def _denoise_kernel(x, y, t, offsets, width, height, window, keep):  # pragma: no cover
    """``keep[k]``: an earlier event of the same recording within ``window`` µs at one of
    the 8 neighbours of event ``k``'s pixel. Returns the first bad event's index, or -1."""
    # one pixel of padding all round: the neighbours of an edge pixel need no bounds test
    last = np.empty((height + 2, width + 2), np.int64)
    for r in range(offsets.shape[0] - 1):
        last[:] = _NEVER
        previous = _NEVER
        for k in range(offsets[r], offsets[r + 1]):
            xk, yk, tk, ok = _valid_event(x, y, t, k, width, height, previous)
            if not ok:
                return k
            previous = tk
            supported = False
            for dy in range(3):
                for dx in range(3):
                    if (dx != 1 or dy != 1) and tk - last[yk + dy, xk + dx] < window:
                        supported = True
            keep[k] = supported
            last[yk + 1, xk + 1] = tk
    return -1


def _denoise_mask(x, y, t, offsets, window: int, sensor_size) -> np.ndarray:
    _positive("filter_time_us", window)
    keep = np.zeros(len(t), dtype=np.bool_)
    bad = _denoise_kernel(x, y, t, offsets, sensor_size[0], sensor_size[1], int(window), keep)
    if bad != _OK:
        _raise_bad_event(bad, x, y, t, None, sensor_size)
    return keep


def denoise(events: np.ndarray, filter_time_us: int = DENOISE_US,
            sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Drop events without support: event ``k`` at pixel ``(x, y)``, time ``t`` is kept
    iff an earlier event (earlier in the stream, either polarity, kept or not) hit one of
    the 8 neighbours ``(x±1, y±1)`` — not ``(x, y)`` itself — at a time ``t'`` with
    ``t - t' < filter_time_us``.

    Background noise is isolated single events; an edge moving across the sensor fires
    neighbouring pixels in quick succession. This is the rule tonic documents for its
    ``Denoise`` ("dropped if no other event occurred within a spatial neighbourhood of 1
    pixel and a temporal neighbourhood of filter_time"); here the neighbourhood is the
    full 3x3 ring and a recording starts with no history, so its first event is dropped.
    """
    x, y, t, _ = _columns(events)
    return events[_denoise_mask(x, y, t, _single(events), filter_time_us, sensor_size)]


def denoise_recordings(recs: EventRecordings,
                       filter_time_us: int = DENOISE_US) -> EventRecordings:
    """:func:`denoise` on every recording (history restarts with each recording)."""
    keep = _denoise_mask(recs.x, recs.y, recs.t, np.asarray(recs.offsets, np.int64),
                         filter_time_us, recs.sensor_size)
    return _select(recs, keep)


# ---------------------------------------------------------------------------------------
# refractory period
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _refractory_kernel(x, y, t, offsets, width, height, period, keep):  # pragma: no cover
    """``keep[k]``: at least ``period`` µs since the last kept event of event ``k``'s pixel.
    Returns the first bad event's index, or -1."""
    last = np.empty((height, width), np.int64)
    for r in range(offsets.shape[0] - 1):
        last[:] = _NEVER
        previous = _NEVER
        for k in range(offsets[r], offsets[r + 1]):
            xk, yk, tk, ok = _valid_event(x, y, t, k, width, height, previous)
            if not ok:
                return k
            previous = tk
            if tk - last[yk, xk] >= period:
                keep[k] = True
                last[yk, xk] = tk
    return -1


def _refractory_mask(x, y, t, offsets, period: int, sensor_size) -> np.ndarray:
    if int(period) != period or period < 0:
        raise ValueError(f"refractory_us must be a non-negative integer, not {period!r}")
    keep = np.zeros(len(t), dtype=np.bool_)
    bad = _refractory_kernel(x, y, t, offsets, sensor_size[0], sensor_size[1], int(period),
                             keep)
    if bad != _OK:
        _raise_bad_event(bad, x, y, t, None, sensor_size)
    return keep


def refractory(events: np.ndarray, refractory_us: int,
               sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Drop an event when its pixel's last *kept* event (either polarity) is less than
    ``refractory_us`` earlier: kept iff ``t - t_kept_last(x, y) ≥ refractory_us``.

    Per pixel, not per pixel and polarity: a DVS/ATIS pixel has one change detector that
    resets after an event of either sign, and tonic's ``RefractoryPeriod`` is per pixel
    too. Measuring from the last kept event (not the last event) makes the output obey the
    period: no two kept events of a pixel are closer than ``refractory_us``.
    ``refractory_us = 0`` keeps everything.
    """
    x, y, t, _ = _columns(events)
    return events[_refractory_mask(x, y, t, _single(events), refractory_us, sensor_size)]


def refractory_recordings(recs: EventRecordings, refractory_us: int) -> EventRecordings:
    """:func:`refractory` on every recording (each starts with every pixel ready)."""
    keep = _refractory_mask(recs.x, recs.y, recs.t, np.asarray(recs.offsets, np.int64),
                            refractory_us, recs.sensor_size)
    return _select(recs, keep)


# ---------------------------------------------------------------------------------------
# first saccade
# ---------------------------------------------------------------------------------------

def crop_first_saccade(events: np.ndarray, saccade_us: int = FIRST_SACCADE_US) -> np.ndarray:
    """The events with ``t < saccade_us``: N-MNIST's first of three saccades.

    The default, 90 ms, is where the event rate of the 200 real recordings of the shared
    sample has its first minimum (2 ms bins, summed: lowest at 86-90 ms; per recording,
    median 91 ms): the first sweep has stopped and the second not yet begun. It keeps 35.2%
    of the events. tonic's ``first_saccade_only`` cuts at 100 ms, where the second sweep is
    already under way (the rate is 1.7x its minimum); the two differ by 0.6% of the events.
    """
    return events[np.asarray(events["t"]) < saccade_us]


def crop_first_saccade_recordings(recs: EventRecordings,
                                  saccade_us: int = FIRST_SACCADE_US) -> EventRecordings:
    """:func:`crop_first_saccade` on every recording."""
    return _select(recs, recs.t < saccade_us)


# ---------------------------------------------------------------------------------------
# downsampling
# ---------------------------------------------------------------------------------------

def _downsampled_size(factor: int, sensor_size: tuple[int, int, int]) -> tuple[int, int, int]:
    _positive("factor", factor)
    width, height, polarities = sensor_size
    return math.ceil(width / factor), math.ceil(height / factor), polarities


def downsample(events: np.ndarray, factor: int,
               sensor_size: tuple[int, int, int] = SENSOR_SIZE,
               ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Coarser pixels: ``x' = x // factor``, ``y' = y // factor`` (every event kept, time and
    polarity unchanged). Returns the new events and the new sensor size
    ``(ceil(W / factor), ceil(H / factor), polarities)`` (34 x 34 by 4 -> 9 x 9: the last
    row and column of big pixels cover only 2 of the original pixels)."""
    new_size = _downsampled_size(factor, sensor_size)
    out = events.copy()
    out["x"] //= factor
    out["y"] //= factor
    return out, new_size


def downsample_recordings(recs: EventRecordings, factor: int) -> EventRecordings:
    """:func:`downsample` on every recording; the result carries the new sensor size."""
    new_size = _downsampled_size(factor, recs.sensor_size)
    return EventRecordings(recs.x // factor, recs.y // factor, recs.t.copy(), recs.p.copy(),
                           recs.offsets.copy(), recs.labels.copy(),
                           None if recs.sample_ids is None else recs.sample_ids.copy(),
                           new_size, dict(recs.info))


__all__ = ["DENOISE_US", "FIRST_SACCADE_US", "bin_recordings", "crop_first_saccade",
           "crop_first_saccade_recordings", "denoise", "denoise_recordings", "downsample",
           "downsample_recordings", "refractory", "refractory_recordings", "to_frames"]
