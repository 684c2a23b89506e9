"""Event datasets as training data: N-MNIST (real), its 200-recording sample, and the
simulated N-MNIST built from MNIST by :mod:`spikeforge.events.simulator`.

========================  =====================================================  ==========
name                      what                                                   where
========================  =====================================================  ==========
``nmnist-synth``          every MNIST image (60k/10k) seen by the simulated      built and
                          camera; built on first use, shard by shard             cached
``nmnist``                the real N-MNIST (Orchard et al. 2015), full set       ``nmnist/``
``nmnist-sample``         200 real recordings (MNIST training images 0-199);     ``nmnist-
                          a test split only: for scoring, never for training     sample/``
========================  =====================================================  ==========

**As network input** (the hardware contract's ``EncodingSpec("spikes")``): every
recording is cut into ``T`` equal time bins over a fixed window of ``duration_us``
(default :data:`DURATION_US`, the three saccades), and input line ``(p, y, x)`` spikes in
step ``t`` when pixel ``(x, y)`` saw at least one event of polarity ``p`` in bin ``t``::

    s_0[t, p·H·W + y·W + x] = 1  if  #{events (x, y, p) with t·D/T <= time < (t+1)·D/T} >= 1

So the board has one spike line per pixel and polarity (2 x 34 x 34 = 2,312), the clock
period is ``D / T``, and a camera (or a replay of a recording) drives the lines directly.
A fixed window, not each recording's own length, so that one clock serves every sample.

**The simulated set is held apart from the real sample**: the 200 real recordings show
MNIST training images 0-199, so their simulated twins are left out of ``nmnist-synth``'s
training split (59,800 recordings). Scoring a network trained on simulated events on the
real sample is then an honest test of the simulator.

**Cache**: ``nmnist-synth/seed-<seed>/`` in the user cache (``$SPIKEFORGE_CACHE``, else
``~/.cache/spikeforge``; a build copied into the data directory is used first): shards of
:data:`SHARD_SIZE` recordings in the flat ``.npz`` layout of the real sample, each written
atomically and listed with its md5 in ``manifest.json`` together with the simulator's
parameters. A shard is built when first needed, from ``(seed, split, shard)`` alone, so an
interrupted build resumes and any subset is reproducible; a manifest written by other
simulator parameters is refused (rebuild with ``--force``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.data.files import md5_file, resolve_data_dir
from spikeforge.errors import DatasetError
from spikeforge.events import EVENT_DATASETS, SENSOR_SIZE, EventRecordings
from spikeforge.io import write_json

#: the window cut into T bins: N-MNIST's three saccades of about 100 ms each
DURATION_US = 300_000
#: recordings per cached shard of the simulated set (about 30 MB each)
SHARD_SIZE = 5000
#: MNIST training images recorded in the real sample (sample n = image n - 1)
REAL_SAMPLE_IMAGES = 200
SAMPLE_FILE = "nmnist_sample200.npz"
SAMPLE_MD5 = "90650d8c0b746bb08a9f4490167da173"
SPLITS = ("train", "test")
MANIFEST = "manifest.json"
SYNTH_FORMAT = "spikeforge-nmnist-synth/1"


def concat_recordings(parts: list[EventRecordings]) -> EventRecordings:
    """One :class:`EventRecordings` holding ``parts`` in order."""
    if not parts:
        raise ValueError("nothing to concatenate")
    if len(parts) == 1:
        return parts[0]
    offsets = [np.zeros(1, np.int64)]
    total = 0
    for part in parts:
        offsets.append(part.offsets[1:] + total)
        total += int(part.offsets[-1])
    ids = (None if any(p.sample_ids is None for p in parts)
           else np.concatenate([p.sample_ids for p in parts]))
    return EventRecordings(*(np.concatenate([getattr(p, k) for p in parts])
                             for k in ("x", "y", "t", "p")),
                           np.concatenate(offsets), np.concatenate([p.labels for p in parts]),
                           ids, parts[0].sensor_size, dict(parts[0].info))


# ---------------------------------------------------------------- the simulated N-MNIST


def cache_dir() -> Path:
    """``$SPIKEFORGE_CACHE``, else ``$XDG_CACHE_HOME/spikeforge``, else
    ``~/.cache/spikeforge``: where built data goes when the data directory is read-only."""
    if os.environ.get("SPIKEFORGE_CACHE"):
        return Path(os.environ["SPIKEFORGE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spikeforge"


def synth_folder(data_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """The folder of the simulated set for ``seed``: a build already in the data directory
    (e.g. copied there), else the cache (:func:`cache_dir`), where builds go. Never built
    into the data directory itself, which may be a shared, read-only dataset folder."""
    name = Path("nmnist-synth") / f"seed-{seed}"
    existing = resolve_data_dir(data_dir) / name
    return existing if (existing / MANIFEST).is_file() else cache_dir() / name


def _params_record(params: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(params)))  # tuples -> lists, as read back from JSON


def _read_manifest(folder: Path, seed: int, params: Any, force: bool) -> dict[str, Any]:
    fresh = {"format": SYNTH_FORMAT, "seed": seed, "params": _params_record(params),
             "shard_size": SHARD_SIZE, "shards": {}}
    path = folder / MANIFEST
    if force or not path.is_file():
        return fresh
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable ({e}); rebuild the simulated set with "
                           f"`spikeforge data synth-nmnist --force`") from None
    if manifest.get("format") != SYNTH_FORMAT or manifest.get("shard_size") != SHARD_SIZE:
        raise DatasetError(f"{path}: written by another version of spikeforge; rebuild with "
                           f"`spikeforge data synth-nmnist --force`")
    if manifest.get("params") != fresh["params"]:
        raise DatasetError(f"{path}: built with other simulator parameters than these; rebuild "
                           f"with `spikeforge data synth-nmnist --force` (or use another "
                           f"--seed folder)")
    return manifest


def _shard_seed(seed: int, split: str, shard: int) -> int:
    """Each shard's own seed, from ``(seed, split, shard)`` only."""
    state = np.random.SeedSequence([seed, SPLITS.index(split), shard]).generate_state(1)
    return int(state[0])


