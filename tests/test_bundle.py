"""The deployment bundle: export from a run, what it holds, what loading refuses, and the
public promise that an independent program reproduces its accuracy."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.hardware.bundle import BundleError, load_bundle
from spikeforge.hardware.export import export, score_bundle

READER = Path(__file__).parent / "independent" / "reader.py"


@pytest.fixture(scope="module", params=["digital", "analog"])
def bundle_dir(request, small_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / request.param
    export(small_run[0], out, request.param)
    return out


def test_bundle_holds_spec_weights_csv_nir_and_readme(bundle_dir, small_run):
    names = {p.name for p in bundle_dir.iterdir()}
    assert {"spec.json", "weights.npz", "csv", "network.nir", "README.md"} <= names
    bundle = load_bundle(bundle_dir)
    spec = json.loads((bundle_dir / "spec.json").read_text())
    assert spec["schema_version"] == 1 and spec["timesteps"] == 25
    assert [layer["shape"] for layer in spec["layers"]] == [[128, 784], [10, 128]]
    for key, array in bundle.arrays.items():
        from_csv = np.loadtxt(bundle_dir / "csv" / f"{key}.csv", delimiter=",", ndmin=2)
        np.testing.assert_array_equal(from_csv.reshape(array.shape), array)
    if bundle.target == "digital":
        assert all(w.dtype == np.int64 and np.abs(w).max() <= 127 for w in bundle.weights)
        assert spec["neuron"]["decay"] == 230 / 256
    else:
        assert all(w.dtype == np.float64 for w in bundle.weights)
    readme = (bundle_dir / "README.md").read_text()
    for section in ("Topology", "Neuron", "Timing", "Input encoding", "Output decoding",
                    "Accuracy of exactly these weights", "Part counts"):
        assert f"## {section}" in readme


def test_reported_accuracy_is_what_the_twin_scores_and_close_to_the_float_model(bundle_dir,
                                                                              small_run):
    bundle = load_bundle(bundle_dir)
    reported = bundle.info["accuracy"]
    assert reported["n"] == 1000
    assert score_bundle(bundle, "mnist", limit=1000)["accuracy"] == reported["accuracy"]
    assert abs(reported["accuracy"] - small_run[1]["test_accuracy"]) <= 0.01


def test_an_independent_reader_reproduces_the_reported_accuracy_exactly(bundle_dir, data_dir):
    source = READER.read_text()
    assert len(source.splitlines()) < 100
    assert not re.search(r"^\s*(import|from)\s+spikeforge", source, re.MULTILINE)
    out = subprocess.run([sys.executable, str(READER), str(bundle_dir), str(data_dir / "mnist")],
                         capture_output=True, text=True, check=True)
    reported = json.loads((bundle_dir / "spec.json").read_text())["accuracy"]["accuracy"]
    assert float(out.stdout) == reported


def _broken_copy(bundle_dir: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(bundle_dir, copy)
    spec = json.loads((copy / "spec.json").read_text())
    arrays = dict(np.load(copy / "weights.npz"))
    edit(spec, arrays)
    (copy / "spec.json").write_text(json.dumps(spec))
    np.savez(copy / "weights.npz", **arrays)
    return copy


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s, a: s.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda s, a: s["layers"][1].update(shape=[10, 64]), "do not chain"),
    (lambda s, a: a.pop("fc2.weight"), "no array 'fc2.weight'"),
    (lambda s, a: s["neuron"].update(decay=1.5), "neuron.decay = 1.5"),
    (lambda s, a: s.pop("timesteps"), "missing key 'timesteps'"),
    (lambda s, a: a.update({"fc1.weight": a["fc1.weight"][:, :10]}), "has shape"),
])
def test_a_broken_bundle_is_refused_with_the_reason(bundle_dir, tmp_path, edit, message):
    with pytest.raises(BundleError, match=message):
        load_bundle(_broken_copy(bundle_dir, tmp_path, edit))


def test_values_no_part_can_realise_are_refused(bundle_dir, tmp_path):
    if load_bundle(bundle_dir).target == "digital":
        def edit(s, a):
            a["fc2.weight"] = a["fc2.weight"].copy()
            a["fc2.weight"][0, 0] = 300
        message = "more than 8-bit weights hold"
    else:
        def edit(s, a):
            a["fc2.weight"] = a["fc2.weight"].copy()
            a["fc2.weight"][0, 0] = np.nan
        message = "NaN or infinite"
    with pytest.raises(BundleError, match=message):
        load_bundle(_broken_copy(bundle_dir, tmp_path, edit))


def test_export_never_overwrites_without_force_and_replaces_whole_with_it(small_run, tmp_path):
    out = tmp_path / "b"
    export(small_run[0], out, "digital", weight_bits=6)
    with pytest.raises(Exception, match="exists; pass --force"):
        export(small_run[0], out, "digital")
    export(small_run[0], out, "digital", weight_bits=8, force=True)
    assert load_bundle(out).spec.digital.weight_bits == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary folders left


def test_cli_export_simulate_verify(small_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", str(small_run[0]), "--target", "digital", "--out", str(out),
                 "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(out), "--limit", "1000", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert simulated["accuracy"] == exported["accuracy"] and simulated["n"] == 1000
    assert simulated["mean_spikes_per_inference"] > 0
    assert main(["verify", str(out), "--inputs", "300", "--nir-inputs", "300", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identical_spike_trains"] == report["n"] == 300
    assert main(["simulate", str(tmp_path / "nothing")]) == 2


def test_verify_twin_equals_pytorch_and_nir_imports_agree(bundle_dir):
    from spikeforge.hardware.verify import verify

    report = verify(bundle_dir, n_inputs=1000, nir_inputs=1000)
    assert report["ok"]
    assert report["identical_spike_trains"] == report["identical_predictions"] == 1000
    assert report["nir"]["read"] and report["nir"]["metadata"]["dt"] == 1e-4
    for importer in ("snntorch", "norse"):
        assert report["nir"][importer]["agreement"] >= 0.99, importer
