"""Bad input at every boundary: configs (TOML and command line), dataset files, bundles and
checkpoints. Each is refused with a message that names the field or file, the value and
the fix, and the command exits with code 2 (0: success, 1: an internal error, a bug).

More cases of the same boundaries live beside their modules and are not repeated here:
``tests/test_config.py`` (contract fields out of range, broken TOML, ``--resume`` with
options), ``tests/test_data.py`` (IDX headers, a changed label failing the md5, missing
files), ``tests/test_bundle.py`` (a real export broken six ways),
``tests/test_events_reader.py`` (N-MNIST files).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from spikeforge.cli import main
from spikeforge.data import load_dataset
from spikeforge.data.files import IDX_FILES, IdxFile, md5_bytes
from spikeforge.data.idx import encode_idx
from spikeforge.errors import CheckpointError, ConfigError, DatasetError
from spikeforge.hardware.bundle import BundleError, load_bundle
from spikeforge.train import load_run

from .conftest import SPIKEFORGE, subprocess_env


def _refused(capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI in this process: exit code 2 and every fragment in the message."""
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("spikeforge: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ----------------------------------------------------------------------------- exit codes


def test_exit_code_0_on_success_and_2_on_bad_input(digits_run, tmp_path, capsys):
    run_dir, metrics = digits_run
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == metrics["test_accuracy"]
    _refused(capsys, ["evaluate", str(tmp_path)], "no checkpoint.pt here")
    with pytest.raises(SystemExit) as exit_:  # argparse: a flag of the wrong type
        main(["train", "--epochs", "ten"])
    assert exit_.value.code == 2
    assert "argument --epochs: invalid int value: 'ten'" in capsys.readouterr().err


def test_exit_code_1_and_a_traceback_on_an_internal_error(tmp_path):
    """Anything that is not a SpikeforgeError is a bug: the traceback is printed for the
    bug report and the exit code is 1, never 2 (which would blame the user)."""
    code = ("import sys, spikeforge.train as t\n"
            "def bug(*a, **k): raise RuntimeError('an internal error')\n"
            "t.evaluate_run = bug\n"
            "from spikeforge.cli import main\n"
            f"sys.exit(main(['evaluate', {str(tmp_path)!r}]))\n")
    out = subprocess.run([SPIKEFORGE[0], "-c", code], env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "RuntimeError: an internal error" in out.stderr


# -------------------------------------------------------------------------------- configs

TOML_CASES = [
    ('epochs = "ten"\n', ["epochs = 'ten' is not allowed", "an integer >= 1"]),
    ('loss = ["ce_count"]\n', ["loss = ['ce_count'] is not allowed", "a name"]),
    ("hidden = [128, -1]\n", ["hidden = [128, -1] is not allowed", "e.g. 128 or 256,128"]),
    ("lr = nan\n", ["lr = nan is not allowed", "a number > 0"]),
    ("seed = 18446744073709551616\n", ["seed = 18446744073709551616 is not allowed",
                                        "fits in 64 bits"]),
    ('r-range = "1M:10k"\n', ["r_range = '1M:10k' is not allowed", "smallest first"]),
    ("data_dir = 5\n", ["data_dir = 5 is not allowed", "a string"]),
    ("batchsize = 3\n", ["unknown option 'batchsize'", "known options: ", "run.toml"]),
    ("epochs = 3\nepochs = 4\n", ["run.toml is not valid TOML", "line 2"]),
    ('model = "conv"\ndataset = "iris"\n', ["model = 'conv' is not allowed",
                                            "iris samples are not images"]),
]


@pytest.mark.parametrize(("text", "fragments"), TOML_CASES)
def test_bad_toml_configs_are_refused_by_name(tmp_path, capsys, text, fragments):
    path = tmp_path / "run.toml"
    path.write_text(text)
    _refused(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "r")],
             *fragments)
    assert not (tmp_path / "r").exists()  # nothing started, nothing left behind


