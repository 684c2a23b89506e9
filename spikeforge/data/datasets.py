"""Datasets as in-memory arrays, features scaled to [0, 1] (the input current range).

``mnist`` and ``fashion-mnist`` come from the IDX files (see :mod:`spikeforge.data.files`);
``digits`` (8x8, 1,797 samples) and ``iris`` (150 samples) ship inside scikit-learn and
are split here with a fixed, stratified split (75 % train / 25 % test) so that every run
sees the same test set.

:func:`downsample_images` is the optional input front-end of small boards: it averages
``k x k`` blocks of pixels (28x28 -> 14x14 with ``k = 2``), so a layer needs ``k^2`` times
fewer input lines and synapses; values stay in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.data.files import IDX_FILES, find_idx, resolve_data_dir, verified_content
from spikeforge.data.idx import parse_idx
from spikeforge.errors import DatasetError
from spikeforge.events import EVENT_DATASETS

DATASETS = ("mnist", "fashion-mnist", "digits", "iris", *EVENT_DATASETS)

CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "digits": [str(i) for i in range(10)],
    "iris": ["setosa", "versicolor", "virginica"],
    **{name: [str(i) for i in range(10)] for name in EVENT_DATASETS},
}

#: Image shape of each dataset (``None``: not an image), known before loading it; event
#: datasets are (polarity, height, width) spike maps.
IMAGE_SHAPES: dict[str, tuple[int, ...] | None] = {
    "mnist": (28, 28), "fashion-mnist": (28, 28), "digits": (8, 8), "iris": None,
    **{name: (2, 34, 34) for name in EVENT_DATASETS}}


def is_event_dataset(name: str) -> bool:
    """Whether ``name``'s samples are spike trains (event-camera data), not static images."""
    return name in EVENT_DATASETS


