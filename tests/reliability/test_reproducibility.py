"""Reproducibility: a run records what produced it (seed, versions, git commit, the data
files' md5s); the same command on the same machine gives bit-identical accuracies and
weights, in this process or a fresh one; ``spikeforge evaluate`` of a saved run gives the
accuracy the run reported; exporting the same run twice gives the same bundle.

Elsewhere: ``tests/test_train.py`` (the same seed twice on 4,000 MNIST images),
the crash-safety tests here (a resumed run equals an uninterrupted one)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import spikeforge
from spikeforge.cli import main
from spikeforge.data.files import IDX_FILES

from .conftest import SPIKEFORGE, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ["train", "--dataset", "mnist", "--limit-train", "1500", "--limit-test", "500",
           "--hidden", "32", "--epochs", "2", "--seed", "7", "--no-progress", "--json"]


@pytest.fixture(scope="module")
def twice(tmp_path_factory, mnist_data) -> tuple[Path, Path]:
    """The same ``spikeforge train`` command run twice in this process (only --out
    differs)."""
    root = tmp_path_factory.mktemp("same-command")
    for name in ("first", "second"):
        assert main([*COMMAND, "--out", str(root / name)]) == 0
    return root / "first", root / "second"


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_run_records_seed_versions_commit_and_data_md5s(twice):
    metrics = _metrics(twice[0])
    assert metrics["config"]["seed"] == 7
    env = metrics["environment"]
    assert env["spikeforge"] == spikeforge.__version__
    assert env["python"] == platform.python_version()
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    if commit:  # a checkout with history: the commit, and whether it had local changes
        assert env["git_commit"] == commit and isinstance(env["git_dirty"], bool)
    files = {f"{f.name}.gz": {f.gz_md5, f.content_md5} for f in IDX_FILES["mnist"].values()}
    assert metrics["data_files"].keys() == files.keys()
    for name, md5 in metrics["data_files"].items():
        assert md5 in files[name], name
    assert metrics["command"][:2] == ["spikeforge", "train"]


def test_the_same_command_twice_gives_bit_identical_results(twice):
    first, second = (_metrics(run) for run in twice)
    for key in ("test_accuracy", "test_correct", "final_train_loss", "final_train_accuracy",
                "n_train", "n_test"):
        assert first[key] == second[key], key
    rows = [(run / "history.csv").read_text().splitlines() for run in twice]
    assert [r.split(",")[:4] for r in rows[0]] == [r.split(",")[:4] for r in rows[1]]
    a, b = (torch.load(run / "checkpoint.pt", weights_only=True)["model"] for run in twice)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_the_same_command_in_a_fresh_process_gives_the_same_accuracy(twice, tmp_path):
    """Nothing this process did before (other tests, other seeds) leaks into a run."""
    out = subprocess.run([*SPIKEFORGE, *COMMAND, "--out", str(tmp_path / "fresh")],
                         env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    fresh, first = json.loads(out.stdout), _metrics(twice[0])
    assert fresh["test_accuracy"] == first["test_accuracy"]
    assert fresh["final_train_loss"] == first["final_train_loss"]


def test_evaluate_of_a_saved_run_gives_the_reported_accuracy(twice, capsys):
    run_dir = twice[0]
    reported = _metrics(run_dir)["test_accuracy"]
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_accuracy"] == result["reported_test_accuracy"] == reported
    assert result["matches_reported"] is True
    assert main(["evaluate", str(run_dir)]) == 0
    assert "same as the reported" in capsys.readouterr().out


def test_another_seed_gives_another_network(twice, tmp_path):
    """The seed is what makes runs equal: change it and the weights change."""
    command = [*COMMAND[:COMMAND.index("--seed") + 1], "8",
               *COMMAND[COMMAND.index("--seed") + 2:]]
    assert main([*command, "--out", str(tmp_path / "other")]) == 0
    a = torch.load(twice[0] / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "other" / "checkpoint.pt", weights_only=True)["model"]
    assert not torch.equal(a["layers.0.weight"], b["layers.0.weight"])


@pytest.mark.parametrize("target", ["digital", "analog"])
def test_exporting_a_run_twice_gives_the_same_bundle(twice, tmp_path, target):
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.export import export

    for name in ("a", "b"):
        export(twice[0], tmp_path / name, target)
    a, b = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    assert (tmp_path / "a" / "spec.json").read_text() == (tmp_path / "b" / "spec.json").read_text()
    assert a.arrays.keys() == b.arrays.keys()
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    for name in ("README.md", *(["bom.csv", "placement.csv", "board.net"]
                                if target == "analog" else [])):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # and the twin scores the second bundle as the first reported
    assert b.info["accuracy"] == a.info["accuracy"]
