"""Fuzzing: random and mutated inputs for every reader of outside data. Only the documented
error type may come out (a :class:`SpikeforgeError` subclass, which the CLI turns into exit
code 2 and a message), never another exception, a hang or a silently wrong result.

Readers covered here: the IDX reader (MNIST, Fashion-MNIST), the bundle loader (spec.json,
weights.npz and the analog circuit section) and the config parser (TOML text and dicts).
The N-MNIST reader is fuzzed in ``tests/test_events_reader.py`` (random files, random
events, truncated and bit-flipped recordings): the same property, kept beside its reader.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.config import TrainConfig, load_toml
from spikeforge.data.idx import encode_idx, parse_idx, read_idx
from spikeforge.errors import ConfigError, DatasetError
from spikeforge.hardware.bundle import BundleError, load_bundle

ROOT = Path(__file__).resolve().parents[2]

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FUZZ_FILES = settings(FUZZ, max_examples=120)  # examples that write files

# ------------------------------------------------------------------------------ IDX reader


def _header(code: int, shape: list[int]) -> bytes:
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


@FUZZ
@given(st.binary(max_size=300))
def test_idx_reader_random_bytes(data):
    try:
        array = parse_idx(data, "fuzz.idx")
    except DatasetError as e:
        assert "fuzz.idx" in str(e)  # the message names the file
    else:  # accepted only when the header accounts for every byte
        assert array.ndim == data[3] and array.nbytes == len(data) - 4 - 4 * data[3]


@FUZZ
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]),
       shape=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), max_size=6),
       payload=st.binary(max_size=200))
def test_idx_reader_random_headers_never_allocate_what_the_file_lacks(code, shape, payload):
    """Huge sizes (up to 2^32 - 1 per axis, products beyond 2^64) are refused by the byte
    count before anything is allocated."""
    try:
        array = parse_idx(_header(code, shape) + payload, "fuzz.idx")
    except DatasetError:
        return
    assert list(array.shape) == shape and array.nbytes == len(payload)


@FUZZ
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=st.integers(0, 99),
       cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 199),
                                                          st.integers(1, 255)), max_size=4),
       tail=st.binary(max_size=8))
def test_idx_reader_mutated_files(shape, seed, cut, flips, tail):
    original = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    data = bytearray(encode_idx(original))
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    data = bytes(data[:cut] if cut < len(data) else data) + tail
    try:
        array = parse_idx(data, "fuzz.idx")
    except DatasetError:
        return
    if data == encode_idx(original):
        np.testing.assert_array_equal(array, original)


@FUZZ_FILES
@given(data=st.binary(max_size=200), gzipped=st.booleans(), compress=st.booleans())
def test_idx_files_on_disk_plain_or_gzip(data, gzipped, compress):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.idx.gz" if gzipped else "x.idx")
        path.write_bytes(gzip.compress(data) if gzipped and compress else data)
        try:
            read_idx(path)
        except DatasetError as e:
            assert str(path) in str(e)


# ---------------------------------------------------------------------------- bundle loader

#: JSON values of every kind, with the awkward ones (NaN, infinities, huge integers, empty
#: containers) drawn often
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-3, 3)
                | st.sampled_from([2**63, -(2**64), 10**30, 0.5, 1e308, -0.0])
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
                | st.sampled_from(["", "zero", "digital", "analog", "fc1.weight", "E24"]))
JSON = st.recursive(JSON_SCALARS, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON document (the root is ``()``)."""
    out = [prefix]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    for key, value in items:
        out += _paths(value, (*prefix, key))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """One random edit of ``doc``: a value replaced, a key or item deleted, a key added."""
    path = data.draw(st.sampled_from(_paths(doc)), "path")
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), "action")
    if not path:
        return data.draw(JSON, "document") if action == "replace" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "replace":
        parent[path[-1]] = data.draw(JSON, "value")
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=6), "key")] = data.draw(JSON, "value")
    else:
        parent.append(data.draw(JSON, "value"))
    return doc


