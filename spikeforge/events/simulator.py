"""An event camera watching a static image move: MNIST digits turned into N-MNIST-like
recordings, calibrated against the real N-MNIST sample (``docs/events.md``).

N-MNIST (Orchard et al. 2015) was recorded by an ATIS camera on a pan-tilt unit looking at
MNIST digits on an LCD monitor, moved in three saccades of about 100 ms each. This module
replays that recording with a model of each part (the knobs are :class:`SimulatorParams`):

**Monitor and optics.** The 28x28 image ``img`` (values ``v`` in [0, 1]) is shown with the
monitor's gamma, ``v ** display_gamma``, ``scale`` sensor pixels per MNIST pixel, and
blurred by a Gaussian of ``blur_sigma_px`` (σ): in a frame that moves with the digit the
sensor sees ::

    B(u, v) = sum_{m, n} img[m, n]^γ · box_m(u) · box_n(v),
    box_m(u) = Φ((u - m·scale) / σ) - Φ((u - (m + 1)·scale) / σ)

(each LCD pixel a ``scale``-wide square convolved with the blur; Φ the normal CDF; ``u``,
``v`` in sensor pixels from the digit's top-left corner), held on a grid of sensor pixels
(:func:`scene`) and sampled bilinearly between grid points.

**Saccades.** The digit's corner sits at ``(ox(t), oy(t))`` sensor pixels
(:func:`saccade_path`): straight lines between the keypoints ``saccade_x`` and
``saccade_y`` (measured from the real sample), convolved with a Gaussian of
``saccade_smoothing_ms`` in time (the motors cannot change speed at once). Each recording
delays the whole path by ``N(0, saccade_jitter_us)`` and shifts it by
``N(0, position_jitter_px)`` per axis. Pixel ``(x, y)`` sees ::

    I(t) = B(y + 0.5 - oy(t), x + 0.5 - ox(t))

**Photoreceptor.** Log intensity, ``R(t) = log(I(t) + background)`` (the monitor's black
still gives light: ``background`` is all light that does not come from the digit,
relative to the digit's white), through a first-order low-pass filter of time constant
τ = ``photoreceptor_tau_us``: ``τ dL/dt = R - L``.

**Events.** Each pixel compares ``L`` with the level ``L_ref`` memorised at its last
event: ``L - L_ref >= C_on`` emits an ON event, ``L_ref - L >= C_off`` an OFF event, and
the memorised level moves by that threshold (several events if the change spans several
thresholds). After each event the pixel is blind for ``refractory_us``; its memorised
level follows ``L`` while blind (the reset switch is closed), so change during that time
is lost. Thresholds differ from pixel to pixel (fixed-pattern mismatch, a property of the
camera, drawn once from ``sensor_seed``): ::

    C_on(x, y) = contrast_threshold_on · (1 + threshold_mismatch · N(0, 1)), likewise C_off

At the start ``L_ref = L(0) + U``, ``U`` uniform in ``reference_spread · [-C_on, C_off]``:
the camera was not reset just before the recording.

**Time.** ``R`` is computed every ``time_step_us`` and taken as linear in between (the
filter's response to that ramp is exact); an event's time is where ``L``, interpolated
linearly within the step, crosses the threshold (truncated to integer µs), so events fall
anywhere inside a step and several can fall in one.

**Background noise.** Shot noise: every pixel emits spurious events as a Poisson process
of ``noise_rate_hz``, a fraction ``noise_on_fraction`` of them ON (the real sample's
noise is nearly all ON). A noise event resets the pixel like a real one (new level,
refractory period), so noise and signal interact as on the chip.

Random numbers: the mismatch from ``sensor_seed``; each recording's jitter and the key of
its noise and initial levels from its own generator, which :func:`simulate_recordings`
keys on ``(seed, sample id)``, so a recording does not depend on batching or order. The
noise and initial levels come from a counter-based hash (splitmix64) of that key and the
pixel index inside the compiled kernel, so threads cannot change them either.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from numba import njit, prange

from spikeforge.errors import ConfigError, DatasetError
from spikeforge.events import SENSOR_SIZE, EventRecordings, make_events

WIDTH, HEIGHT = SENSOR_SIZE[0], SENSOR_SIZE[1]
IMAGE_SIDE = 28
CANVAS_MARGIN = 4  # sensor pixels of blur and resampling room around the shown digit
#: events one recording may hold before the kernel runs it again with more room
INITIAL_CAPACITY = 16_384

# Calibrated against nmnist_sample200.npz (docs/events.md, "Calibration against the real
# sample"): the digit's top-left corner in sensor pixels at each keypoint (time in ms).
SACCADE_X = ((0, 0.17), (5, 0.17), (10, 0.19), (15, 0.23), (20, 0.25), (25, 0.25), (30, 0.22),
             (35, 0.23), (40, 0.32), (45, 0.53), (50, 0.75), (55, 0.96), (60, 1.23), (65, 1.56),
             (70, 2.03), (75, 2.12), (80, 2.18), (85, 2.22), (90, 2.24), (95, 2.26), (100, 2.3),
             (105, 2.34), (110, 2.39), (115, 2.46), (120, 2.53), (125, 2.69), (130, 2.99),
             (135, 3.35), (140, 3.72), (145, 3.99), (150, 4.23), (155, 4.47), (160, 4.66),
             (165, 4.82), (170, 4.97), (175, 5.09), (180, 5.19), (185, 5.26), (190, 5.28),
             (195, 5.28), (200, 5.3), (205, 5.37), (210, 5.41), (215, 5.43), (220, 5.44),
             (225, 5.44), (230, 5.47), (235, 5.02), (240, 4.55), (245, 4.13), (250, 3.72),
             (255, 3.28), (260, 2.78), (265, 2.29), (270, 1.89), (275, 1.56), (280, 1.35),
             (285, 1.16), (290, 1.05), (295, 0.99), (300, 0.99), (305, 0.99))
SACCADE_Y = ((0, 1.73), (5, 1.73), (10, 1.79), (15, 1.91), (20, 2.11), (25, 2.36), (30, 2.74),
             (35, 3.24), (40, 3.75), (45, 4.24), (50, 4.77), (55, 5.35), (60, 5.81), (65, 5.97),
             (70, 6.08), (75, 6.1), (80, 6.11), (85, 6.12), (90, 6.12), (95, 6.12), (100, 6.13),
             (105, 6.14), (110, 6.15), (115, 6.16), (120, 6.17), (125, 6.16), (130, 6.07),
             (135, 5.79), (140, 5.32), (145, 4.74), (150, 4.14), (155, 3.56), (160, 3.02),
             (165, 2.51), (170, 2.11), (175, 1.88), (180, 1.73), (185, 1.64), (190, 1.6),
             (195, 1.6), (200, 1.57), (205, 1.47), (210, 1.41), (215, 1.38), (220, 1.36),
             (225, 1.36), (230, 1.32), (235, 1.33), (240, 1.39), (245, 1.4), (250, 1.37),
             (255, 1.32), (260, 1.26), (265, 1.22), (270, 1.22), (275, 1.27), (280, 1.26),
             (285, 1.21), (290, 1.14), (295, 1.09), (300, 1.09), (305, 1.09))


@dataclass(frozen=True)
class SimulatorParams:
    """Every knob of the simulated camera and scene, with its calibrated default."""

    #: log-intensity rise that makes one ON event (mean over pixels)
    contrast_threshold_on: float = 0.0849
    #: log-intensity fall that makes one OFF event (mean over pixels)
    contrast_threshold_off: float = 0.0880
    #: relative standard deviation of the per-pixel thresholds (fixed pattern)
    threshold_mismatch: float = 0.2
    #: seed of the camera's fixed-pattern mismatch (the same camera for every recording)
    sensor_seed: int = 0
    #: time a pixel stays blind after each event, µs
    refractory_us: float = 1000.0
    #: luminance of the monitor's black relative to its white: L = log(I + background)
    background: float = 1.0
    #: time constant of the photoreceptor's low-pass filter on log intensity, µs (0: none)
    photoreceptor_tau_us: float = 2000.0
    #: standard deviation of the Gaussian blur of the optics, sensor pixels
    blur_sigma_px: float = 0.3
    #: sensor pixels per MNIST pixel
    scale: float = 1.0
    #: the monitor's gamma: an LCD pixel of value v emits v ** display_gamma of white
    display_gamma: float = 2.2
    #: shot-noise events per pixel per second
    noise_rate_hz: float = 0.4
    #: fraction of the noise events that are ON
    noise_on_fraction: float = 0.96
    #: the polarity bit a brightening pixel is written with. The real sample says 0: while
    #: the (bright) digit moves down, its p = 1 events lie above its p = 0 events, on the
    #: trailing edge, which darkens (docs/events.md, "Polarity")
    brightening_polarity: int = 0
    #: spread of the initial memorised level, as a fraction of the thresholds
    reference_spread: float = 1.0
    #: (time ms, x px) keypoints of the digit's top-left corner; straight lines in between
    saccade_x: tuple[tuple[float, float], ...] = SACCADE_X
    #: (time ms, y px) keypoints of the digit's top-left corner; straight lines in between
    saccade_y: tuple[tuple[float, float], ...] = SACCADE_Y
    #: standard deviation of the Gaussian that smooths the path's corners (acceleration), ms
    saccade_smoothing_ms: float = 1.0
    #: standard deviation of each recording's random shift of the whole saccade timing, µs
    saccade_jitter_us: float = 3000.0
    #: standard deviation of each recording's random shift of the digit's position, px
    position_jitter_px: float = 0.3
    #: length of a recording, µs
    duration_us: int = 308_000
    #: internal simulation step (log intensity is linear within a step), µs
    time_step_us: int = 1000

    def __post_init__(self) -> None:
        checks: list[tuple[str, float, float, bool]] = [  # (field, low, high, low open)
            ("contrast_threshold_on", 0.0, 10.0, True),
            ("contrast_threshold_off", 0.0, 10.0, True),
            ("threshold_mismatch", 0.0, 0.5, False),
            ("refractory_us", 0.0, 100_000.0, False),
            ("background", 0.0, 100.0, True),
            ("photoreceptor_tau_us", 0.0, 100_000.0, False),
            ("blur_sigma_px", 0.0, 3.0, False),
            ("scale", 0.5, 1.2, False),
            ("display_gamma", 0.2, 5.0, False),
            ("noise_rate_hz", 0.0, 10_000.0, False),
            ("noise_on_fraction", 0.0, 1.0, False),
            ("reference_spread", 0.0, 1.0, False),
            ("saccade_smoothing_ms", 0.0, 50.0, False),
            ("saccade_jitter_us", 0.0, 20_000.0, False),
            ("position_jitter_px", 0.0, 3.0, False),
            ("duration_us", 1_000.0, 10_000_000.0, False),
            ("time_step_us", 10.0, 10_000.0, False),
        ]
        for name, low, high, low_open in checks:
            value = getattr(self, name)
            bad_type = not isinstance(value, numbers.Real) or isinstance(value, bool)
            if bad_type or not math.isfinite(value) or not (
                    (low < value if low_open else low <= value) and value <= high):
                bracket = "(" if low_open else "["
                raise ConfigError(f"SimulatorParams.{name} = {value!r}: must be a number in "
                                  f"{bracket}{low:g}, {high:g}]")
        if self.brightening_polarity not in (0, 1) or isinstance(self.brightening_polarity,
                                                                   bool):
            raise ConfigError(f"SimulatorParams.brightening_polarity = "
                              f"{self.brightening_polarity!r}: must be 0 or 1")
        for name in ("duration_us", "time_step_us", "sensor_seed"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ConfigError(f"SimulatorParams.{name} = {value!r}: must be an integer")
        if self.sensor_seed < 0:
            raise ConfigError(f"SimulatorParams.sensor_seed = {self.sensor_seed}: must be >= 0")
        for name in ("saccade_x", "saccade_y"):
            points = getattr(self, name)
            _check_keypoints(name, points, self.duration_us / 1000.0)
            # plain float tuples: hashable (caches), and the same after a JSON round trip
            object.__setattr__(self, name, tuple((float(t), float(v)) for t, v in points))


def _check_keypoints(name: str, points: object, duration_ms: float) -> None:
    """Keypoints must be ``((t_ms, px), ...)`` with rising times inside the recording and
    positions that keep the digit near the sensor."""
    rule = (f"must be a non-empty sequence of (time ms, position px) pairs with strictly "
            f"rising times in [0, duration_us / 1000 = {duration_ms:g}] and positions in "
            f"[-{CANVAS_MARGIN}, {WIDTH - IMAGE_SIDE + CANVAS_MARGIN}]")
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"SimulatorParams.{name} = {points!r}: {rule}") from None
    if (arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0 or not np.isfinite(arr).all()
            or np.any(np.diff(arr[:, 0]) <= 0) or arr[0, 0] < 0 or arr[-1, 0] > duration_ms
            or arr[:, 1].min() < -CANVAS_MARGIN
            or arr[:, 1].max() > WIDTH - IMAGE_SIDE + CANVAS_MARGIN):
        raise ConfigError(f"SimulatorParams.{name} = {points!r}: {rule}")


# ------------------------------------------------------------------------------- saccades


@lru_cache(maxsize=16)
def _smoothed_axis(keypoints: tuple[tuple[float, float], ...], smoothing_ms: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(t_ms, position)`` on a 0.1 ms grid: the piecewise-linear path through
    ``keypoints`` (constant beyond the ends) convolved with a Gaussian of ``smoothing_ms``."""
    kp = np.asarray(keypoints, dtype=np.float64)
    pad = 4.0 * smoothing_ms + 1.0
    grid = np.arange(kp[0, 0] - pad, kp[-1, 0] + pad + _FINE_MS, _FINE_MS)
    pos = np.interp(grid, kp[:, 0], kp[:, 1])
    if smoothing_ms > 0:
        half = int(math.ceil(4.0 * smoothing_ms / _FINE_MS))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * _FINE_MS / smoothing_ms) ** 2)
        padded = np.concatenate([np.full(half, pos[0]), pos, np.full(half, pos[-1])])
        pos = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    grid.setflags(write=False)
    pos.setflags(write=False)
    return grid, pos


