"""Reading and writing event recordings: N-MNIST's original binary format, its dataset
folders, and the flat ``.npz`` of :class:`~spikeforge.events.EventRecordings`.

The original format (N-MNIST, N-Caltech101; Orchard et al. 2015) has no header: a file is
a sequence of 5-byte events, each one big-endian 40-bit word::

    bits 39-32  x            (8 bits)
    bits 31-24  y            (8 bits)
    bit  23     polarity     (1 = ON, 0 = OFF)
    bits 22-0   timestamp    (23 bits, µs from the start of the recording)

Decisions (checked on the 20 raw files and the 200 decoded samples of the shared
N-MNIST sample):

* **Empty file** -> zero events. A zero-length recording is a valid value of the format
  (and ``encode_bin`` of no events is ``b""``); N-MNIST itself has no empty recording, so
  callers that want to treat one as damage can test ``len(events) == 0``.
* **Time order** is required: every real recording is non-decreasing in ``t``, and the
  23-bit counter covers 8.39 s while an N-MNIST recording lasts about 0.32 s, so the counter
  never wraps. A timestamp that goes backwards therefore means a corrupt file, and it is
  reported (every transform downstream relies on time order).
* **Overflow markers**: the reference readers treat an event with ``y = 240`` as a marker
  that advances the clock for recordings longer than 2^23 µs. No N-MNIST file has one, so
  this reader does not interpret them: ``y = 240`` is outside the sensor and reported as
  such, with a hint.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from spikeforge.errors import DatasetError
from spikeforge.events import SENSOR_SIZE, EventRecordings, make_events
from spikeforge.io import atomic_open

EVENT_BYTES = 5
#: the largest timestamp the format can hold (23 bits), µs
T_MAX = (1 << 23) - 1
#: the reference readers' timestamp-overflow marker (never present in N-MNIST)
_OVERFLOW_Y = 240

_REFETCH = "the file is damaged: extract or download the dataset again"

#: split name -> the folder name of the official release and of tonic
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}

#: keys every event ``.npz`` must hold (``sample_id`` and ``sensor_size`` are optional)
NPZ_KEYS = ("x", "y", "p", "t", "offsets", "label")
_NPZ_FIX = "re-create it with spikeforge.events.reader.save_event_npz"


class EventFormatError(DatasetError):
    """An event file that is not valid N-MNIST binary data (truncated, a coordinate
    outside the sensor, time going backwards). The message names the file, the byte
    offset of the offending event and the fix."""


# ---------------------------------------------------------------------------------------
# the original binary format
# ---------------------------------------------------------------------------------------

def _decode_columns(data: bytes | bytearray | memoryview, name: str,
                    sensor_size: tuple[int, int, int] = SENSOR_SIZE,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p, t)`` as uint8, uint8, uint8, uint32 columns (the flat layout of
    :class:`EventRecordings`: 7 bytes an event instead of a structured array's 13)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    n_bytes = raw.size
    whole = n_bytes // EVENT_BYTES
    if n_bytes % EVENT_BYTES:
        start = whole * EVENT_BYTES
        raise EventFormatError(
            f"{name}: truncated N-MNIST event file: {n_bytes} bytes is not a multiple of "
            f"{EVENT_BYTES}; the last event, starting at byte offset {start}, has only "
            f"{n_bytes - start} of its {EVENT_BYTES} bytes; {_REFETCH}")
    words = raw.reshape(whole, EVENT_BYTES)
    x = words[:, 0].copy()
    y = words[:, 1].copy()
    p = words[:, 2] >> 7
    t = ((words[:, 2].astype(np.uint32) & 0x7F) << 16
         | words[:, 3].astype(np.uint32) << 8 | words[:, 4])

    width, height = sensor_size[0], sensor_size[1]
    outside = np.flatnonzero((x >= width) | (y >= height))
    if outside.size:
        i = int(outside[0])
        hint = (" (y = 240 is the timestamp-overflow marker of recordings longer than "
                "2^23 µs, which N-MNIST never contains)" if y[i] == _OVERFLOW_Y else "")
        raise EventFormatError(
            f"{name}: event {i} at byte offset {i * EVENT_BYTES} has (x, y) = "
            f"({x[i]}, {y[i]}), outside the {width}x{height} sensor{hint}; not an N-MNIST "
            f"event file, or {_REFETCH}")
    backwards = np.flatnonzero(t[1:] < t[:-1])
    if backwards.size:
        i = int(backwards[0]) + 1
        raise EventFormatError(
            f"{name}: event {i} at byte offset {i * EVENT_BYTES} has timestamp {t[i]} µs, "
            f"earlier than the {t[i - 1]} µs of the event before it (N-MNIST recordings are "
            f"time-ordered and too short for the 23-bit clock to wrap); {_REFETCH}")
    return x, y, p, t


def decode_bin(data: bytes | bytearray | memoryview, name: str = "<bytes>", *,
               sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Events (structured :data:`EVENT_DTYPE`) from the bytes of an original N-MNIST file.

    Event ``i`` is bytes ``[5i, 5i + 5)``: ``x = b0``, ``y = b1``, ``p = b2 >> 7``,
    ``t = (b2 & 0x7F) << 16 | b3 << 8 | b4``. Empty input gives zero events.

    Raises :class:`EventFormatError` (naming ``name`` and the byte offset) when the length
    is not a multiple of 5, when ``x``/``y`` fall outside ``sensor_size`` (width, height)
    or when a timestamp is smaller than the one before it.
    """
    x, y, p, t = _decode_columns(data, name, sensor_size)
    return make_events(x, y, t, p)