def _load_fully(folder: Path) -> Any:
    """What every consumer of a bundle does first: load it and, for an analog bundle with
    a circuit, rebuild the circuit."""
    bundle = load_bundle(folder)
    if bundle.target == "analog" and (bundle.info.get("analog") or {}).get("circuit"):
        bundle.circuit()
    return bundle


def _copy(folder: Path, tmp: str) -> Path:
    copy = Path(tmp) / "bundle"
    copy.mkdir()
    for name in ("spec.json", "weights.npz"):
        shutil.copy(folder / name, copy / name)
    return copy


@FUZZ_FILES
@given(target=st.sampled_from(["digital", "analog"]), data=st.data())
def test_bundle_loader_mutated_spec_json(bundle_factory, target, data):
    folder = bundle_factory(target)
    doc = json.loads((folder / "spec.json").read_text())
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        doc = _mutate(doc, data)
    with tempfile.TemporaryDirectory() as tmp:
        copy = _copy(folder, tmp)
        (copy / "spec.json").write_text(json.dumps(doc))
        try:
            _load_fully(copy)
        except BundleError as e:
            assert "spec.json" in str(e) or "weights.npz" in str(e)


ARRAY_DTYPES = st.sampled_from([np.int8, np.int64, np.uint64, np.float16, np.float32,
                                np.float64, np.bool_, np.complex128, "<U3", "datetime64[s]"])


@st.composite
def arrays(draw: Any, like: np.ndarray) -> np.ndarray:
    """An array shaped like ``like`` (usually) or otherwise, of any dtype, with NaN and
    infinities among its values when it can hold them."""
    shape = like.shape if draw(st.booleans()) else tuple(draw(st.lists(st.integers(0, 4),
                                                                       max_size=3)))
    dtype = np.dtype(draw(ARRAY_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.normal(0, draw(st.sampled_from([1.0, 1e3, 1e6, 1e40])), shape)
    if values.size and draw(st.booleans()):
        values.flat[rng.integers(values.size)] = draw(st.sampled_from([np.nan, np.inf,
                                                                       -np.inf, 0.0]))
    with np.errstate(all="ignore"):
        if dtype.kind in "US":
            return values.astype(str).astype(dtype)
        if dtype.kind == "M":
            return np.zeros(shape, dtype)
        if dtype.kind in "iub":
            return np.nan_to_num(values, posinf=1e3, neginf=-1e3).astype(dtype)
        return values.astype(dtype)


@FUZZ_FILES
@given(target=st.sampled_from(["digital", "analog"]), data=st.data())
def test_bundle_loader_mutated_weights(bundle_factory, target, data):
    folder = bundle_factory(target)
    with np.load(folder / "weights.npz") as npz:
        content = {k: npz[k] for k in npz.files}
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        key = data.draw(st.sampled_from(sorted(content)), "key")
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), "action")
        if action == "delete" and len(content) > 1:
            del content[key]
        elif action == "add":
            content[f"{key}.extra"] = data.draw(arrays(content[key]), "array")
        else:
            content[key] = data.draw(arrays(content[key]), "array")
    with tempfile.TemporaryDirectory() as tmp:
        copy = _copy(folder, tmp)
        np.savez(copy / "weights.npz", **content)
        try:
            _load_fully(copy)
        except BundleError as e:
            assert "weights.npz" in str(e) or "spec.json" in str(e)


@FUZZ_FILES
@given(target=st.sampled_from(["digital", "analog"]), which=st.sampled_from(
    ["spec.json", "weights.npz"]), cut=st.integers(0, 100_000),
       flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 255)), max_size=5),
       junk=st.binary(max_size=64))
