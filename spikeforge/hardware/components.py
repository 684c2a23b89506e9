"""Real parts: the IEC 60063 preferred-number series and how a weight becomes a resistor.

A synapse of weight ``w`` is one resistor ``R = R_unit / |w|`` from a standard series
(E12, E24, E96, ...) inside the range ``[r_min, r_max]`` a builder can buy and place. The
realisable weight magnitudes are therefore the finite set ``R_unit / R`` for ``R`` in the
series, and one rule (:func:`snap_magnitudes`) maps a trained magnitude onto it:

- nearest value on a log scale (the series is geometric, so this is the nearest ratio);
- above the largest realisable magnitude ``R_unit / r_min``: **clipped** to it;
- below the smallest, ``R_unit / r_max``, by more than half a series step: **pruned**
  (no part; weight 0); a zero weight is never a part.

Export (:mod:`spikeforge.hardware.circuit`) and series-aware training (the torch twin
:func:`snap_magnitudes_torch`, with the levels of :func:`layer_levels`) both use exactly
this rule.
"""

from __future__ import annotations

import math

import numpy as np

from spikeforge.errors import SpikeforgeError

#: IEC 60063 mantissas, one decade each.
E_SERIES: dict[str, tuple[float, ...]] = {
    "E6": (1.0, 1.5, 2.2, 3.3, 4.7, 6.8),
    "E12": (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2),
    "E24": (1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9, 4.3,
            4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1),
    "E96": (1.00, 1.02, 1.05, 1.07, 1.10, 1.13, 1.15, 1.18, 1.21, 1.24, 1.27, 1.30, 1.33,
            1.37, 1.40, 1.43, 1.47, 1.50, 1.54, 1.58, 1.62, 1.65, 1.69, 1.74, 1.78, 1.82,
            1.87, 1.91, 1.96, 2.00, 2.05, 2.10, 2.15, 2.21, 2.26, 2.32, 2.37, 2.43, 2.49,
            2.55, 2.61, 2.67, 2.74, 2.80, 2.87, 2.94, 3.01, 3.09, 3.16, 3.24, 3.32, 3.40,
            3.48, 3.57, 3.65, 3.74, 3.83, 3.92, 4.02, 4.12, 4.22, 4.32, 4.42, 4.53, 4.64,
            4.75, 4.87, 4.99, 5.11, 5.23, 5.36, 5.49, 5.62, 5.76, 5.90, 6.04, 6.19, 6.34,
            6.49, 6.65, 6.81, 6.98, 7.15, 7.32, 7.50, 7.68, 7.87, 8.06, 8.25, 8.45, 8.66,
            8.87, 9.09, 9.31, 9.53, 9.76),
}
E_SERIES["E48"] = E_SERIES["E96"][::2]

#: the tolerance a series is normally sold in
SERIES_TOLERANCE = {"E6": 0.2, "E12": 0.1, "E24": 0.05, "E48": 0.02, "E96": 0.01}


def check_series(series: str) -> str:
    if series not in E_SERIES:
        raise SpikeforgeError(f"series = {series!r} is unknown: choose one of "
                              f"{', '.join(E_SERIES)}")
    return series


def series_values(series: str, lo: float, hi: float) -> np.ndarray:
    """Every value of ``series`` in ``[lo, hi]`` (any unit), ascending."""
    check_series(series)
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise SpikeforgeError(f"part range [{lo:g}, {hi:g}] is impossible: it needs "
                              f"0 < min <= max")
    values = [round(m * 10.0**d, 12) for d in range(math.floor(math.log10(lo)) - 1,
                                                     math.ceil(math.log10(hi)) + 1)
              for m in E_SERIES[series]]
    out = np.array(sorted(v for v in values if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)))
    if out.size == 0:
        raise SpikeforgeError(f"no {series} value lies in [{lo:g}, {hi:g}]; widen the range")
    return out


def nearest_in_series(values: np.ndarray | float, series: str) -> np.ndarray:
    """The ``series`` value nearest to each of ``values`` (> 0) on a log scale."""
    v = np.asarray(values, dtype=np.float64)
    if np.any(~(v > 0)):
        raise SpikeforgeError("component values must be positive")
    decades = np.floor(np.log10(v))
    candidates = series_values(series, 10.0 ** decades.min(), 10.0 ** (decades.max() + 1))
    return snap_to(v, candidates)