def test_unreadable_toml_files_are_refused_by_name(tmp_path, capsys):
    latin = tmp_path / "latin.toml"
    latin.write_bytes('dataset = "digits" # Gr\xfc\xdfe\n'.encode("latin-1"))
    _refused(capsys, ["train", "--config", str(latin)], "latin.toml is not UTF-8 text",
             "save it with that encoding")
    _refused(capsys, ["train", "--config", str(tmp_path)], f"config file {tmp_path} cannot "
             "be read", "a readable TOML file")
    _refused(capsys, ["train", "--config", str(tmp_path / "none.toml")], "does not exist")


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--decay", "1.5"], ["decay = 1.5 is not allowed", "(0, 1]"]),
    (["--hidden", "128,x"], ["hidden = '128,x' is not allowed"]),
    (["--dataset", "cifar"], ["dataset = 'cifar' is not allowed", "mnist, fashion-mnist"]),
    (["--seed", str(2**64)], [f"seed = {2**64} is not allowed"]),
    (["--r-range", "10k"], ["r_range = '10k' is not allowed", "e.g. 10k,1M"]),
    (["--series", "E7"], ["series = 'E7' is not allowed", "E6, E12, E24"]),
    (["--downsample", "3"], ["downsample = 3 is not allowed", "one of 1, 2, 4, 7, 14, 28"]),
    (["--dropout", "1"], ["dropout = 1.0 is not allowed", "[0, 1)"]),
])
def test_bad_command_line_options_are_refused_by_name(tmp_path, capsys, argv, fragments):
    _refused(capsys, ["train", *argv, "--out", str(tmp_path / "r")], *fragments)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def digits_bundle(digits_run, tmp_path_factory) -> Path:
    """The digits run exported for the digital target."""
    from spikeforge.hardware.export import export

    out = tmp_path_factory.mktemp("digits-bundle") / "digital"
    export(digits_run[0], out, "digital")
    return out


@pytest.mark.parametrize(("argv", "fragments"), [
    (["simulate", "{bundle}", "--limit", "-5"], ["limit = -5: score at least 1 test sample"]),
    (["simulate", "{bundle}", "--limit", "0"], ["limit = 0: score at least 1"]),
    (["verify", "{bundle}", "--inputs", "0"], ["limit = 0: score at least 1"]),
    (["verify", "{bundle}", "--inputs", "10", "--nir-inputs", "-1"],
     ["--nir-inputs -1: compare at least 1 input"]),
    (["spice", "{bundle}", "--inputs", "0"], ["--inputs must be at least 1"]),
    (["simulate", "{bundle}", "--monte-carlo", "0"], ["--monte-carlo K needs K >= 1"]),
    (["simulate", "{bundle}", "--dataset", "iris"],
     ["iris has 4 input features but the bundle's first layer takes 64"]),
    (["export", "{run}", "--target", "digital", "--out", "{out}", "--bits", "1"],
     ["digital.weight_bits = 1 is not allowed: it must be an integer in 2..32", "--bits"]),
    (["export", "{run}", "--target", "digital", "--out", "{out}", "--decay-shift", "-1"],
     ["digital.decay_shift = -1 is not allowed: it must be an integer in 0..24"]),
    (["export", "{run}", "--target", "analog", "--out", "{out}", "--r-range", "1M:10k"],
     ["analog option r_max = 10000.0 is not allowed: it must be larger than r_min"]),
    (["export", "{run}", "--target", "analog", "--out", "{out}", "--tolerance", "abc"],
     ["--tolerance 'abc' is not a fraction: write e.g. 1% or 0.01"]),
    (["export", "{run}", "--target", "analog", "--out", "{out}", "--r-m", "ten"],
     ["cannot read the component value 'ten': write e.g. 10k"]),
    (["export", "{run}", "--target", "analog", "--out", "{bundle}"],
     ["exists; pass --force to replace it, or choose another --out"]),
    (["compare", "--dataset", "iris", "--limit-train", "-1", "--out", "{out}"],
     ["limit_train = -1 is not allowed"]),
])
def test_bad_values_for_the_other_commands_are_refused(digits_run, digits_bundle, tmp_path,
                                                       capsys, argv, fragments):
    """Counts, bit widths and part values of export, simulate, verify, spice and compare:
    a zero or negative count is refused rather than silently scoring a different set."""
    paths = {"run": str(digits_run[0]), "bundle": str(digits_bundle),
             "out": str(tmp_path / "out")}
    _refused(capsys, [a.format(**paths) for a in argv], *fragments)
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------- dataset files

TRAIN_LABELS = "train-labels-idx1-ubyte"