def test_bundle_loader_damaged_files(bundle_factory, target, which, cut, flips, junk):
    """Bytes flipped, files cut short or replaced by junk, as a bad copy would leave them."""
    folder = bundle_factory(target)
    with tempfile.TemporaryDirectory() as tmp:
        copy = _copy(folder, tmp)
        raw = bytearray((copy / which).read_bytes())
        for pos, xor in flips:
            raw[pos % len(raw)] ^= xor
        (copy / which).write_bytes(bytes(raw[:cut]) + junk)
        try:
            _load_fully(copy)
        except BundleError as e:
            assert which in str(e)


@pytest.mark.parametrize("target", ["digital", "analog"])
def test_bundle_loader_deeply_nested_json(bundle_factory, tmp_path, target):
    copy = _copy(bundle_factory(target), str(tmp_path))
    (copy / "spec.json").write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(copy)


# ---------------------------------------------------------------------------- config parser

FIELDS = [name for name in TrainConfig.__dataclass_fields__]
#: values a TOML file or a Python caller might hand the parser
CONFIG_VALUES = (JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3)
                 | st.dictionaries(st.text(max_size=4), JSON_SCALARS, max_size=2)
                 | st.sampled_from(["128,64", "10k:1M", "E24", "mnist", "digits", "conv",
                                    "poisson", "alif", "subtract", "cosine", "1e-3", "iris"])
                 | st.dates() | st.datetimes() | st.times())


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS) | st.sampled_from([f.replace("_", "-") for f in
                                                                  FIELDS]) | st.text(max_size=8),
                       CONFIG_VALUES, max_size=4))
def test_config_parser_random_dicts(settings_dict):
    try:
        TrainConfig.from_dict(settings_dict)
    except ConfigError as e:
        assert str(e)


@FUZZ
@given(st.sampled_from(FIELDS), CONFIG_VALUES)
def test_config_errors_name_the_option(name, value):
    """One bad option: the message names that option (as the user spells it)."""
    try:
        TrainConfig.from_dict({name: value})
    except ConfigError as e:
        spelled = {"decay": "decay", "input_scale": "input_scale"}.get(name, name)
        assert spelled in str(e), (name, value, str(e))


def _toml_text_strategy() -> st.SearchStrategy[str]:
    reference = (ROOT / "configs" / "reference.toml").read_text()

    @st.composite
    def mutated(draw: Any) -> str:
        text = reference
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(text)))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            piece = draw(st.sampled_from(['"', "=", "[", "]", "\n", "#", "1e999", "-", "{",
                                          "0x", "nan", "inf", "true", "'", "\\", ","])
                         | st.text(max_size=4))
            if op == "insert":
                text = text[:pos] + piece + text[pos:]
            elif op == "delete":
                text = text[:pos] + text[pos + len(piece) + 1:]
            else:
                text = text[:pos] + piece + text[pos + len(piece):]
        return text

    return st.text(max_size=120) | mutated()


@FUZZ_FILES
@given(text=_toml_text_strategy(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_config_parser_random_and_mutated_toml(text, encoding):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.toml"
        try:
            path.write_bytes(text.encode(encoding))
        except UnicodeEncodeError:
            return
        try:
            TrainConfig.from_dict(load_toml(path), source=str(path))
        except ConfigError as e:
            assert str(path) in str(e) or "=" in str(e) or "unknown option" in str(e)


def test_config_parser_deeply_nested_toml(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("hidden = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="too deeply"):
        load_toml(path)


@FUZZ
@given(st.binary(max_size=200))
def test_config_parser_random_bytes(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.toml"
        path.write_bytes(raw)
        try:
            load_toml(path)
        except ConfigError as e:
            assert str(path) in str(e)


def test_toml_that_parses_is_what_the_config_sees():
    """A sanity check of the fuzzed path: valid TOML reaches the dataclass unchanged."""
    text = 'epochs = 2\nhidden = [32, 16]\nlr = 1e-3\ndataset = "digits"\n'
    config = TrainConfig.from_dict(tomllib.loads(text))
    assert (config.epochs, config.hidden, config.lr) == (2, (32, 16), 1e-3)
    assert math.isfinite(config.lr)