def encode_bin(events: np.ndarray, *,
               sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> bytes:
    """The bytes of an original N-MNIST file holding ``events`` (inverse of
    :func:`decode_bin`).

    Raises :class:`ValueError` for what the format (or :func:`decode_bin`) cannot hold:
    ``x``/``y`` outside the sensor, ``p`` not 0 or 1, ``t`` outside ``[0, 2^23)`` or
    decreasing.
    """
    x, y, t, p = (np.asarray(events[k]).astype(np.int64) for k in ("x", "y", "t", "p"))

    def refuse(mask: np.ndarray, what: str) -> None:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"cannot encode event {i} (x={x[i]}, y={y[i]}, t={t[i]}, "
                             f"p={p[i]}): {what}")

    refuse((x < 0) | (x >= sensor_size[0]) | (y < 0) | (y >= sensor_size[1]),
           f"(x, y) outside the {sensor_size[0]}x{sensor_size[1]} sensor")
    refuse((p != 0) & (p != 1), "polarity must be 0 (OFF) or 1 (ON)")
    refuse((t < 0) | (t > T_MAX), f"timestamp outside the format's 23 bits [0, {T_MAX}] µs")
    refuse(np.concatenate([[False], t[1:] < t[:-1]]), "timestamps must not decrease")
    words = np.empty((len(t), EVENT_BYTES), dtype=np.uint8)
    words[:, 0] = x
    words[:, 1] = y
    words[:, 2] = (p << 7) | (t >> 16)
    words[:, 3] = (t >> 8) & 0xFF
    words[:, 4] = t & 0xFF
    return words.tobytes()


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such event file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it ({e.strerror or e})") from None


