"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), plain or gzipped.

Layout: a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in row-major order. MNIST uses dtype ``0x08`` (uint8).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from spikeforge.errors import DatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def read_bytes(path: Path) -> bytes:
    """File content, gunzipped when the name ends in ``.gz``."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: not a valid gzip file ({e}); delete it and fetch it again "
                           f"with `spikeforge data fetch`") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Array from IDX bytes; :class:`DatasetError` naming ``name`` if they are malformed."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{name}: not an IDX file (bad magic number {data[:4].hex()!r}); "
                           f"delete it and fetch it again with `spikeforge data fetch`")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise DatasetError(f"{name}: unknown IDX element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{name}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    # Python integers: a corrupt header's sizes (up to 2^32 - 1 each) cannot overflow
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(f"{name}: IDX header says shape {shape} ({expected} bytes) but the "
                           f"file has {len(data)} bytes: it is truncated or corrupt; delete it "
                           f"and fetch it again with `spikeforge data fetch`")
    try:
        array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    except ValueError:  # an empty array with absurd sizes beside its zero
        raise DatasetError(f"{name}: IDX header says shape {shape}, which no array can have: "
                           f"the file is corrupt; delete it and fetch it again with "
                           f"`spikeforge data fetch`") from None
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain)."""
    return parse_idx(read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 or int8 array (the inverse of :func:`parse_idx`)."""
    code = _CODES.get(array.dtype)
    if code is None:
        raise ValueError(f"IDX writing supports uint8 and int8, not {array.dtype}")
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return head + np.ascontiguousarray(array).tobytes()
