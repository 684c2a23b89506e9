"""Crash safety: every output is written to a temporary name and renamed into place; a
training run killed with SIGKILL at random moments resumes with ``--resume`` and ends
exactly where an uninterrupted run ends; a bundle is never half-written, whatever step of
the export fails or is killed.

Elsewhere: ``tests/test_io.py`` (a failed atomic write keeps the old file, leaves no
temporaries), ``tests/test_train.py`` (one SIGKILL into a 20,000-image MNIST run),
``tests/test_hardware_training.py`` (pruning masks survive an interrupted run).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from spikeforge.config import TrainConfig
from spikeforge.hardware.bundle import load_bundle, write_bundle
from spikeforge.train import fit

from .conftest import DIGITS_RUN, SPIKEFORGE, make_bundle, subprocess_env

# ------------------------------------------------------------- every output, atomically

_WRITES: list[str] | None = None  # paths opened for writing while a test listens


def _audit(event: str, args: tuple) -> None:
    if _WRITES is None or event != "open" or not isinstance(args[0], (str, bytes, Path)):
        return
    path, mode, flags = args
    writing = (mode is not None and any(c in mode for c in "wax+")) or \
        (mode is None and flags & (os.O_WRONLY | os.O_RDWR))
    if writing:
        _WRITES.append(os.fsdecode(path))


sys.addaudithook(_audit)  # hooks cannot be removed: it listens only inside `_listening`


def _is_temporary(path: Path, root: Path) -> bool:
    """A temporary name (``.<name>.<random>.tmp``) or inside a temporary folder."""
    return any(part.startswith(".") and part.endswith(".tmp")
               for part in path.relative_to(root).parts)


def test_every_output_is_written_under_a_temporary_name_then_renamed(tmp_path, data_dir):
    """Every file spikeforge opens for writing in a run directory or a bundle (checkpoint,
    history, metrics, plots, spec.json, weights, CSV, README, BOM, placement, drawings,
    netlist) is a temporary file or lies in a temporary folder: a crash can leave only
    temporaries, never a half-written output."""
    from spikeforge.hardware.export import export

    global _WRITES
    _WRITES = []
    try:
        fit(TrainConfig.from_dict({"dataset": "mnist", "limit_train": 500, "limit_test": 200,
                                   "hidden": [16], "epochs": 2}),
            tmp_path / "run", progress=False)
        for target in ("digital", "analog"):
            export(tmp_path / "run", tmp_path / target, target)
            export(tmp_path / "run", tmp_path / target, target, force=True)  # replacing
        written = [Path(p) for p in _WRITES]
    finally:
        _WRITES = None
    ours = [p for p in written if p.is_relative_to(tmp_path)]
    outputs = {p.name for p in ours}
    for name in ("checkpoint.pt", "history.csv", "metrics.json", "confusion_matrix.png",
                 "weights.npz", "spec.json", "README.md", "bom.csv", "placement.csv",
                 "board.net"):
        assert any(name in n for n in outputs), f"{name} was not written at all"
    direct = [p for p in ours if not _is_temporary(p, tmp_path)]
    assert not direct, f"written in place, not atomically: {direct}"
    leftovers = [p for p in tmp_path.rglob("*") if _is_temporary(p, tmp_path)]
    assert not leftovers, f"temporaries left behind: {leftovers}"


# --------------------------------------------------- a failed write during training


def test_a_checkpoint_write_that_fails_keeps_the_last_one_and_resume_finishes(tmp_path,
                                                                            monkeypatch):
    """The disk fills up while epoch 3's checkpoint is being written: the run stops, epoch
    2's checkpoint is intact, no temporary is left, and ``--resume`` ends exactly like a
    run that was never interrupted."""
    settings = {**DIGITS_RUN, "epochs": 4}
    straight = fit(TrainConfig.from_dict(settings), tmp_path / "straight", progress=False,
                   plots=False)
    real_save, calls = torch.save, []

    def failing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    run = tmp_path / "cut"
    with pytest.raises(OSError, match="No space left"):
        fit(TrainConfig.from_dict(settings), run, progress=False, plots=False)
    monkeypatch.undo()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "history.csv"]
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    resumed = fit(TrainConfig(), run, resume=True, progress=False, plots=False)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    _assert_same_weights(run, tmp_path / "straight")


def _assert_same_weights(a: Path, b: Path) -> None:
    left = torch.load(a / "checkpoint.pt", weights_only=True)["model"]
    right = torch.load(b / "checkpoint.pt", weights_only=True)["model"]
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


# ------------------------------------------------------------ SIGKILL at random moments

KILLED_RUN = {"dataset": "mnist", "limit_train": 6000, "limit_test": 500, "hidden": [128],
              "epochs": 8, "batch_size": 64}


def test_sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_run(tmp_path,
                                                                             data_dir):
    """``spikeforge train`` in a child process, killed with SIGKILL twice at a random moment
    of an epoch (training, evaluating or writing, wherever it lands), each time continued
    with ``--resume``. The final accuracy, every epoch's figures and every weight equal
    those of an uninterrupted run with the same seed."""
    rng = random.Random()  # a fresh moment every time: the property must hold for all
    args = [f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in KILLED_RUN.items()]
    run_dir = tmp_path / "killed"
    env = subprocess_env()
    kills: list[str] = []
    result = None
    for _ in range(5):
        resume = (run_dir / "checkpoint.pt").exists()
        command = [*SPIKEFORGE, "train", *(["--resume", str(run_dir)] if resume
                                           else [*args, f"--out={run_dir}"]),
                   "--no-progress", "--json"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if len(kills) < 2 and (epoch_seconds := _time_an_epoch(run_dir, proc)):
            delay = rng.uniform(0.0, epoch_seconds)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(f"killed {delay:.3f} s after epoch {_epoch(run_dir)} was saved "
                             f"(epochs take {epoch_seconds:.3f} s)")
                assert not (run_dir / "metrics.json").exists(), kills
                continue
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        result = json.loads(out)
        break
    assert result is not None and len(kills) == 2, kills

    straight = fit(TrainConfig.from_dict(KILLED_RUN), tmp_path / "straight", progress=False,
                   plots=False)
    assert result["test_accuracy"] == straight["test_accuracy"], kills
    history = (run_dir / "history.csv").read_text().splitlines()
    expected = (tmp_path / "straight" / "history.csv").read_text().splitlines()
    assert [row.split(",")[:4] for row in history] == \
        [row.split(",")[:4] for row in expected], kills
    _assert_same_weights(run_dir, tmp_path / "straight")


def _epoch(run_dir: Path) -> int:
    """The last epoch a run directory has saved (0: none yet)."""
    path = run_dir / "history.csv"
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def _time_an_epoch(run_dir: Path, proc: subprocess.Popen) -> float | None:
    """Wait for a training process to save two more epochs; the seconds between the two
    (None if it ended first)."""
    deadline = time.time() + 300
    seen = [_epoch(run_dir)]
    times = []
    while len(times) < 2:
        if proc.poll() is not None:
            return None
        assert time.time() < deadline, "the run saved no epochs"
        if (epoch := _epoch(run_dir)) != seen[-1]:
            seen.append(epoch)
            times.append(time.perf_counter())
        time.sleep(0.005)
    return times[1] - times[0]


# ------------------------------------------------------------ a bundle, never half-written

#: the file-system steps of writing a bundle: each is a point where a crash may strike
_STEPS = [("numpy", "savez"), ("pathlib.Path", "write_text"), ("pathlib.Path", "mkdir"),
          ("os", "replace"), ("os", "chmod"), ("shutil", "rmtree"), ("os", "fsync")]


def _instrument(monkeypatch, before_each: Callable[[str], None]) -> None:
    import importlib

    for module_name, attr in _STEPS:
        module_path, _, cls = module_name.partition(".")
        owner = importlib.import_module(module_path) if not cls else \
            getattr(importlib.import_module(module_path), cls)
        original = getattr(owner, attr)

        def step(*args: Any, _original: Any = original, _name: str = f"{module_name}.{attr}",
                 **kwargs: Any) -> Any:
            if kwargs.get("ignore_errors"):  # clean-up of what is no longer needed
                _name += " (cannot fail)"
            before_each(_name)
            result = _original(*args, **kwargs)
            before_each(_name + " (done)")
            return result

        monkeypatch.setattr(owner, attr, step)


def _weights(folder: Path) -> list[np.ndarray]:
    return load_bundle(folder).weights


@pytest.mark.parametrize("target", ["digital", "analog"])
def test_at_every_step_of_replacing_a_bundle_the_folder_holds_a_whole_bundle(tmp_path,
                                                                            monkeypatch, target):
    """Before and after every file-system step of ``write_bundle`` replacing an existing
    bundle, the bundle folder loads and is exactly the old bundle or exactly the new one:
    a crash at any of those moments loses nothing."""
    out = tmp_path / "bundle"
    old, new = make_bundle(target, seed=1), make_bundle(target, seed=2)
    write_bundle(old, out, readme="old\n")
    seen: list[str] = []

    def check(step: str) -> None:
        weights = _weights(out)
        same_as = [name for name, b in (("old", old), ("new", new)) if all(
            np.array_equal(w, x) for w, x in zip(weights, b.weights, strict=True))]
        assert same_as, f"after {seen[-1] if seen else 'nothing'}: a mixed bundle"
        seen.append(f"{step}: {same_as[0]}")

    _instrument(monkeypatch, check)
    write_bundle(new, out, readme="new\n", force=True)
    monkeypatch.undo()
    assert len(seen) > 10 and seen[0].endswith("old") and seen[-1].endswith("new"), seen
    assert all(np.array_equal(w, x) for w, x in zip(_weights(out), new.weights, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.parametrize("target", ["digital", "analog"])
def test_a_failure_at_any_step_of_an_export_keeps_the_old_bundle(tmp_path, monkeypatch,
                                                                 target):
    """The disk fills up at step k of writing a bundle, for every k: the old bundle stays
    in place, whole, and no temporary folder is left."""
    out = tmp_path / "bundle"
    old, new = make_bundle(target, seed=1), make_bundle(target, seed=2)
    write_bundle(old, out, readme="old\n")
    k, injected = 0, True
    while injected:
        k += 1
        calls: list[str] = []

        def fail_at(step: str, k: int = k, calls: list = calls) -> None:
            if not step.endswith(("(done)", "(cannot fail)")):
                calls.append(step)
                if len(calls) == k:
                    raise OSError(28, f"No space left on device (at {step})")

        _instrument(monkeypatch, fail_at)
        try:
            write_bundle(new, out, readme="new\n", force=True)
        except OSError as e:
            assert "No space left" in str(e)
            expected = old
        else:  # past the last step, or a failure that does not matter (a folder's fsync)
            expected = new
        monkeypatch.undo()
        injected = len(calls) >= k
        got = _weights(out)
        assert all(np.array_equal(w, x) for w, x in zip(got, expected.weights, strict=True)), k
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], k
        if expected is new:  # start again from the old bundle
            write_bundle(old, out, readme="old\n", force=True)
    assert k > 10


@pytest.mark.parametrize("moment", ["while writing its files", "after the swap"])
def test_an_export_killed_with_sigkill_leaves_a_whole_bundle(digits_run, tmp_path, moment):
    """``spikeforge export --force`` in a child process that is killed (SIGKILL: no clean-up
    runs) while writing the new bundle's files, or right after the new bundle was swapped
    in: the folder holds the old bundle or the new one, whole."""
    run_dir, _ = digits_run
    out = tmp_path / "bundle"
    env = subprocess_env()
    first = subprocess.run([*SPIKEFORGE, "export", str(run_dir), "--target", "analog",
                            "--out", str(out)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    old = _weights(out)
    # the steps counted are those on the export's temporary folder, `.bundle.<random>.tmp`
    hook = ("import os, signal, pathlib, shutil\n"
            "calls = []\n"
            "def kill_on(owner, name, n):\n"
            "    original = getattr(owner, name)\n"
            "    def step(path, *a, **k):\n"
            "        if '.bundle.' in str(path):\n"
            "            calls.append(name)\n"
            "            if len(calls) == n: os.kill(os.getpid(), signal.SIGKILL)\n"
            "        return original(path, *a, **k)\n"
            "    setattr(owner, name, step)\n")
    if moment == "while writing its files":  # the fourth text file of the new bundle
        hook += "kill_on(pathlib.Path, 'write_text', 4)\n"
    else:  # the old bundle, swapped out under the temporary name, is about to be deleted
        hook += "kill_on(shutil, 'rmtree', 1)\n"
    code = (hook + "import sys\nfrom spikeforge.cli import main\n"
            f"sys.exit(main(['export', {str(run_dir)!r}, '--target', 'analog', '--out', "
            f"{str(out)!r}, '--series', 'E12', '--force']))\n")
    killed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    bundle = load_bundle(out)
    series = bundle.circuit().options.series
    if moment == "while writing its files":
        assert series == "E24"
        assert all(np.array_equal(w, x) for w, x in zip(bundle.weights, old, strict=True))
    else:
        assert series == "E12"
    # a killed process cannot clean up: its hidden temporary folder may remain beside
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"bundle"}