_FINE_MS = 0.1  # grid of the smoothed saccade path


def _n_steps(params: SimulatorParams) -> int:
    return int(math.ceil(params.duration_us / params.time_step_us))


def saccade_path(params: SimulatorParams = SimulatorParams(),  # noqa: B008 - frozen
                 shift_us: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t_us, dx, dy)``: the simulation steps' times and where the digit's top-left
    corner sits on the sensor then (sensor pixels, x right, y down), the camera's motion
    seen from the sensor. ``shift_us`` delays the saccades (a recording's timing jitter).
    The last step is ``duration_us``."""
    steps = _n_steps(params)
    t_us = np.minimum(np.arange(steps + 1, dtype=np.float64) * params.time_step_us,
                      params.duration_us)
    t_ms = (t_us - shift_us) / 1000.0
    out = [np.interp(t_ms, *_smoothed_axis(axis, float(params.saccade_smoothing_ms)))
           for axis in (params.saccade_x, params.saccade_y)]
    return t_us, out[0], out[1]


# ------------------------------------------------------------------------- scene, sensor


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


@lru_cache(maxsize=8)
def _optics_matrix(scale: float, blur_sigma_px: float) -> np.ndarray:
    """``M (canvas, 28)``: canvas sample ``r`` (centre ``u = r - margin + 0.5`` sensor px
    from the digit's corner) gets ``sum_m M[r, m] · img[m]`` along one axis: the LCD pixel
    ``m`` as a box ``[m·scale, (m+1)·scale)`` convolved with the blur. The image is
    separable, ``B = M · img · Mᵀ``."""
    size = int(math.ceil(IMAGE_SIDE * scale)) + 2 * CANVAS_MARGIN
    u = np.arange(size, dtype=np.float64) - CANVAS_MARGIN + 0.5
    lo = np.arange(IMAGE_SIDE, dtype=np.float64) * scale
    hi = lo + scale
    if blur_sigma_px > 0:
        m = (_normal_cdf((u[:, None] - lo[None, :]) / blur_sigma_px)
             - _normal_cdf((u[:, None] - hi[None, :]) / blur_sigma_px))
    else:  # no blur: the canvas sample takes the LCD pixel it lies in
        m = ((u[:, None] >= lo[None, :]) & (u[:, None] < hi[None, :])).astype(np.float64)
    m[np.abs(m) < 1e-7] = 0.0  # exact zeros far from the digit let the kernel skip pixels
    return m.astype(np.float32)


def scene(images: np.ndarray, params: SimulatorParams = SimulatorParams()  # noqa: B008
          ) -> np.ndarray:
    """The blurred, scaled digits ``B`` (``(n, S, S)`` float32 in [0, 1]) on a grid of
    sensor pixels, ``CANVAS_MARGIN`` pixels of black around the digit."""
    m = _optics_matrix(float(params.scale), float(params.blur_sigma_px))
    shown = images.astype(np.float32)
    if params.display_gamma != 1.0:
        shown = shown ** np.float32(params.display_gamma)
    out = np.matmul(np.matmul(m, shown), m.T)
    return np.clip(out, 0.0, 1.0, out=out)


@lru_cache(maxsize=8)
def sensor_thresholds(params: SimulatorParams = SimulatorParams()  # noqa: B008
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The camera's per-pixel thresholds ``(C_on, C_off)``, each ``(34 * 34,)`` float64 in
    row-major ``y * 34 + x`` order: ``C · (1 + mismatch · N(0, 1))``, at least ``C / 4``
    (a pixel with no threshold would fire without end)."""
    rng = np.random.default_rng(np.random.SeedSequence([params.sensor_seed, 0x5E45]))
    out = []
    for mean in (params.contrast_threshold_on, params.contrast_threshold_off):
        c = mean * (1.0 + params.threshold_mismatch * rng.standard_normal(WIDTH * HEIGHT))
        c = np.maximum(c, 0.25 * mean)
        c.setflags(write=False)
        out.append(c)
    return out[0], out[1]


# ------------------------------------------------------------------------------ kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PIXEL_SALT = np.uint64(0xD1B54A32D192ED03)


@njit(cache=True, inline="always")
def _splitmix(state):  # pragma: no cover - compiled
    """splitmix64: the next state and a 64-bit output."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform(state):  # pragma: no cover - compiled
    """A uniform float in [0, 1) from the top 53 bits."""
    state, z = _splitmix(state)
    return state, float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _exponential_us(state, rate_per_us):  # pragma: no cover - compiled
    """Time to the next Poisson event, µs (infinite at rate 0)."""
    state, u = _uniform(state)
    if rate_per_us <= 0.0:
        return state, np.inf
    return state, -math.log(1.0 - u) / rate_per_us


@njit(cache=True, inline="always")
def _intensity(canvas, fy, fx):  # pragma: no cover - compiled
    """Bilinear sample of ``canvas`` at ``(fy, fx)``; black outside."""
    h, w = canvas.shape
    y0 = int(math.floor(fy))
    x0 = int(math.floor(fx))
    wy = fy - y0
    wx = fx - x0
    total = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= h:
            continue
        wgt_y = wy if dy == 1 else 1.0 - wy
        for dx in range(2):
            xx = x0 + dx
            if 0 <= xx < w:
                total += wgt_y * (wx if dx == 1 else 1.0 - wx) * canvas[yy, xx]
    return total


@njit(cache=True, nogil=True)
def _simulate_into(canvas, ox, oy, t_steps, key, c_on, c_off, background, tau_us,
                   refractory_us, rate_per_us, noise_on_fraction, rise_bit, reference_spread,
                   skip_level, ex, ey, et, ep):  # pragma: no cover - compiled
    """One recording, pixel by pixel, into ``ex, ey, et (float µs), ep``; returns the
    number of events (pixel order, each pixel's in time order), or -1 if they overflow."""
    h, w = canvas.shape
    capacity = ex.shape[0]
    n_steps = t_steps.shape[0] - 1
    duration = t_steps[n_steps]
    margin = CANVAS_MARGIN
    # which canvas cells can change a pixel's log intensity by a visible amount
    seen = np.zeros((h + 1, w + 1), np.int64)
    for r in range(h):
        for c in range(w):
            seen[r + 1, c + 1] = (seen[r, c + 1] + seen[r + 1, c] - seen[r, c]
                                  + (1 if canvas[r, c] > skip_level else 0))
    ox_lo, ox_hi = ox.min(), ox.max()
    oy_lo, oy_hi = oy.min(), oy.max()
    n = 0
    for y in range(HEIGHT):
        r0 = max(0, int(math.floor(y - oy_hi + margin)))
        r1 = min(h, int(math.floor(y - oy_lo + margin)) + 2)
        for x in range(WIDTH):
            pixel = y * WIDTH + x
            c0 = max(0, int(math.floor(x - ox_hi + margin)))
            c1 = min(w, int(math.floor(x - ox_lo + margin)) + 2)
            varies = (r1 > r0 and c1 > c0
                      and seen[r1, c1] - seen[r0, c1] - seen[r1, c0] + seen[r0, c0] > 0)
            state = key ^ (np.uint64(pixel + 1) * _PIXEL_SALT)
            state, _ = _splitmix(state)
            con = c_on[pixel]
            coff = c_off[pixel]
            level0 = math.log(_intensity(canvas, y - oy[0] + margin, x - ox[0] + margin)
                              + background)
            state, u = _uniform(state)
            ref = level0 + reference_spread * (u * (con + coff) - con)
            blind_until = -np.inf
            state, gap = _exponential_us(state, rate_per_us)
            t_noise = gap
            level_prev = level0  # the filtered level (steady before the saccades)
            raw_prev = level0
            # a pixel that never sees the digit keeps its level: one step covers it all
            last = n_steps if varies else 1
            for k in range(1, last + 1):
                t0 = t_steps[k - 1] if varies else 0.0
                t1 = t_steps[k] if varies else duration
                if varies:
                    raw1 = math.log(_intensity(canvas, y - oy[k] + margin,
                                               x - ox[k] + margin) + background)
                    if tau_us > 0.0:  # exact response of the low-pass to a ramp input
                        slope_tau = (raw1 - raw_prev) / (t1 - t0) * tau_us
                        level1 = (raw1 - slope_tau + (level_prev - raw_prev + slope_tau)
                                  * math.exp(-(t1 - t0) / tau_us))
                    else:
                        level1 = raw1
                    raw_prev = raw1
                else:
                    level1 = level0
                tc = t0
                lc = level_prev
                while tc < t1:
                    if blind_until > tc:
                        if blind_until >= t1:  # blind for the rest of the step
                            while t_noise < t1:
                                state, gap = _exponential_us(state, rate_per_us)
                                t_noise += gap
                            ref = level1
                            break
                        lc = lc + (level1 - lc) * (blind_until - tc) / (t1 - tc)
                        tc = blind_until
                        ref = lc
                        while t_noise < tc:  # noise while blind is lost
                            state, gap = _exponential_us(state, rate_per_us)
                            t_noise += gap
                    t_cross = np.inf
                    polarity = 1 - rise_bit
                    target = ref
                    if level1 > lc:
                        target = ref + con
                        polarity = rise_bit
                        if level1 >= target:
                            t_cross = tc + (target - lc) / (level1 - lc) * (t1 - tc)
                    elif level1 < lc:
                        target = ref - coff
                        if level1 <= target:
                            t_cross = tc + (target - lc) / (level1 - lc) * (t1 - tc)
                    if t_noise < t1 and t_noise < t_cross:
                        if n >= capacity:
                            return -1
                        state, u = _uniform(state)
                        lc = lc + (level1 - lc) * (t_noise - tc) / (t1 - tc)
                        ex[n], ey[n], et[n] = x, y, t_noise
                        ep[n] = 1 if u < noise_on_fraction else 0
                        n += 1
                        ref = lc
                        tc = t_noise
                        blind_until = tc + refractory_us
                        state, gap = _exponential_us(state, rate_per_us)
                        t_noise += gap
                    elif t_cross <= t1:
                        if n >= capacity:
                            return -1
                        ex[n], ey[n], et[n], ep[n] = x, y, t_cross, polarity
                        n += 1
                        ref = target
                        lc = target
                        tc = t_cross
                        blind_until = tc + refractory_us
                    else:
                        break
                level_prev = level1
    return n


@njit(cache=True, parallel=True)
def _simulate_batch(canvases, oxs, oys, t_steps, keys, c_on, c_off, background, tau_us,
                    refractory_us, rate_per_us, noise_on_fraction, rise_bit, reference_spread,
                    skip_level, out_x, out_y, out_t, out_p, counts):  # pragma: no cover - compiled
    """Recordings in parallel, each time-sorted into its row of ``out_*`` (``counts[i]``
    events, -1 where the row was too short)."""
    n, capacity = out_x.shape
    duration = t_steps[t_steps.shape[0] - 1]
    for i in prange(n):
        ex = np.empty(capacity, np.uint8)
        ey = np.empty(capacity, np.uint8)
        et = np.empty(capacity, np.float64)
        ep = np.empty(capacity, np.uint8)
        m = _simulate_into(canvases[i], oxs[i], oys[i], t_steps, keys[i], c_on, c_off,
                           background, tau_us, refractory_us, rate_per_us, noise_on_fraction,
                           rise_bit,
                           reference_spread, skip_level, ex, ey, et, ep)
        counts[i] = m
        if m < 0:
            continue
        t_int = np.empty(m, np.int64)
        for j in range(m):
            t_int[j] = min(int(et[j]), int(duration) - 1)  # truncate to integer µs
        order = np.argsort(t_int, kind="mergesort")  # stable: ties keep pixel order
        for j in range(m):
            src = order[j]
            out_x[i, j] = ex[src]
            out_y[i, j] = ey[src]
            out_t[i, j] = t_int[src]
            out_p[i, j] = ep[src]


# ----------------------------------------------------------------------------- drivers


def _as_images(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 2 and arr.shape == (IMAGE_SIDE, IMAGE_SIDE):
        arr = arr[None]
    if arr.ndim == 2 and arr.shape[1] == IMAGE_SIDE * IMAGE_SIDE:
        arr = arr.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    if arr.ndim != 3 or arr.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"images of shape {np.shape(images)}: the simulator takes (28, 28), "
                           f"(n, 28, 28) or (n, 784) arrays")
    arr = arr.astype(np.float32, copy=False)
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0):
        raise DatasetError("images must hold intensities in [0, 1] (divide 8-bit images "
                           "by 255)")
    return arr


def _recording_setup(rng: np.random.Generator, params: SimulatorParams
                     ) -> tuple[np.ndarray, np.ndarray, np.uint64]:
    """One recording's random draws: its saccade path (timing and position jitter) and the
    key of its per-pixel noise and initial levels."""
    shift = rng.normal(0.0, params.saccade_jitter_us) if params.saccade_jitter_us else 0.0
    _, ox, oy = saccade_path(params, shift)
    if params.position_jitter_px:
        jx, jy = rng.normal(0.0, params.position_jitter_px, 2)
        ox, oy = ox + jx, oy + jy
    key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    return ox, oy, key


def _run_batch(canvases: np.ndarray, oxs: np.ndarray, oys: np.ndarray, keys: np.ndarray,
               params: SimulatorParams) -> list[tuple[np.ndarray, ...]]:
    """``[(x, y, t, p), ...]`` per recording, growing the buffer of those that overflow."""
    t_steps, _, _ = saccade_path(params)
    c_on, c_off = sensor_thresholds(params)
    # a canvas value below this moves log intensity by under 1 % of a threshold
    skip_level = 0.01 * params.background * min(c_on.min(), c_off.min())
    todo = np.arange(len(canvases))
    capacity = INITIAL_CAPACITY
    results: list[tuple[np.ndarray, ...] | None] = [None] * len(canvases)
    while len(todo):
        shape = (len(todo), capacity)
        out_x, out_y = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
        out_t, out_p = np.empty(shape, np.uint32), np.empty(shape, np.uint8)
        counts = np.empty(len(todo), np.int64)
        _simulate_batch(canvases[todo], oxs[todo], oys[todo], t_steps, keys[todo], c_on,
                        c_off, float(params.background), float(params.photoreceptor_tau_us),
                        float(params.refractory_us),
                        params.noise_rate_hz * 1e-6, float(params.noise_on_fraction),
                        int(params.brightening_polarity),
                        float(params.reference_spread), float(skip_level),
                        out_x, out_y, out_t, out_p, counts)
        for row, i in enumerate(todo):
            m = counts[row]
            if m >= 0:
                results[i] = (out_x[row, :m].copy(), out_y[row, :m].copy(),
                              out_t[row, :m].copy(), out_p[row, :m].copy())
        todo = todo[counts < 0]
        capacity *= 4
    return results  # type: ignore[return-value]


def simulate_recording(image: np.ndarray, rng: np.random.Generator,
                       params: SimulatorParams = SimulatorParams()  # noqa: B008 - frozen
                       ) -> np.ndarray:
    """One image ``(28, 28)`` (or ``(784,)``) in [0, 1] seen by the camera during the three
    saccades: a time-ordered structured :data:`~spikeforge.events.EVENT_DTYPE` array.
    ``rng`` draws the recording's saccade jitter, initial levels and noise."""
    image = np.asarray(image)
    if image.size != IMAGE_SIDE * IMAGE_SIDE:
        raise DatasetError(f"image of shape {image.shape}: the simulator takes a (28, 28) "
                           f"or (784,) image")
    img = _as_images(image.reshape(IMAGE_SIDE, IMAGE_SIDE))
    ox, oy, key = _recording_setup(rng, params)
    (x, y, t, p), = _run_batch(scene(img, params), ox[None], oy[None],
                               np.array([key], np.uint64), params)
    return make_events(x, y, t, p)


def recording_rng(seed: int, sample_id: int) -> np.random.Generator:
    """The generator of one recording in :func:`simulate_recordings`: from ``(seed,
    sample_id)`` alone."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(sample_id),)))


def simulate_recordings(images: np.ndarray, labels: np.ndarray, seed: int,
                        params: SimulatorParams = SimulatorParams(),  # noqa: B008 - frozen
                        sample_ids: np.ndarray | None = None, progress: bool = True,
                        chunk: int = 256) -> EventRecordings:
    """Simulate a batch of images ``(n, 28, 28)`` or ``(n, 784)`` in [0, 1].

    Recording ``i`` draws from :func:`recording_rng` ``(seed, sample_ids[i])`` (or
    ``(seed, i)`` without ``sample_ids``), so it is the same whatever the ``chunk`` size,
    order or batch it is simulated in. ``chunk`` recordings go through the compiled kernel
    at a time (in parallel over numba's threads)."""
    from tqdm import tqdm

    arr = _as_images(images)
    n = len(arr)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise DatasetError(f"labels of shape {labels.shape} for {n} images")
    ids = None if sample_ids is None else np.asarray(sample_ids, np.int64)
    if ids is not None and ids.shape != (n,):
        raise DatasetError(f"sample_ids of shape {ids.shape} for {n} images")
    if ids is not None and len(ids) and ids.min() < 0:
        raise DatasetError("sample_ids must be >= 0 (they key each recording's generator)")
    if chunk < 1:
        raise ConfigError(f"chunk = {chunk}: must be >= 1")
    if int(seed) < 0:
        raise ConfigError(f"seed = {seed}: must be >= 0")
    keys_of = ids if ids is not None else np.arange(n)
    parts: list[tuple[np.ndarray, ...]] = []
    with tqdm(total=n, desc="simulating events", unit="rec", disable=not progress) as bar:
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            setups = [_recording_setup(recording_rng(seed, k), params) for k in keys_of[lo:hi]]
            oxs = np.stack([s[0] for s in setups])
            oys = np.stack([s[1] for s in setups])
            keys = np.array([s[2] for s in setups], np.uint64)
            parts.extend(_run_batch(scene(arr[lo:hi], params), oxs, oys, keys, params))
            bar.update(hi - lo)
    sizes = np.array([len(part[0]) for part in parts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def column(k: int, dtype: type) -> np.ndarray:
        return (np.concatenate([part[k] for part in parts]) if parts
                else np.zeros(0, dtype))

    recs = EventRecordings(column(0, np.uint8), column(1, np.uint8), column(2, np.uint32),
                           column(3, np.uint8), offsets, labels, ids)
    recs.info["simulator"] = {"seed": int(seed),
                              **{f.name: getattr(params, f.name) for f in fields(params)}}
    return recs


# -------------------------------------------------------------------------- statistics

#: bin width of the time profiles in :func:`event_statistics`, µs
STAT_BIN_US = 5_000
#: the time profiles span [0, STAT_SPAN_US)
STAT_SPAN_US = 350_000
#: boundaries between the three saccades of N-MNIST, ms (the rate's two minima in the sample)
SACCADE_BOUNDS_MS = (90.0, 220.0)


def event_statistics(recs: EventRecordings,
                     saccade_bounds_ms: tuple[float, float] = SACCADE_BOUNDS_MS) -> dict:
    """Calibration statistics of a set of recordings.

    Scalars: ``recordings``; ``events_mean``, ``events_std``, ``events_median`` (events per
    recording); ``on_fraction``; ``spread_x``, ``spread_y`` (standard deviation of the
    events' x and y within a recording, mean over recordings); ``active_fraction`` (pixels
    with at least one event, of 34 x 34); ``events_per_active_pixel``; ``saccade_1..3``
    (events per recording in each saccade's window); ``isi_median_ms`` and
    ``isi_below_1ms`` (intervals between consecutive events of one pixel: their median,
    and the fraction shorter than 1 ms); ``same_polarity`` (fraction of a pixel's
    consecutive events with equal polarity); ``first_event_ms``, ``last_event_ms`` (mean
    over recordings); ``on_minus_off_y_1`` and ``on_minus_off_x_2`` (mean y of the ON
    events minus that of the OFF events in saccade 1, which moves the digit down, and the
    same in x in saccade 2, which moves it right: the sign says which edge of a moving
    digit is ON, the statistic a polarity mix-up flips).

    Profiles over time, ``STAT_BIN_US`` bins from 0 to ``STAT_SPAN_US`` (``time_ms``: the
    bins' starts): ``rate`` (events per bin per recording), ``on_fraction_t``, ``mean_x_t``
    and ``mean_y_t`` (mean position of the bin's events over all recordings; NaN where a
    bin has none).
    """
    n = len(recs)
    counts = recs.n_events
    if n == 0:
        raise DatasetError("event_statistics: no recordings")
    rec = np.repeat(np.arange(n), counts)
    x = recs.x.astype(np.float64)
    y = recs.y.astype(np.float64)
    t = recs.t.astype(np.int64)
    p = recs.p.astype(np.float64)
    safe = np.maximum(counts, 1)

    def per_rec(values: np.ndarray) -> np.ndarray:
        return np.bincount(rec, values, minlength=n)

    var_x = per_rec(x * x) / safe - (per_rec(x) / safe) ** 2
    var_y = per_rec(y * y) / safe - (per_rec(y) / safe) ** 2
    pixel = (rec * HEIGHT + recs.y.astype(np.int64)) * WIDTH + recs.x.astype(np.int64)
    per_pixel = np.bincount(pixel, minlength=n * WIDTH * HEIGHT)
    active = per_pixel > 0
    order = np.lexsort((t, pixel))
    same_pixel = pixel[order][1:] == pixel[order][:-1]
    isi = np.diff(t[order])[same_pixel]
    same_pol = (recs.p[order][1:] == recs.p[order][:-1])[same_pixel]
    lo, hi = (np.asarray(saccade_bounds_ms) * 1000).astype(np.int64)
    window = np.digitize(t, [lo, hi])
    saccades = np.bincount(window, minlength=3)[:3] / n

    def on_minus_off(coord: np.ndarray, saccade: int) -> float:
        on, off = (window == saccade) & (p == 1), (window == saccade) & (p == 0)
        if not on.any() or not off.any():
            return float("nan")
        return float(coord[on].mean() - coord[off].mean())
    firsts = t[recs.offsets[:-1][counts > 0]]
    lasts = t[recs.offsets[1:][counts > 0] - 1]

    edges = np.arange(0, STAT_SPAN_US + 1, STAT_BIN_US)
    b = np.clip(t // STAT_BIN_US, 0, len(edges) - 1)
    in_span = t < STAT_SPAN_US
    n_bins = len(edges) - 1
    per_bin = np.bincount(b[in_span], minlength=n_bins)[:n_bins].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        def bin_mean(values: np.ndarray) -> np.ndarray:
            return np.bincount(b[in_span], values[in_span], minlength=n_bins)[:n_bins] / per_bin

        return {
            "recordings": n,
            "events_mean": float(counts.mean()),
            "events_std": float(counts.std()),
            "events_median": float(np.median(counts)),
            "on_fraction": float(p.mean()) if len(p) else float("nan"),
            "spread_x": float(np.sqrt(np.maximum(var_x, 0))[counts > 0].mean()),
            "spread_y": float(np.sqrt(np.maximum(var_y, 0))[counts > 0].mean()),
            "active_fraction": float(active.sum() / (n * WIDTH * HEIGHT)),
            "events_per_active_pixel": float(per_pixel[active].mean()) if active.any()
            else 0.0,
            "saccade_1": float(saccades[0]),
            "saccade_2": float(saccades[1]),
            "saccade_3": float(saccades[2]),
            "isi_median_ms": float(np.median(isi) / 1000) if len(isi) else float("nan"),
            "isi_below_1ms": float((isi < 1000).mean()) if len(isi) else float("nan"),
            "same_polarity": float(same_pol.mean()) if len(same_pol) else float("nan"),
            "first_event_ms": float(firsts.mean() / 1000) if len(firsts) else float("nan"),
            "last_event_ms": float(lasts.mean() / 1000) if len(lasts) else float("nan"),
            "on_minus_off_y_1": on_minus_off(y, 0),
            "on_minus_off_x_2": on_minus_off(x, 1),
            "time_ms": edges[:-1] / 1000.0,
            "rate": per_bin / n,
            "on_fraction_t": bin_mean(p),
            "mean_x_t": bin_mean(x),
            "mean_y_t": bin_mean(y),
        }


#: the scalar statistics :func:`compare_statistics` lists, with their meaning
COMPARED = {
    "events_mean": "events per recording, mean",
    "events_std": "events per recording, standard deviation",
    "events_median": "events per recording, median",
    "on_fraction": "ON fraction",
    "saccade_1": "events in saccade 1 (0-90 ms)",
    "saccade_2": "events in saccade 2 (90-220 ms)",
    "saccade_3": "events in saccade 3 (220 ms-end)",
    "spread_x": "spatial spread x (std, px)",
    "spread_y": "spatial spread y (std, px)",
    "active_fraction": "fraction of pixels active",
    "events_per_active_pixel": "events per active pixel",
    "isi_median_ms": "per-pixel inter-event interval, median (ms)",
    "isi_below_1ms": "per-pixel inter-event intervals < 1 ms",
    "same_polarity": "consecutive events of a pixel with equal polarity",
    "first_event_ms": "first event (ms)",
    "last_event_ms": "last event (ms)",
    "on_minus_off_y_1": "ON minus OFF mean y in saccade 1 (px; digit moving down)",
    "on_minus_off_x_2": "ON minus OFF mean x in saccade 2 (px; digit moving right)",
}


def paired_frame_correlation(real: EventRecordings, sim: EventRecordings, n_bins: int = 10,
                             duration_us: int = 300_000) -> float:
    """Mean over recordings of the correlation between the real and the simulated
    recording of the same image, each as the binary spike frames a network sees
    (``n_bins`` time bins x polarity x pixel; 1 where the pixel had an event of that
    polarity in the bin). Position, timing and polarity must all agree for it to be high:
    a simulator with ON and OFF swapped scores near 0 although its event counts match."""
    if len(real) != len(sim):
        raise ValueError(f"paired recordings needed: {len(real)} real, {len(sim)} simulated")

    def frames(recs: EventRecordings) -> np.ndarray:
        rec = np.repeat(np.arange(len(recs)), recs.n_events)
        keep = recs.t < duration_us
        b = recs.t[keep].astype(np.int64) * n_bins // duration_us
        index = (((rec[keep] * n_bins + b) * 2 + recs.p[keep]) * HEIGHT
                 + recs.y[keep]) * WIDTH + recs.x[keep]
        out = np.zeros(len(recs) * n_bins * 2 * HEIGHT * WIDTH, np.float64)
        out[index] = 1.0
        return out.reshape(len(recs), -1)

    a, b = frames(real), frames(sim)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    norm = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean((a * b).sum(1) / np.where(norm > 0, norm, 1.0)))


def profile_agreement(real: dict, sim: dict) -> dict[str, float]:
    """How well the time profiles agree: ``rate_correlation`` (Pearson, of the event rate
    over time), ``rate_shape_distance`` (total-variation distance between the two rate
    profiles normalised to sum 1: 0 = same shape, 1 = disjoint), ``x_rms_px`` and
    ``y_rms_px`` (root mean square gap between the mean x / y trajectories, weighted by the
    real event rate)."""
    r, s = real["rate"], sim["rate"]
    shape = 0.5 * np.abs(r / r.sum() - s / s.sum()).sum()
    both = np.isfinite(real["mean_x_t"]) & np.isfinite(sim["mean_x_t"])
    w = r[both] / r[both].sum()
    return {"rate_correlation": float(np.corrcoef(r, s)[0, 1]),
            "rate_shape_distance": float(shape),
            "x_rms_px": float(np.sqrt((w * (real["mean_x_t"][both]
                                             - sim["mean_x_t"][both]) ** 2).sum())),
            "y_rms_px": float(np.sqrt((w * (real["mean_y_t"][both]
                                             - sim["mean_y_t"][both]) ** 2).sum()))}


def compare_statistics(real: dict, sim: dict) -> list[tuple[str, float, float, float]]:
    """Rows ``(quantity, real, simulated, simulated / real)`` of the scalars in
    :data:`COMPARED`, then the profile agreement (:func:`profile_agreement`) as rows
    ``(quantity, ideal value, simulated, nan)``."""
    rows = []
    for key, meaning in COMPARED.items():
        a, b = real[key], sim[key]
        rows.append((meaning, a, b, b / a if a else float("nan")))
    ideal = {"rate_correlation": 1.0, "rate_shape_distance": 0.0, "x_rms_px": 0.0,
             "y_rms_px": 0.0}
    meanings = {"rate_correlation": "rate over time: correlation",
                "rate_shape_distance": "rate over time: shape distance (0 = same)",
                "x_rms_px": "mean-x trajectory: RMS gap (px)",
                "y_rms_px": "mean-y trajectory: RMS gap (px)"}
    for key, value in profile_agreement(real, sim).items():
        rows.append((meanings[key], ideal[key], value, float("nan")))
    return rows