def downsample_images(x: np.ndarray, image_shape: tuple[int, ...] | None, k: int
                      ) -> tuple[np.ndarray, tuple[int, int]]:
    """Average-pool flattened images ``(n, H*W)`` over ``k x k`` blocks.

    Returns ``(pooled (n, (H/k)*(W/k)) float32 in [0, 1], (H/k, W/k))``; ``k = 1`` returns
    the images unchanged. An input pixel of the pooled image is the mean of its block::

        y[n, i, j] = (1 / k^2) · sum_{a, b < k} x[n, k·i + a, k·j + b]
    """
    if image_shape is None or len(image_shape) != 2:
        raise DatasetError(f"downsample = {k}: these samples are not images (image shape "
                           f"{image_shape}); use downsample = 1")
    height, width = image_shape
    if not (isinstance(k, int) and k >= 1) or height % k or width % k:
        raise DatasetError(f"downsample = {k!r} does not divide the {height}x{width} images: "
                           f"use one of {', '.join(map(str, divisors(height, width)))}")
    if k == 1:
        return x, (height, width)
    blocks = np.asarray(x, dtype=np.float32).reshape(len(x), height // k, k, width // k, k)
    pooled = blocks.mean(axis=(2, 4), dtype=np.float64).astype(np.float32)
    np.clip(pooled, 0.0, 1.0, out=pooled)
    # the pooled size spelled out: an empty set (no samples) cannot infer it with -1
    return pooled.reshape(len(x), (height // k) * (width // k)), (height // k, width // k)


def divisors(height: int, width: int) -> list[int]:
    """The block sizes ``k`` that divide both sides of a ``height x width`` image."""
    return [k for k in range(1, min(height, width) + 1) if height % k == 0 and width % k == 0]


def pool_spikes(x: np.ndarray, image_shape: tuple[int, ...], k: int
                ) -> tuple[np.ndarray, tuple[int, ...]]:
    """Spatially pool spike-line input ``(n, T, C·H·W)`` over ``k x k`` blocks with a
    logical OR (a pooled line spikes when any of its pixels does), keeping it 0/1; the
    same as dividing the events' coordinates by ``k`` before binning."""
    channels, height, width = image_shape
    if not (isinstance(k, int) and k >= 1) or height % k or width % k:
        raise DatasetError(f"downsample = {k!r} does not divide the {height}x{width} event "
                           f"frames: use one of {', '.join(map(str, divisors(height, width)))}")
    if k == 1:
        return x, image_shape
    n, steps = x.shape[:2]
    blocks = x.reshape(n, steps, channels, height // k, k, width // k, k)
    pooled = blocks.max(axis=(4, 6))
    return (pooled.reshape(n, steps, channels * (height // k) * (width // k)),
            (channels, height // k, width // k))


@dataclass
class Dataset:
    """Train and test arrays: ``x`` float32 ``(n, features)`` in [0, 1] for static data,
    or uint8 spike lines ``(n, T, features)`` in {0, 1} for event data; ``y`` int64."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    image_shape: tuple[int, ...] | None
    class_names: list[str]
    files: dict[str, str] = field(default_factory=dict)  # file name -> verified md5

    @property
    def n_features(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def is_events(self) -> bool:
        """Spike-train samples ``(n, T, features)`` rather than static ones."""
        return self.train_x.ndim == 3

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def limit(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` / ``n_test`` samples (the sets are already shuffled)."""
        return Dataset(self.name, self.train_x[:n_train], self.train_y[:n_train],
                       self.test_x[:n_test], self.test_y[:n_test], self.image_shape,
                       self.class_names, self.files)

    def downsample(self, k: int) -> Dataset:
        """Train and test images average-pooled over ``k x k`` blocks
        (:func:`downsample_images`); ``k = 1`` returns this dataset."""
        if k == 1:
            return self
        pool = pool_spikes if self.is_events else downsample_images
        train_x, shape = pool(self.train_x, self.image_shape, k)
        test_x, _ = pool(self.test_x, self.image_shape, k)
        return Dataset(self.name, train_x, self.train_y, test_x, self.test_y, shape,
                       self.class_names, self.files)

    def hold_out(self, n_validation: int) -> Dataset:
        """A validation split: the first ``len(train) - n_validation`` training samples
        train, the last ``n_validation`` take the place of the test set (the sets are already
        shuffled). For choosing a design without ever looking at the test set."""
        n_train = len(self.train_x) - n_validation
        if not 1 <= n_validation < len(self.train_x):
            raise DatasetError(f"cannot hold out {n_validation} of {len(self.train_x)} "
                               f"training samples for validation")
        return Dataset(self.name, self.train_x[:n_train], self.train_y[:n_train],
                       self.train_x[n_train:], self.train_y[n_train:], self.image_shape,
                       self.class_names, self.files)


def _load_idx_dataset(name: str, data_dir: Path, download: bool, progress: bool) -> Dataset:
    folder = data_dir / name
    specs = IDX_FILES[name]
    paths = {key: find_idx(folder, spec) for key, spec in specs.items()}
    if any(p is None for p in paths.values()):
        if not download:
            missing = ", ".join(specs[k].name for k, p in paths.items() if p is None)
            raise DatasetError(f"{name}: missing {missing} in {folder}. Run `spikeforge data "
                               f"fetch {name}` or point --data-dir / SPIKEFORGE_DATA at a "
                               f"folder that has {name}/")
        from spikeforge.data.downloads import fetch

        fetch(name, data_dir, progress=progress)
        paths = {key: find_idx(folder, spec) for key, spec in specs.items()}
    arrays, md5s = {}, {}
    for key, spec in specs.items():
        content, md5 = verified_content(paths[key], spec, name)
        arrays[key] = parse_idx(content, str(paths[key]))
        md5s[paths[key].name] = md5
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(f"{name}: {split} images {images.shape} and labels "
                               f"{labels.shape} do not match (images must be (n, rows, "
                               f"columns), labels (n,)): these are not the original files; "
                               f"delete them and run `spikeforge data fetch {name}`")
    scale = np.float32(1 / 255)
    return Dataset(
        name,
        arrays["train_images"].reshape(len(arrays["train_images"]), -1).astype(np.float32) * scale,
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"].reshape(len(arrays["test_images"]), -1).astype(np.float32) * scale,
        arrays["test_labels"].astype(np.int64),
        tuple(arrays["train_images"].shape[1:]),
        CLASS_NAMES[name],
        md5s,
    )


def _load_sklearn_dataset(name: str) -> Dataset:
    from sklearn import datasets as skd
    from sklearn.model_selection import train_test_split

    bunch = skd.load_digits() if name == "digits" else skd.load_iris()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    tr_x, te_x, tr_y, te_y = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    if name == "digits":  # 4-bit grey levels 0..16
        tr_x, te_x = tr_x / 16.0, te_x / 16.0
    else:  # min-max on the training split; test values are clipped into the same range
        lo, hi = tr_x.min(0), tr_x.max(0)
        tr_x, te_x = (tr_x - lo) / (hi - lo), np.clip((te_x - lo) / (hi - lo), 0.0, 1.0)
    return Dataset(name, tr_x.astype(np.float32), tr_y, te_x.astype(np.float32), te_y,
                   (8, 8) if name == "digits" else None, CLASS_NAMES[name],
                   {f"sklearn:{name}": "bundled with scikit-learn"})


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
                 progress: bool = True, timesteps: int = 25, limit_train: int | None = None,
                 limit_test: int | None = None) -> Dataset:
    """Load a dataset by name (one of :data:`DATASETS`), fetching IDX files if missing.

    Event datasets are binned into ``timesteps`` spike frames
    (:func:`spikeforge.events.datasets.load_event_dataset`; the simulated N-MNIST is built
    when missing) and read only as far as ``limit_train`` / ``limit_test`` need; static
    datasets ignore the three and are limited by :meth:`Dataset.limit`."""
    if name not in DATASETS:
        raise DatasetError(f"dataset = {name!r} is unknown: choose one of {', '.join(DATASETS)}")
    if is_event_dataset(name):
        from spikeforge.events.datasets import load_event_dataset

        return load_event_dataset(name, data_dir, timesteps, limit_train, limit_test, download,
                                  progress)
    if name in IDX_FILES:
        return _load_idx_dataset(name, resolve_data_dir(data_dir), download, progress)
    return _load_sklearn_dataset(name)