@pytest.fixture
def mnist_copy(data_dir, tmp_path) -> Path:
    """A data folder holding MNIST (links to the shared files: replace one to break it)."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for spec in IDX_FILES["mnist"].values():
        os.symlink(data_dir / "mnist" / f"{spec.name}.gz", folder / f"{spec.name}.gz")
    return folder


def _labels(folder: Path) -> bytes:
    return gzip.decompress((folder / f"{TRAIN_LABELS}.gz").read_bytes())


DATASET_CASES = {
    "wrong magic number": lambda c: {".gz": gzip.compress(b"\x08\x03" + c[2:])},
    "truncated gzip": lambda c: {".gz": gzip.compress(c)[:2000]},
    "truncated plain file": lambda c: {"": c[:-100]},
    "one label changed (wrong md5)": lambda c: {".gz": gzip.compress(
        c[:100] + bytes([(c[100] + 1) % 10]) + c[101:])},
    "empty file": lambda c: {".gz": b""},
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_damaged_dataset_files_are_refused_naming_the_file_and_the_fix(mnist_copy, capsys,
                                                                        case):
    content = _labels(mnist_copy)
    (mnist_copy / f"{TRAIN_LABELS}.gz").unlink()
    for suffix, data in DATASET_CASES[case](content).items():
        (mnist_copy / f"{TRAIN_LABELS}{suffix}").write_bytes(data)
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", mnist_copy.parent, download=False)
    message = str(err.value)
    assert TRAIN_LABELS in message and "spikeforge data fetch" in message
    assert "md5 check failed" in message or "not a valid gzip file" in message
    out = mnist_copy.parent.parent / "run"
    _refused(capsys, ["train", "--data-dir", str(mnist_copy.parent), "--epochs", "1",
                      "--out", str(out), "--no-progress"], TRAIN_LABELS, "spikeforge data fetch")
    assert not out.exists()
    _refused(capsys, ["data", "verify", "mnist", "--data-dir", str(mnist_copy.parent)],
             "1 file(s) missing or corrupt", "spikeforge data fetch mnist")


def test_a_missing_dataset_file_says_how_to_get_it(mnist_copy, capsys):
    (mnist_copy / f"{TRAIN_LABELS}.gz").unlink()
    with pytest.raises(DatasetError, match=f"missing {TRAIN_LABELS} in .*spikeforge data "
                                           f"fetch mnist"):
        load_dataset("mnist", mnist_copy.parent, download=False)


@pytest.mark.parametrize(("images", "labels"), [
    (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8)),   # counts differ
    (np.zeros((5, 784), np.uint8), np.zeros(5, np.uint8)),      # images not 2-D
    (np.zeros((5, 28, 28), np.uint8), np.zeros((5, 1), np.uint8)),  # labels not 1-D
])
def test_files_of_the_wrong_shape_are_refused(tmp_path, monkeypatch, images, labels):
    """Files whose md5s the registry accepts (here: a registry made for them) but whose
    shapes cannot be a dataset: the shape check behind the md5 check."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    registry = {}
    for key, array in (("train_images", images), ("train_labels", labels),
                       ("test_images", images), ("test_labels", labels)):
        name = IDX_FILES["mnist"][key].name
        content = encode_idx(array)
        (folder / name).write_bytes(content)
        registry[key] = IdxFile(name, "-", md5_bytes(content))
    monkeypatch.setitem(IDX_FILES, "mnist", registry)
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", tmp_path, download=False)
    message = str(err.value)
    assert f"images {images.shape} and labels {labels.shape} do not match" in message
    assert "spikeforge data fetch mnist" in message


# -------------------------------------------------------------------------------- bundles