def _mnist_images(split: str, data_dir: str | os.PathLike | None,
                  progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from spikeforge.data.datasets import load_dataset

    mnist = load_dataset("mnist", data_dir, progress=progress)
    x, y = (mnist.train_x, mnist.train_y) if split == "train" else (mnist.test_x, mnist.test_y)
    return x.reshape(-1, 28, 28), y


def n_shards(split: str) -> int:
    return math.ceil((60_000 if split == "train" else 10_000) / SHARD_SIZE)


def build_synth_nmnist(data_dir: str | os.PathLike | None = None, seed: int = 0,
                       splits: tuple[str, ...] = SPLITS, shards: int | None = None,
                       force: bool = False, params: Any = None, progress: bool = True
                       ) -> Path:
    """Simulate MNIST's images as N-MNIST recordings, shard by shard (the first ``shards``
    of each split; default all), skipping shards already built. Returns the folder."""
    from tqdm import tqdm

    from spikeforge.events.reader import save_event_npz
    from spikeforge.events.simulator import SimulatorParams, simulate_recordings

    params = params or SimulatorParams()
    folder = synth_folder(data_dir, seed)
    manifest = _read_manifest(folder, seed, params, force)
    if force:
        manifest["shards"] = {}
    for split in splits:
        if split not in SPLITS:
            raise DatasetError(f"split {split!r}: choose train or test")
        wanted = range(min(shards or n_shards(split), n_shards(split)))
        missing = [k for k in wanted if f"{split}-{k:03d}" not in manifest["shards"]
                   or not (folder / f"{split}-{k:03d}.npz").is_file()]
        if not missing:
            continue
        images, labels = _mnist_images(split, data_dir, progress)
        bar = tqdm(missing, desc=f"simulating N-MNIST {split}", unit="shard",
                   disable=not progress)
        for k in bar:
            lo, hi = k * SHARD_SIZE, min((k + 1) * SHARD_SIZE, len(images))
            recs = simulate_recordings(images[lo:hi], labels[lo:hi], _shard_seed(seed, split, k),
                                       params, sample_ids=np.arange(lo, hi) + 1, progress=False)
            name = f"{split}-{k:03d}"
            save_event_npz(folder / f"{name}.npz", recs)
            manifest["shards"][name] = {"recordings": hi - lo,
                                        "events": int(recs.offsets[-1]),
                                        "md5": md5_file(folder / f"{name}.npz")}
            write_json(folder / MANIFEST, manifest)  # after the shard: it lists only whole ones
    return folder


def load_synth_recordings(split: str, data_dir: str | os.PathLike | None = None,
                          seed: int = 0, limit: int | None = None, build: bool = True,
                          progress: bool = True, verify: bool = True) -> EventRecordings:
    """The simulated split (training: without the real sample's 200 images), first ``limit``
    recordings; missing shards are built when ``build``, else a :class:`DatasetError`.
    ``info["files"]`` holds the md5 of each shard read (none for ``limit = 0``)."""
    from spikeforge.events.reader import load_event_npz
    from spikeforge.events.simulator import SimulatorParams

    skip = REAL_SAMPLE_IMAGES if split == "train" else 0
    total = (60_000 if split == "train" else 10_000) - skip
    count = total if limit is None else min(limit, total)
    if count == 0:  # e.g. scoring a bundle: no training shard needs reading (or building)
        return EventRecordings.from_list([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    needed = math.ceil((skip + count) / SHARD_SIZE)
    folder = synth_folder(data_dir, seed)
    manifest = _read_manifest(folder, seed, SimulatorParams(), False)
    names = [f"{split}-{k:03d}" for k in range(needed)]
    if any(n not in manifest["shards"] for n in names):
        if not build:
            raise DatasetError(f"nmnist-synth: the simulated {split} split is not built in "
                               f"{folder}; run `spikeforge data synth-nmnist`")
        build_synth_nmnist(data_dir, seed, (split,), needed, progress=progress)
        manifest = _read_manifest(folder, seed, SimulatorParams(), False)
    parts = []
    for name in names:
        path = folder / f"{name}.npz"
        if verify and (not path.is_file() or md5_file(path) != manifest["shards"][name]["md5"]):
            raise DatasetError(f"{path}: missing or corrupt (md5 differs from {MANIFEST}); "
                               f"rebuild it with `spikeforge data synth-nmnist`")
        parts.append(load_event_npz(path))
    recs = concat_recordings(parts).subset(slice(skip, skip + count))
    recs.info["files"] = {f"nmnist-synth/seed-{seed}/{name}.npz": manifest["shards"][name]["md5"]
                          for name in names}
    return recs


# ---------------------------------------------------------------- real recordings


def load_real_sample(data_dir: str | os.PathLike | None = None) -> EventRecordings:
    """The 200 real N-MNIST recordings of ``nmnist-sample/`` (md5-checked)."""
    from spikeforge.events.reader import load_event_npz

    path = resolve_data_dir(data_dir) / "nmnist-sample" / SAMPLE_FILE
    if not path.is_file():
        raise DatasetError(f"nmnist-sample: {path} is missing. It is the first 200 N-MNIST "
                           f"training recordings (see docs/events.md for where to get them); "
                           f"point --data-dir / SPIKEFORGE_DATA at the folder holding "
                           f"nmnist-sample/")
    if md5_file(path) != SAMPLE_MD5:
        raise DatasetError(f"{path}: md5 differs from the published sample's ({SAMPLE_MD5}): "
                           f"the file is corrupt or another file; fetch it again")
    return load_event_npz(path)


def load_real_nmnist(split: str, data_dir: str | os.PathLike | None = None,
                     limit: int | None = None, progress: bool = True) -> EventRecordings:
    """The real N-MNIST split from ``nmnist/`` in the data directory (the original
    ``Train/<digit>/<id>.bin`` layout, or tonic's download folder)."""
    from spikeforge.events.reader import load_nmnist_folder

    root = resolve_data_dir(data_dir) / "nmnist"
    if not root.is_dir():
        raise DatasetError(f"nmnist: {root} is missing. spikeforge cannot download N-MNIST "
                           f"(about 1 GB, from its authors' site): put its Train/ and Test/ "
                           f"folders (or tonic's NMNIST download folder) there, or train on "
                           f"the simulated set: --dataset nmnist-synth")
    return load_nmnist_folder(root, split, limit=limit, progress=progress)


# ---------------------------------------------------------------- frames for training


def recordings_to_spikes(recs: EventRecordings, timesteps: int,
                         duration_us: int = DURATION_US, progress: bool = False) -> np.ndarray:
    """Spike-line input ``(n, T, 2·H·W)`` uint8 in {0, 1} (module docstring), time-major
    within each sample so that a batch is one contiguous slice per sample."""
    from spikeforge.events.transforms import bin_recordings

    frames = bin_recordings(recs, timesteps, duration_us=duration_us, binary=True,
                            progress=progress and len(recs) > 0)
    # the feature count spelled out: an empty split cannot infer it with -1
    return frames.reshape(len(recs), timesteps, int(np.prod(frames.shape[2:])))


def load_event_dataset(name: str, data_dir: str | os.PathLike | None = None,
                       timesteps: int = 25, limit_train: int | None = None,
                       limit_test: int | None = None, download: bool = True,
                       progress: bool = True, seed: int = 0) -> Any:
    """An event dataset as a :class:`~spikeforge.data.datasets.Dataset` of spike-line input
    ``x`` uint8 ``(n, T, 2·34·34)``, image shape ``(2, 34, 34)`` (polarity, y, x)."""
    from spikeforge.data.datasets import CLASS_NAMES, Dataset

    if name not in EVENT_DATASETS:
        raise DatasetError(f"{name!r} is not an event dataset: choose one of "
                           f"{', '.join(EVENT_DATASETS)}")
    files: dict[str, str] = {}
    if name == "nmnist-synth":
        train = load_synth_recordings("train", data_dir, seed, limit_train, download, progress)
        test = load_synth_recordings("test", data_dir, seed, limit_test, download, progress)
        files = {**train.info.get("files", {}), **test.info.get("files", {})}
    elif name == "nmnist":
        train = load_real_nmnist("train", data_dir, limit_train, progress)
        test = load_real_nmnist("test", data_dir, limit_test, progress)
    else:
        test = load_real_sample(data_dir).subset(slice(0, limit_test))
        train = test.subset(slice(0, 0))
        files = {f"nmnist-sample/{SAMPLE_FILE}": SAMPLE_MD5}
    width, height, polarities = SENSOR_SIZE
    return Dataset(name, recordings_to_spikes(train, timesteps, progress=progress),
                   train.labels.astype(np.int64),
                   recordings_to_spikes(test, timesteps, progress=progress),
                   test.labels.astype(np.int64), (polarities, height, width),
                   CLASS_NAMES["mnist"], files)


def event_input_info(timesteps: int, downsample: int = 1,
                     duration_us: int = DURATION_US) -> dict[str, Any]:
    """What a bundle trained on event data expects on its input lines (the bundle's
    ``info["input"]``, rendered in its README): which line is which pixel and polarity,
    and the time bin each clock covers."""
    width, height, polarities = SENSOR_SIZE
    h, w = height // downsample, width // downsample
    return {
        "kind": "events",
        "sensor": f"{width}x{height} pixels, {polarities} polarities (N-MNIST's ATIS camera)",
        "lines": polarities * h * w,
        "line_index": f"p * {h * w} + y * {w} + x  (p: the recording's polarity bit, 0 or 1, "
                      f"as N-MNIST writes it; x, y after dividing the camera's coordinates by "
                      f"{downsample})",
        "window_us": duration_us,
        "clock_us": duration_us / timesteps,
        "rule": "line (p, y, x) spikes on clock t when that pixel sent at least one event of "
                "polarity p during [t, t + 1) clock periods after the recording starts",
    }