def snap_to(values: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Nearest of the ascending ``candidates`` on a log scale, elementwise."""
    logs = np.log(candidates)
    mids = (logs[1:] + logs[:-1]) / 2
    return candidates[np.searchsorted(mids, np.log(values))]


def realisable_magnitudes(series: str, r_min: float, r_max: float,
                          r_unit: float = 1.0) -> np.ndarray:
    """The weight magnitudes one resistor can realise, ``r_unit / R``, ascending."""
    return np.sort(r_unit / series_values(series, r_min, r_max))


def auto_r_unit(largest_magnitude: float, series: str, r_min: float, r_max: float) -> float:
    """The default ``R_unit`` of a layer: its largest weight magnitude gets the smallest
    resistor of the series in range, ``R_unit = max|w| · R_smallest``, so nothing is
    clipped and the series' whole range serves the layer (the analog counterpart of the
    digital per-layer scale)."""
    smallest = float(series_values(series, r_min, r_max)[0])
    return float(largest_magnitude) * smallest if largest_magnitude > 0 else smallest


def layer_levels(largest_magnitude: float, series: str, r_min: float, r_max: float
                 ) -> np.ndarray:
    """Realisable magnitudes of a layer whose ``R_unit`` is :func:`auto_r_unit`:
    ``R_unit / R`` for every series value ``R`` in ``[r_min, r_max]``, ascending (the
    largest is ``max|w|``). Series-aware training and export use this one rule."""
    r_unit = auto_r_unit(largest_magnitude, series, r_min, r_max)
    return realisable_magnitudes(series, r_min, r_max, r_unit)


#: snap status codes
REALISED, CLIPPED, PRUNED = 0, 1, 2


def snap_magnitudes(magnitude: np.ndarray, levels: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The module's rule on ``|w|`` with ascending realisable ``levels``: returns the
    snapped magnitudes (0 where pruned) and a status per element (REALISED, CLIPPED,
    PRUNED; an exact zero is PRUNED too, since it needs no part)."""
    m = np.asarray(magnitude, dtype=np.float64)
    logs = np.log(levels)
    step = (logs[-1] - logs[0]) / max(len(levels) - 1, 1)
    prune_below = float(np.exp(logs[0] - step / 2)) if len(levels) > 1 else levels[0] / 2
    with np.errstate(divide="ignore"):
        idx = np.searchsorted((logs[1:] + logs[:-1]) / 2, np.log(np.maximum(m, 1e-300)))
    snapped = levels[idx]
    status = np.full(m.shape, REALISED, dtype=np.int8)
    status[m > levels[-1] * (1 + 1e-12)] = CLIPPED
    pruned = m < prune_below
    status[pruned] = PRUNED
    return np.where(pruned, 0.0, snapped), status


def snap_magnitudes_torch(magnitude, levels):
    """:func:`snap_magnitudes` for torch tensors (values only); ``levels`` a 1-D tensor."""
    import torch

    logs = torch.log(levels)
    step = (logs[-1] - logs[0]) / max(len(levels) - 1, 1)
    prune_below = torch.exp(logs[0] - step / 2)
    idx = torch.bucketize(torch.log(magnitude.clamp_min(1e-30)), (logs[1:] + logs[:-1]) / 2)
    return torch.where(magnitude < prune_below, torch.zeros_like(magnitude), levels[idx])


def format_value(value: float, unit: str = "") -> str:
    """Engineering notation as parts are labelled: 4700 -> '4.7k', 1e-7 -> '100n'."""
    if value == 0:
        return f"0{unit}"
    prefixes = {-12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}
    exp3 = int(math.floor(math.log10(abs(value)) / 3) * 3)
    exp3 = max(-12, min(9, exp3))
    mantissa = value / 10.0**exp3
    text = f"{mantissa:.3g}"
    return f"{text}{prefixes[exp3]}{unit}"


def parse_value(text: str | float) -> float:
    """Inverse of :func:`format_value` for user input: '10k', '4.7M', '100n', '1e4'."""
    if isinstance(text, (int, float)):
        return float(text)
    if not isinstance(text, str):
        raise SpikeforgeError(f"cannot read the component value {text!r}: write e.g. 10k, "
                              f"4.7M, 100n or 1e4")
    s = text.strip().rstrip("ΩFVsHz").replace("Ω", "").replace("ohm", "")
    factors = {"p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3,
               "M": 1e6, "G": 1e9}
    try:
        if s and s[-1] in factors:
            return float(s[:-1]) * factors[s[-1]]
        return float(s)
    except ValueError:
        raise SpikeforgeError(f"cannot read the component value {text!r}: write e.g. 10k, "
                              f"4.7M, 100n or 1e4") from None