def _break_bundle(source: Path, dest: Path, edit) -> Path:
    shutil.copytree(source, dest)
    spec = json.loads((dest / "spec.json").read_text())
    with np.load(dest / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(spec, arrays)
    (dest / "spec.json").write_text(json.dumps(spec))
    np.savez(dest / "weights.npz", **arrays)
    return dest


def _set(arrays: dict[str, np.ndarray], key: str, index: tuple, value: Any,
         dtype: Any = None) -> None:
    a = arrays[key].astype(dtype or arrays[key].dtype)
    a[index] = value
    arrays[key] = a


BOTH = ["digital", "analog"]
BUNDLE_CASES = [
    (BOTH, lambda s, a: s.update(schema_version=2),
     ["schema_version 2 is not supported", "re-export the bundle"]),
    (BOTH, lambda s, a: s.update(format="onnx"), ["not a spikeforge bundle (format 'onnx')"]),
    (BOTH, lambda s, a: s.update(target="fpga"), ["target 'fpga' is not one of digital"]),
    (BOTH, lambda s, a: s.pop("timesteps"), ["missing key 'timesteps'", "spikeforge export"]),
    (BOTH, lambda s, a: s["layers"][0].pop("weights"), ["layers[0]: missing key 'weights'"]),
    (BOTH, lambda s, a: s.update(neuron=[0.9]), ["'neuron' must be a JSON object"]),
    (BOTH, lambda s, a: s["neuron"].update(decay=1.5), ["neuron.decay = 1.5 is not allowed",
                                                         "(0, 1]"]),
    (BOTH, lambda s, a: s["layers"][1].update(shape=[10, 8]),
     ["layer shapes do not chain: layers[0] has 16 outputs but layers[1] takes 8 inputs"]),
    (BOTH, lambda s, a: s["layers"][0].update(shape=[16, "64"]),
     ["layers[0].shape must be [out, in], two integers >= 1, not [16, '64']"]),
    (BOTH, lambda s, a: a.pop("fc2.weight"), ["no array 'fc2.weight' (spec.json names it)"]),
    (BOTH, lambda s, a: a.update({"fc1.weight": a["fc1.weight"][:, :10]}),
     ["'fc1.weight' has shape (16, 10), spec.json says (16, 64)"]),
    (["analog"], lambda s, a: _set(a, "fc1.weight", (0, 0), np.nan),
     ["'fc1.weight' holds NaN or infinite values", "retrain and export again"]),
    (["analog"], lambda s, a: _set(a, "fc2.bias", (3,), -np.inf),
     ["'fc2.bias' holds NaN or infinite values"]),
    (["analog"], lambda s, a: _set(a, "fc1.weight_ohms", (0, 0), 12345.0),
     ["'fc1.weight_ohms' holds 1 resistor(s) that are not E24 values in 10000..1e+06 Ω, "
      "the parts spec.json's analog circuit allows", "(e.g. 12345 Ω)", "--series, --r-range"]),
    (["analog"], lambda s, a: _set(a, "fc2.bias_ohms", (0,), -1e9),  # E24, but too large
     ["'fc2.bias_ohms' holds 1 resistor(s)", "(e.g. 1e+09 Ω)"]),
    (["analog"], lambda s, a: a.update({"fc1.weight_ohms": a["fc1.weight_ohms"][:8]}),
     ["'fc1.weight_ohms' must hold one resistor per weight of layer fc1 as spec.json "
      "describes it (shape (16, 64)), not (8, 64)", "one of the two files is damaged"]),
    (["analog"], lambda s, a: s["analog"]["circuit"].update(r_m=-1),
     ["analog.circuit.r_m = -1 is not allowed: it must be a finite number > 0"]),
    (["analog"], lambda s, a: s["analog"]["circuit"]["layers"][1].pop("v_ref"),
     ["analog.circuit.layers[1] is missing 'v_ref'", "spikeforge export --target analog"]),
    (["analog"], lambda s, a: s["analog"]["circuit"]["options"].update(series="E7"),
     ["series = 'E7' is unknown: choose one of E6"]),
    (["digital"], lambda s, a: _set(a, "fc1.weight", (0, 0), 0.5, np.float64),
     ["'fc1.weight' must hold integers on the digital target, not float64"]),
    (["digital"], lambda s, a: _set(a, "fc2.weight", (0, 0), 300),
     ["'fc2.weight' has a weight of magnitude 300, more than 8-bit weights hold (127)"]),
    (["digital"], lambda s, a: s["digital"].update(decay_num=0),
     ["digital.decay_num = 0 is not allowed"]),
    (["digital"], lambda s, a: s.update(digital=None), ["'digital' must be a JSON object"]),
]


@pytest.mark.parametrize(("target", "edit", "fragments"), [
    pytest.param(target, edit, fragments, id=f"{target}-{i}")
    for i, (targets, edit, fragments) in enumerate(BUNDLE_CASES) for target in targets])
def test_broken_bundles_are_refused_with_the_reason(bundle_factory, tmp_path, capsys, target,
                                                   edit, fragments):
    broken = _break_bundle(bundle_factory(target), tmp_path / "broken", edit)
    with pytest.raises(BundleError) as err:
        load_bundle(broken)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))
    for command in ("simulate", "verify", "spice"):
        _refused(capsys, [command, str(broken)], *fragments)


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a zip"])
def test_a_missing_or_damaged_weights_file_is_refused(bundle_factory, tmp_path, capsys,
                                                      damage):
    broken = tmp_path / "b"
    shutil.copytree(bundle_factory("digital"), broken)
    npz = broken / "weights.npz"
    if damage == "missing":
        npz.unlink()
        fragments = ["weights.npz is missing; export the bundle again"]
    else:
        npz.write_bytes(npz.read_bytes()[:300] if damage == "truncated" else b"junk" * 10)
        fragments = ["weights.npz: cannot be read", "export the bundle again"]
    _refused(capsys, ["simulate", str(broken)], *fragments)