def read_bin(path: str | os.PathLike, *,
             sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Events of one original N-MNIST file (see :func:`decode_bin`); a missing or
    unreadable file is a :class:`DatasetError`."""
    path = Path(path)
    return decode_bin(_read_file(path), str(path), sensor_size=sensor_size)


# ---------------------------------------------------------------------------------------
# dataset folders
# ---------------------------------------------------------------------------------------

def _child_dir(parent: Path, name: str) -> Path | None:
    """The sub-folder of ``parent`` called ``name``, ignoring case (``Train`` or ``train``)."""
    exact = parent / name
    if exact.is_dir():
        return exact
    try:
        for child in sorted(parent.iterdir()):
            if child.name.lower() == name.lower() and child.is_dir():
                return child
    except OSError:
        pass
    return None


def find_split_dir(root: str | os.PathLike, split: str = "train") -> Path:
    """The folder holding ``<digit>/<id>.bin`` of ``split``.

    Accepted, in this order: ``root/Train`` (the official release extracted into
    ``root``), ``root/NMNIST/Train`` (tonic: ``NMNIST(save_to=root)`` extracts
    ``train.zip`` into ``root/NMNIST``), and ``root`` itself when it is named ``Train``.
    Folder names are matched ignoring case; ``Test`` likewise for ``split="test"``.
    """
    if split not in SPLIT_FOLDERS:
        raise DatasetError(f"unknown N-MNIST split {split!r}: use 'train' or 'test'")
    root = Path(root)
    folder = SPLIT_FOLDERS[split]
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; point root at the folder holding the "
                           f"extracted N-MNIST {folder}/ and Test/ folders")
    for parent in (root, _child_dir(root, "NMNIST")):
        found = None if parent is None else _child_dir(parent, folder)
        if found is not None:
            return found
    if root.name.lower() == folder.lower():
        return root
    raise DatasetError(
        f"no N-MNIST {split} folder under {root}: looked for {root / folder}/<digit>/<id>.bin "
        f"(official release) and {root / 'NMNIST' / folder}/<digit>/<id>.bin (tonic's "
        f"layout); extract {folder}.zip there, or point root at the folder that holds "
        f"{folder}/")


_NUMERIC = re.compile(r"\d+")


def _list_files(split_dir: Path) -> list[tuple[int, int, Path]]:
    """``(digit, sample id, path)`` of every ``<digit>/<id>.bin``, sorted by digit, then id."""
    entries = []
    for digit_dir in split_dir.iterdir():
        if not (digit_dir.is_dir() and len(digit_dir.name) == 1 and digit_dir.name.isdigit()):
            continue  # e.g. a stray archive or __MACOSX: only 0..9 hold samples
        for path in digit_dir.iterdir():
            if path.suffix.lower() != ".bin" or not path.is_file():
                continue
            if not _NUMERIC.fullmatch(path.stem):
                raise DatasetError(f"{path}: N-MNIST sample files are named <number>.bin "
                                   f"(the MNIST index + 1); rename or remove this one")
            entries.append((int(digit_dir.name), int(path.stem), path))
    entries.sort(key=lambda e: (e[0], e[1]))
    return entries


def load_nmnist_folder(root: str | os.PathLike, split: str = "train",
                       limit: int | None = None, progress: bool = True) -> EventRecordings:
    """All recordings of an extracted N-MNIST split (see :func:`find_split_dir` for the
    accepted layouts) as flat :class:`EventRecordings`.

    Order: by digit, then by numeric file id. Labels come from the digit folder, sample
    ids from the file name (``00002.bin`` -> 2, the MNIST index + 1). ``limit`` keeps the
    ``limit`` files with the smallest ids (the first MNIST images, so every class is
    present, as a training-set limit on MNIST gives) and returns them in the same order.
    """
    split_dir = find_split_dir(root, split)
    entries = _list_files(split_dir)
    if not entries:
        raise DatasetError(f"{split_dir}: no <digit>/<id>.bin files (looked in sub-folders "
                           f"0..9); the archive is not extracted, or only partly")
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"limit must be at least 1, not {limit}")
        smallest = sorted(range(len(entries)), key=lambda i: entries[i][1])[:limit]
        entries = [entries[i] for i in sorted(smallest)]

    columns: list[tuple[np.ndarray, ...]] = []
    for _, _, path in tqdm(entries, desc=f"N-MNIST {split}", unit="file", disable=not progress,
                           leave=False):
        columns.append(_decode_columns(_read_file(path), str(path)))
    sizes = np.array([len(c[3]) for c in columns], dtype=np.int64)
    x, y, p, t = (np.concatenate([c[k] for c in columns]) for k in range(4))
    return EventRecordings(x, y, t, p, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                           np.array([e[0] for e in entries], dtype=np.int64),
                           np.array([e[1] for e in entries], dtype=np.int64), SENSOR_SIZE,
                           {"source": str(split_dir), "split": split})


# ---------------------------------------------------------------------------------------
# the flat .npz
# ---------------------------------------------------------------------------------------

def save_event_npz(path: str | os.PathLike, recs: EventRecordings,
                   compressed: bool = False) -> None:
    """Write ``recs`` as an ``.npz`` (keys ``x, y, p, t, offsets, label``, ``sample_id``
    when known, ``sensor_size``, plus every NumPy array in ``recs.info``), atomically:
    a reader sees the old file or the new one, never half of one."""
    arrays = {key: value for key, value in recs.info.items() if isinstance(value, np.ndarray)}
    arrays.update(x=np.asarray(recs.x, np.uint8), y=np.asarray(recs.y, np.uint8),
                  p=np.asarray(recs.p, np.uint8), t=np.asarray(recs.t, np.uint32),
                  offsets=np.asarray(recs.offsets, np.int64), label=np.asarray(recs.labels),
                  sensor_size=np.asarray(recs.sensor_size, np.int64))
    if recs.sample_ids is not None:
        arrays["sample_id"] = np.asarray(recs.sample_ids, np.int64)
    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, "wb") as f:  # a file object: NumPy adds no ".npz" to the name
        save(f, **arrays)


def _bad(path: Path, key: str, problem: str) -> DatasetError:
    return DatasetError(f"{path}: key {key!r} {problem}; {_NPZ_FIX}")


def _integer_column(path: Path, arrays: dict, key: str, upper: int) -> np.ndarray:
    """Column ``key`` checked to be 1-D integers in ``[0, upper)``."""
    a = arrays[key]
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise _bad(path, key, f"must be a 1-D integer array, not {a.dtype} of shape {a.shape}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= upper):
        raise _bad(path, key, f"has values in [{a.min()}, {a.max()}], outside [0, {upper - 1}]")
    return a


def load_event_npz(path: str | os.PathLike) -> EventRecordings:
    """Recordings from an event ``.npz`` (the layout of ``nmnist_sample200.npz``; see
    :func:`save_event_npz`). Keys other than the known ones go to ``info``.

    Checked, each failure a :class:`DatasetError` naming the key and the fix: every key of
    :data:`NPZ_KEYS` present; ``x, y, p, t`` of one length; ``offsets`` starting at 0,
    non-decreasing, ending at that length; one ``label`` (and ``sample_id``) per
    recording; ``x < width``, ``y < height``, ``p`` in {0, 1}; ``t`` non-decreasing inside
    each recording.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such event file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise DatasetError(f"{path}: a single .npy array, not an event .npz; {_NPZ_FIX}")
        with loaded as npz:  # members are read (and CRC-checked) here
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e}); {_NPZ_FIX}") from None
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)} (an event .npz holds "
                           f"{', '.join(NPZ_KEYS)}); {_NPZ_FIX}")

    sensor = tuple(int(v) for v in arrays.pop("sensor_size", np.asarray(SENSOR_SIZE)).ravel())
    if len(sensor) != 3 or min(sensor) < 1:
        raise _bad(path, "sensor_size", f"must be 3 positive integers, not {sensor}")
    t = _integer_column(path, arrays, "t", 1 << 32)
    for key in ("x", "y", "p"):
        if arrays[key].shape != t.shape:
            raise _bad(path, key, f"has {arrays[key].shape} entries but 't' has {t.shape}")
    x = _integer_column(path, arrays, "x", sensor[0])
    y = _integer_column(path, arrays, "y", sensor[1])
    p = _integer_column(path, arrays, "p", 2)

    offsets = arrays["offsets"]
    if (offsets.ndim != 1 or offsets.size < 1 or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or offsets[-1] != t.size or np.any(np.diff(offsets) < 0)):
        raise _bad(path, "offsets", f"must be non-decreasing integers from 0 to {t.size} "
                   f"(the number of events)")
    n = offsets.size - 1
    labels = arrays["label"]
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise _bad(path, "label", f"must hold one integer per recording ({n}), not "
                   f"{labels.dtype} of shape {labels.shape}")
    sample_ids = arrays.pop("sample_id", None)
    if sample_ids is not None and (sample_ids.shape != (n,)
                                   or not np.issubdtype(sample_ids.dtype, np.integer)):
        raise _bad(path, "sample_id", f"must hold one integer per recording ({n}), not "
                   f"{sample_ids.dtype} of shape {sample_ids.shape}")
    _check_time_order(path, t, offsets)

    info = {key: value for key, value in arrays.items() if key not in NPZ_KEYS}
    return EventRecordings(x.astype(np.uint8, copy=False), y.astype(np.uint8, copy=False),
                           t.astype(np.uint32, copy=False), p.astype(np.uint8, copy=False),
                           offsets.astype(np.int64, copy=False), labels.astype(np.int64),
                           None if sample_ids is None else sample_ids.astype(np.int64),
                           sensor, info)


def _check_time_order(path: Path, t: np.ndarray, offsets: np.ndarray,
                      chunk: int = 1 << 24) -> None:
    """``t`` must not decrease inside a recording; it may (and usually does) between two.
    Chunked so that 280 million events need no 280 MB temporary."""
    starts = offsets[1:-1]  # t[s] < t[s - 1] is allowed at these positions
    for a in range(1, t.size, chunk):
        b = min(t.size, a + chunk)
        drops = np.flatnonzero(t[a:b] < t[a - 1:b - 1]) + a
        inside = drops[~np.isin(drops, starts)]
        if inside.size:
            i = int(inside[0])
            r = int(np.searchsorted(offsets, i, side="right")) - 1
            raise _bad(path, "t", f"goes backwards inside recording {r} (event {i}: "
                       f"{t[i]} µs after {t[i - 1]} µs); recordings must be time-ordered")


__all__ = ["EVENT_BYTES", "NPZ_KEYS", "SPLIT_FOLDERS", "T_MAX", "EventFormatError",
           "decode_bin", "encode_bin", "find_split_dir", "load_event_npz", "load_nmnist_folder",
           "read_bin", "save_event_npz"]
