"""Event-camera data (N-MNIST): the event types every event module shares.

An *event* is one brightness change seen by one pixel: ``(x, y, t, p)`` with ``t`` in
microseconds and polarity ``p = 1`` (ON, brighter) or ``0`` (OFF, darker). One recording
(a sample) is a NumPy structured array of :data:`EVENT_DTYPE`, time-ordered, with the field
names `tonic <https://tonic.readthedocs.io>`_ uses, so tonic's transforms accept it.

Many recordings are kept as :class:`EventRecordings`: flat columns (``x``, ``y``, ``p``
uint8, ``t`` uint32) plus ``offsets`` (recording ``i`` is ``[offsets[i], offsets[i+1])``),
the layout of ``nmnist_sample200.npz``. Seven bytes an event instead of a structured
array's 13 or tonic's 32: the simulated N-MNIST holds about 280 million events.

Modules: :mod:`~spikeforge.events.reader` (the original binary format, dataset folders,
the flat ``.npz``), :mod:`~spikeforge.events.transforms` (binning into frames, denoising,
refractory filter, first-saccade crop, spatial downsampling),
:mod:`~spikeforge.events.simulator` (an event camera watching a static image move).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the event datasets (spikeforge.events.datasets loads them): simulated N-MNIST, the real
#: N-MNIST, and the 200 real recordings of the development sample
EVENT_DATASETS = ("nmnist-synth", "nmnist", "nmnist-sample")

#: N-MNIST's ATIS sensor: 34 x 34 pixels, 2 polarities (tonic's ``sensor_size`` order)
SENSOR_SIZE: tuple[int, int, int] = (34, 34, 2)

#: one event, tonic's field names; p: 1 = ON (brighter), 0 = OFF (darker); t in µs
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A structured :data:`EVENT_DTYPE` array from four equal-length columns."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


@dataclass
class EventRecordings:
    """Many event recordings in flat columns (see the module docstring).

    x, y, p: uint8 ``(events,)``; t: uint32 µs from the start of each recording;
    offsets: int64 ``(n + 1,)``, recording ``i`` is ``[offsets[i], offsets[i+1])``;
    labels: int64 ``(n,)``; sample_ids: int64 ``(n,)`` where the recording came from (for
    N-MNIST, the MNIST index + 1); sensor_size: ``(width, height, polarities)``.
    """

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray | None = None
    sensor_size: tuple[int, int, int] = SENSOR_SIZE
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> np.ndarray:
        """Events per recording, ``(n,)``."""
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        """Recording ``i`` as a structured :data:`EVENT_DTYPE` array (tonic's layout)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"recording {i} out of range: there are {n}")
        i %= n
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return make_events(self.x[a:b], self.y[a:b], self.t[a:b], self.p[a:b])

    def subset(self, index: np.ndarray | slice) -> EventRecordings:
        """The recordings at ``index`` (a slice or integer array), in that order."""
        chosen = np.arange(len(self))[index]
        starts, stops = self.offsets[chosen], self.offsets[chosen + 1]
        sizes = stops - starts
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ids = None if self.sample_ids is None else self.sample_ids[chosen]
        if isinstance(index, slice) and (index.step or 1) == 1:
            # consecutive recordings: views of one block of events, no copy
            a, b = (int(starts[0]), int(stops[-1])) if len(chosen) else (0, 0)
            columns = (self.x[a:b], self.y[a:b], self.t[a:b], self.p[a:b])
        else:
            # event index of every chosen event: its recording's start plus its rank there
            take = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1])
            columns = (self.x[take], self.y[take], self.t[take], self.p[take])
        return EventRecordings(*columns, offsets, self.labels[chosen], ids, self.sensor_size,
                               dict(self.info))

    @classmethod
    def from_list(cls, recordings: list[np.ndarray], labels: np.ndarray,
                  sample_ids: np.ndarray | None = None,
                  sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> EventRecordings:
        """Flat columns from a list of structured event arrays (one per recording)."""
        sizes = [len(r) for r in recordings]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        cat = (np.concatenate(recordings) if recordings else np.zeros(0, EVENT_DTYPE))
        return cls(cat["x"].astype(np.uint8), cat["y"].astype(np.uint8),
                   cat["t"].astype(np.uint32), cat["p"].astype(np.uint8), offsets,
                   np.asarray(labels, np.int64),
                   None if sample_ids is None else np.asarray(sample_ids, np.int64),
                   sensor_size)