# ---------------------------------------------------------------------------- checkpoints


def _edited_run(run_dir: Path, dest: Path, edit) -> Path:
    """A copy of a finished run with its checkpoint edited, unfinished (no metrics.json)
    so that ``--resume`` may try it too."""
    shutil.copytree(run_dir, dest)
    (dest / "metrics.json").unlink()
    path = dest / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    result = edit(state)
    if isinstance(result, bytes):
        path.write_bytes(result)
    else:
        torch.save(state if result is None else result, path)
    return dest


def _grow_hidden(state: dict) -> None:
    state["spec"]["layer_sizes"][1] = 32


def _from_a_newer_version(state: dict) -> None:
    state["config"]["future_option"] = 1
    state["spikeforge"] = "9.9.9"


CHECKPOINT_CASES = {
    "another format version": (
        lambda s: s.update(format="spikeforge-checkpoint/2", spikeforge="9.9.9"),
        ["not a spikeforge-checkpoint/1 checkpoint (format 'spikeforge-checkpoint/2', written "
         "by spikeforge 9.9.9)", "use the version that wrote it, or train the run again"]),
    "an option of a newer version": (
        _from_a_newer_version,
        ["unknown option 'future_option'", "written by spikeforge 9.9.9 and this is",
         "use 9.9.9 to continue or score it, or train the run again"]),
    "another spec schema": (
        lambda s: s["spec"].update(schema_version=2),
        ["spec schema_version 2 is not supported", "train the run again"]),
    "another spec (wider hidden layer)": (
        _grow_hidden, ["its weights do not fit its stored spec (64, 32, 10)",
                       "train the run again"]),
    "missing weights": (lambda s: s.__delitem__("model"), ["lacks 'model'", "train the run again"]),
    "config not a mapping": (lambda s: s.update(config="digits"),
                             ["'config' is not a mapping"]),
    "not a checkpoint": (lambda s: [1, 2, 3], ["not a spikeforge-checkpoint/1 checkpoint "
                                               "(format None)"]),
    "truncated file": (lambda s: None, ["cannot be read", "corrupt or not a spikeforge "
                                        "checkpoint: train the run again"]),
    "random bytes": (lambda s: os.urandom(5000), ["cannot be read"]),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoints_from_another_version_or_spec_are_refused(digits_run, tmp_path, capsys,
                                                              case):
    edit, fragments = CHECKPOINT_CASES[case]
    run = _edited_run(digits_run[0], tmp_path / "run", edit)
    if case == "truncated file":
        path = run / "checkpoint.pt"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((CheckpointError, ConfigError)) as err:
        load_run(run)
    text = str(err.value)
    assert "checkpoint.pt" in text
    # scoring, continuing and exporting all refuse it the same way
    for argv in (["evaluate", str(run)], ["train", "--resume", str(run), "--no-progress"],
                 ["export", str(run), "--target", "digital", "--out", str(tmp_path / "b")]):
        err_text = _refused(capsys, argv)
        if case != "another spec (wider hidden layer)":  # resume says it differently
            for fragment in fragments:
                assert fragment in err_text, (argv, fragment, err_text)
    assert not (tmp_path / "b").exists()


def test_resuming_a_checkpoint_whose_spec_differs_from_its_config(digits_run, tmp_path, capsys):
    run = _edited_run(digits_run[0], tmp_path / "run", _grow_hidden)
    _refused(capsys, ["train", "--resume", str(run), "--no-progress"],
             "the checkpoint's spec differs from the network its config builds",
             "train the run again (--force)")
