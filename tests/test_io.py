"""Atomic writes: a failed write leaves the previous file intact and no temp files."""

from __future__ import annotations

import pytest

from spikeforge.io import atomic_write, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"test_accuracy": 0.98})

    def crash(f):
        f.write(b'{"test_accura')
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == '{\n  "test_accuracy": 0.98\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_written_files_get_the_permissions_of_an_ordinary_file(tmp_path):
    ordinary = tmp_path / "plain.txt"
    ordinary.write_bytes(b"x")
    target = tmp_path / "atomic.txt"
    atomic_write(target, lambda f: f.write(b"x"))
    assert target.stat().st_mode == ordinary.stat().st_mode  # not mkstemp's 0600
