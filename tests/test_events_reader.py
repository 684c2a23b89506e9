"""The N-MNIST event reader: the original binary format against the real sample, dataset
folders (official and tonic layouts), the flat .npz, and fuzzing of the parser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.errors import DatasetError
from spikeforge.events import EVENT_DTYPE, SENSOR_SIZE, EventRecordings, make_events
from spikeforge.events.reader import (
    T_MAX,
    EventFormatError,
    decode_bin,
    encode_bin,
    find_split_dir,
    load_event_npz,
    load_nmnist_folder,
    read_bin,
    save_event_npz,
)

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sample() -> Path:
    """The shared N-MNIST sample (raw/*.bs2 and nmnist_sample200.npz)."""
    root = os.environ.get("SPIKEFORGE_DATA")
    path = None if root is None else Path(root) / "nmnist-sample"
    if path is None or not (path / "nmnist_sample200.npz").is_file():
        pytest.skip("no N-MNIST sample: set SPIKEFORGE_DATA to the shared datasets folder")
    return path


@pytest.fixture(scope="module")
def flat(sample: Path) -> dict[str, np.ndarray]:
    with np.load(sample / "nmnist_sample200.npz") as npz:
        return {key: npz[key] for key in npz.files}


def raw_labels(sample: Path) -> dict[int, int]:
    """raw/labels.txt: ``<sample>\\t<class>`` lines after a ``#`` header."""
    rows = [line.split() for line in (sample / "raw" / "labels.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    return {int(n): int(c) for n, c in rows}


def raw_bytes(sample: Path, n: int) -> bytes:
    return (sample / "raw" / f"{n}.bs2").read_bytes()


# ---------------------------------------------------------------------------------------
# the binary format on real files
# ---------------------------------------------------------------------------------------

def test_raw_files_decode_to_the_npz_events(sample, flat):
    labels = raw_labels(sample)
    assert sorted(labels) == list(range(1, 21))
    for n in range(1, 21):
        events = read_bin(sample / "raw" / f"{n}.bs2")
        i = int(np.flatnonzero(flat["sample_id"] == n)[0])
        a, b = flat["offsets"][i], flat["offsets"][i + 1]
        assert events.dtype == EVENT_DTYPE
        assert len(events) == b - a
        for key in ("x", "y", "p", "t"):
            np.testing.assert_array_equal(events[key], flat[key][a:b], err_msg=f"{n}: {key}")
        assert labels[n] == flat["label"][i]


def test_encode_inverts_decode_on_real_files(sample):
    for n in range(1, 21):
        data = raw_bytes(sample, n)
        assert encode_bin(decode_bin(data)) == data


def test_empty_input_is_zero_events():
    events = decode_bin(b"")
    assert events.dtype == EVENT_DTYPE and len(events) == 0
    assert encode_bin(events) == b""


def test_decoding_the_bit_layout():
    # x=3, y=7, ON, t = 0x12345 | (0x5 << 16) -> bytes 03 07 85 23 45
    events = decode_bin(bytes([3, 7, 0x80 | 0x05, 0x23, 0x45, 33, 0, 0x7F, 0xFF, 0xFF]))
    assert events.tolist() == [(3, 7, 0x052345, 1), (33, 0, T_MAX, 0)]


# ---------------------------------------------------------------------------------------
# errors of the parser
# ---------------------------------------------------------------------------------------

def test_truncated_file_names_file_and_byte_offset(sample, tmp_path):
    data = raw_bytes(sample, 1)
    path = tmp_path / "00001.bin"
    path.write_bytes(data[:-2])
    with pytest.raises(EventFormatError) as info:
        read_bin(path)
    start = (len(data) - 2) // 5 * 5
    message = str(info.value)
    assert str(path) in message and f"byte offset {start}" in message
    assert "3 of its 5 bytes" in message and "download" in message
    assert isinstance(info.value, DatasetError)


def test_coordinate_outside_sensor_names_event_and_offset():
    events = make_events(np.array([1, 2, 3, 4]), np.array([1, 2, 3, 4]),
                         np.array([10, 20, 30, 40]), np.array([0, 1, 0, 1]))
    data = bytearray(encode_bin(events))
    data[3 * 5] = 34  # x of event 3
    with pytest.raises(EventFormatError, match=r"f\.bin: event 3 at byte offset 15 .*\(34, 4\)"):
        decode_bin(bytes(data), "f.bin")
    data[3 * 5], data[1 * 5 + 1] = 4, 240  # y of event 1: the overflow marker
    with pytest.raises(EventFormatError, match=r"event 1 at byte offset 5 .*overflow marker"):
        decode_bin(bytes(data), "f.bin")


def test_time_going_backwards_is_an_error():
    events = make_events(np.array([1, 2, 3]), np.array([1, 2, 3]), np.array([10, 20, 30]),
                         np.array([0, 1, 0]))
    data = bytearray(encode_bin(events))
    data[2 * 5 + 4] = 5  # t of event 2 becomes 5 < 20
    with pytest.raises(EventFormatError, match=r"event 2 at byte offset 10 has timestamp 5"):
        decode_bin(bytes(data), "f.bin")


def test_real_files_are_time_ordered(sample):
    # the decision above rests on this: every real recording is non-decreasing in t
    for n in range(1, 21):
        t = decode_bin(raw_bytes(sample, n))["t"]
        assert np.all(np.diff(t) >= 0) and t.max() < 400_000


@pytest.mark.parametrize("field, value, problem", [
    ("x", 34, "outside"), ("y", -1, "outside"), ("p", 2, "polarity"),
    ("t", T_MAX + 1, "23 bits"), ("t", -1, "23 bits")])
def test_encode_refuses_what_does_not_fit(field, value, problem):
    events = make_events(np.array([1, 2]), np.array([1, 2]), np.array([10, 20]),
                         np.array([0, 1]))
    events[field][1] = value
    with pytest.raises(ValueError, match=problem):
        encode_bin(events)


def test_encode_refuses_decreasing_time():
    events = make_events(np.array([1, 2]), np.array([1, 2]), np.array([20, 10]),
                         np.array([0, 1]))
    with pytest.raises(ValueError, match="decrease"):
        encode_bin(events)


# ---------------------------------------------------------------------------------------
# fuzzing: only EventFormatError (or success) may come out of the parser
# ---------------------------------------------------------------------------------------

def _decode_or_format_error(data: bytes) -> np.ndarray | None:
    try:
        events = decode_bin(data, "fuzz.bin")
    except EventFormatError as e:
        assert "fuzz.bin" in str(e) and "byte offset" in str(e)
        return None
    assert len(events) * 5 == len(data)
    assert np.all(events["x"] < 34) and np.all(events["y"] < 34)
    assert np.all(np.diff(events["t"]) >= 0)
    assert encode_bin(events) == data  # anything accepted is reproduced exactly
    return events


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    _decode_or_format_error(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 33), st.integers(0, 33), st.integers(0, T_MAX),
                          st.integers(0, 1)), max_size=50))
def test_fuzz_valid_events_round_trip(rows):
    rows.sort(key=lambda r: r[2])
    events = np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, EVENT_DTYPE)
    decoded = decode_bin(encode_bin(events))
    np.testing.assert_array_equal(decoded, events)


@FUZZ
@given(cut=st.integers(0, 5000), flips=st.lists(st.tuples(st.integers(0, 4999),
                                                          st.integers(0, 255)), max_size=6))
def test_fuzz_truncated_and_mutated_real_file(sample, cut, flips):
    data = bytearray(raw_bytes(sample, 19)[:5000])
    for position, value in flips:
        data[position] = value
    _decode_or_format_error(bytes(data[:cut]))
    _decode_or_format_error(bytes(data))


# ---------------------------------------------------------------------------------------
# dataset folders
# ---------------------------------------------------------------------------------------

def _make_tree(sample: Path, split_dir: Path, ids: range) -> dict[int, int]:
    """``split_dir/<digit>/<id:05d>.bin`` from the raw files, as the official release
    names them; returns id -> label."""
    labels = raw_labels(sample)
    for n in ids:
        folder = split_dir / str(labels[n])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample / "raw" / f"{n}.bs2", folder / f"{n:05d}.bin")
    return {n: labels[n] for n in ids}


def _check_loaded(recs: EventRecordings, sample: Path, expected: dict[int, int]) -> None:
    order = sorted(expected, key=lambda n: (expected[n], n))
    np.testing.assert_array_equal(recs.sample_ids, order)
    np.testing.assert_array_equal(recs.labels, [expected[n] for n in order])
    assert recs.sensor_size == SENSOR_SIZE
    for i, n in enumerate(order):
        np.testing.assert_array_equal(recs[i], decode_bin(raw_bytes(sample, n)))


def test_load_official_layout(sample, tmp_path):
    train = _make_tree(sample, tmp_path / "Train", range(1, 16))
    test = _make_tree(sample, tmp_path / "Test", range(16, 21))
    recs = load_nmnist_folder(tmp_path, "train", progress=False)
    _check_loaded(recs, sample, train)
    assert recs.x.dtype == np.uint8 and recs.t.dtype == np.uint32
    assert recs.info["split"] == "train"
    _check_loaded(load_nmnist_folder(tmp_path, "test", progress=False), sample, test)


def test_load_tonic_layout(sample, tmp_path):
    # tonic: NMNIST(save_to=root) extracts train.zip into root/NMNIST -> root/NMNIST/Train
    split_dir = tmp_path / "data" / "NMNIST" / "Train"
    expected = _make_tree(sample, split_dir, range(1, 21))
    for root in (tmp_path / "data", tmp_path / "data" / "NMNIST", split_dir):
        assert find_split_dir(root, "train") == split_dir
        _check_loaded(load_nmnist_folder(root, progress=False), sample, expected)


def test_load_lower_case_folder_and_limit(sample, tmp_path):
    labels = _make_tree(sample, tmp_path / "train", range(1, 21))
    recs = load_nmnist_folder(tmp_path, limit=6, progress=False)
    # the six smallest ids, in (digit, id) order
    _check_loaded(recs, sample, {n: labels[n] for n in range(1, 7)})


def test_load_errors(sample, tmp_path):
    with pytest.raises(DatasetError, match=r"Train/<digit>/<id>\.bin.*NMNIST/Train"):
        load_nmnist_folder(tmp_path, progress=False)
    with pytest.raises(DatasetError, match="no such folder"):
        load_nmnist_folder(tmp_path / "absent", progress=False)
    with pytest.raises(DatasetError, match="split"):
        load_nmnist_folder(tmp_path, "validation", progress=False)
    (tmp_path / "Train" / "3").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no <digit>/<id>.bin files"):
        load_nmnist_folder(tmp_path, progress=False)
    (tmp_path / "Train" / "3" / "copy of 12.bin").write_bytes(raw_bytes(sample, 12))
    with pytest.raises(DatasetError, match="<number>.bin"):
        load_nmnist_folder(tmp_path, progress=False)
    (tmp_path / "Train" / "3" / "copy of 12.bin").unlink()
    (tmp_path / "Train" / "3" / "00012.bin").write_bytes(raw_bytes(sample, 12)[:-1])
    with pytest.raises(EventFormatError, match="00012.bin"):
        load_nmnist_folder(tmp_path, progress=False)


# ---------------------------------------------------------------------------------------
# the flat .npz
# ---------------------------------------------------------------------------------------

def _same(a: EventRecordings, b: EventRecordings) -> None:
    for key in ("x", "y", "t", "p", "offsets", "labels", "sample_ids"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        assert getattr(a, key).dtype == getattr(b, key).dtype, key
    assert a.sensor_size == b.sensor_size


def test_npz_loads_the_sample_and_round_trips(sample, flat, tmp_path):
    recs = load_event_npz(sample / "nmnist_sample200.npz")
    assert len(recs) == 200 and recs.sensor_size == SENSOR_SIZE
    np.testing.assert_array_equal(recs.labels, flat["label"])
    np.testing.assert_array_equal(recs.info["split"], flat["split"])
    for compressed in (False, True):
        path = tmp_path / f"events-{compressed}.npz"
        save_event_npz(path, recs, compressed=compressed)
        again = load_event_npz(path)
        _same(recs, again)
        np.testing.assert_array_equal(again.info["split"], flat["split"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events-False.npz", "events-True.npz"]


def test_npz_round_trip_of_a_small_set(tmp_path):
    recs = EventRecordings.from_list(
        [make_events(np.array([1, 33]), np.array([0, 5]), np.array([3, 3]), np.array([1, 0])),
         np.zeros(0, EVENT_DTYPE),
         make_events(np.array([2]), np.array([2]), np.array([1]), np.array([0]))],
        labels=np.array([7, 1, 3]))
    path = tmp_path / "small.npz"
    path.write_bytes(b"old")
    save_event_npz(path, recs)  # replaces the old file
    again = load_event_npz(path)
    assert again.sample_ids is None
    np.testing.assert_array_equal(again.n_events, [2, 0, 1])
    np.testing.assert_array_equal(again[0], recs[0])


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


GOOD = {"x": np.array([1, 2, 3], np.uint8), "y": np.array([1, 2, 3], np.uint8),
        "p": np.array([0, 1, 0], np.uint8), "t": np.array([5, 9, 2], np.uint32),
        "offsets": np.array([0, 2, 3]), "label": np.array([4, 5])}


def test_good_fixture_loads(tmp_path):
    recs = load_event_npz(_write(tmp_path / "good.npz", **GOOD))
    np.testing.assert_array_equal(recs.n_events, [2, 1])


@pytest.mark.parametrize("change, key", [
    ({"offsets": None}, "offsets"),
    ({"offsets": np.array([0, 2, 4])}, "offsets"),
    ({"offsets": np.array([1, 2, 3])}, "offsets"),
    ({"offsets": np.array([0, 3, 2, 3])}, "offsets"),
    ({"x": np.array([1, 34, 3], np.uint8)}, "x"),
    ({"y": np.array([1, 2], np.uint8)}, "y"),
    ({"p": np.array([0, 2, 0], np.uint8)}, "p"),
    ({"t": np.array([5.0, 9.0, 2.0])}, "t"),
    ({"t": np.array([9, 5, 2], np.uint32)}, "t"),
    ({"label": np.array([4])}, "label"),
    ({"sample_id": np.array([1, 2, 3])}, "sample_id"),
])
def test_corrupt_npz_is_refused_naming_the_key(tmp_path, change, key):
    arrays = {**GOOD, **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=rf"bad\.npz: (key '{key}'|missing key\(s\) {key})"):
        load_event_npz(path)


def test_unreadable_npz_files(sample, tmp_path):
    not_zip = tmp_path / "notes.npz"
    not_zip.write_text("these are not events\n")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_event_npz(not_zip)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((sample / "nmnist_sample200.npz").read_bytes()[:100_000])
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_event_npz(truncated)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    with pytest.raises(DatasetError, match="single .npy array"):
        load_event_npz(single)
    with pytest.raises(DatasetError, match="no such event file"):
        load_event_npz(tmp_path / "absent.npz")
