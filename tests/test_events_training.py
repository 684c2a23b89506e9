"""Event data as network input: the simulated N-MNIST cache, spike-line input through
training, export, the twin and scoring on the real recordings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.config import TrainConfig
from spikeforge.data.datasets import load_dataset, pool_spikes
from spikeforge.encoders import time_major
from spikeforge.errors import ConfigError, DatasetError
from spikeforge.events import datasets as event_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATA = Path(os.environ.get("SPIKEFORGE_DATA", SHARED))
needs_data = pytest.mark.skipif(not (DATA / "mnist").is_dir()
                                or not (DATA / "nmnist-sample").is_dir(),
                                reason="needs mnist/ and nmnist-sample/ (SPIKEFORGE_DATA)")


@pytest.fixture
def small_synth(tmp_path, monkeypatch) -> Path:
    """A data directory with MNIST and the real sample linked in, a private cache, and
    shards of 40 recordings, so a simulated set is built in a second."""
    if not (DATA / "mnist").is_dir() or not (DATA / "nmnist-sample").is_dir():
        pytest.skip("needs mnist/ and nmnist-sample/ (SPIKEFORGE_DATA)")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("mnist", "nmnist-sample"):
        (data_dir / name).symlink_to(DATA / name)
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(event_data, "SHARD_SIZE", 40)
    return data_dir


def test_event_datasets_take_spike_input_and_refuse_other_encodings():
    assert TrainConfig(dataset="nmnist-synth").encoding == "events"
    spec = TrainConfig(dataset="nmnist-synth").network_spec(2312, 10)
    assert spec.encoding.type == "spikes"
    with pytest.raises(ConfigError, match="encoding"):
        TrainConfig(dataset="nmnist-synth", encoding="poisson")
    with pytest.raises(ConfigError, match="events is for the event datasets"):
        TrainConfig(dataset="mnist", encoding="events")
    with pytest.raises(ConfigError, match="downsample"):
        TrainConfig(dataset="nmnist-synth", downsample=4)  # 34 is 2 x 17


def test_time_major_turns_stored_event_samples_into_spike_lines():
    x = torch.randint(0, 2, (3, 5, 7), dtype=torch.uint8)  # (batch, T, features)
    s = time_major(x)
    assert s.shape == (5, 3, 7) and s.dtype == torch.float32
    assert torch.equal(s[2, 1], x[1, 2].float())
    already = torch.rand(5, 3, 7)
    assert time_major(already) is already  # float 3-D: already time-major
    held = torch.rand(3, 7)
    assert time_major(held) is held


def test_pool_spikes_is_an_or_over_blocks():
    x = np.zeros((1, 2, 2 * 4 * 4), np.uint8)  # 1 sample, T = 2, 2 polarities of 4x4
    frames = x.reshape(1, 2, 2, 4, 4)
    frames[0, 1, 1, 3, 2] = 1  # step 1, ON, y = 3, x = 2
    pooled, shape = pool_spikes(x, (2, 4, 4), 2)
    assert shape == (2, 2, 2)
    out = pooled.reshape(1, 2, 2, 2, 2)
    assert out[0, 1, 1, 1, 1] == 1 and out.sum() == 1


@needs_data
def test_real_sample_loads_as_a_test_split_of_binary_spike_lines():
    data = load_dataset("nmnist-sample", DATA, timesteps=10, progress=False)
    assert data.train_x.shape == (0, 10, 2312) and data.test_x.shape == (200, 10, 2312)
    assert set(np.unique(data.test_x)) == {0, 1}
    assert data.image_shape == (2, 34, 34)
    labels = np.load(DATA / "nmnist-sample" / "nmnist_sample200.npz")["label"]
    assert np.array_equal(data.test_y, labels)


def test_synth_shards_are_reproducible_and_checked(small_synth):
    folder = event_data.build_synth_nmnist(small_synth, seed=3, splits=("test",), shards=2,
                                           progress=False)
    assert folder.is_relative_to(Path(os.environ["SPIKEFORGE_CACHE"]))  # never the data dir
    manifest = json.loads((folder / event_data.MANIFEST).read_text())
    assert sorted(manifest["shards"]) == ["test-000", "test-001"]
    first = manifest["shards"]["test-001"]["md5"]
    event_data.build_synth_nmnist(small_synth, seed=3, splits=("test",), shards=2, force=True,
                                  progress=False)
    again = json.loads((folder / event_data.MANIFEST).read_text())
    assert again["shards"]["test-001"]["md5"] == first
    recs = event_data.load_synth_recordings("test", small_synth, seed=3, limit=50,
                                            progress=False)
    assert len(recs) == 50 and np.array_equal(recs.sample_ids, np.arange(1, 51))
    # the shards read, and only those, are recorded with their md5s
    assert recs.info["files"] == {f"nmnist-synth/seed-3/test-00{k}.npz":
                                  manifest["shards"][f"test-00{k}"]["md5"] for k in (0, 1)}
    # no recordings asked for: no shard is read or built (a bundle's scoring asks for none)
    empty = event_data.load_synth_recordings("train", small_synth, seed=3, limit=0,
                                             progress=False)
    assert len(empty) == 0 and not list(folder.glob("train-*"))
    mnist = load_dataset("mnist", small_synth, progress=False)
    assert np.array_equal(recs.labels, mnist.test_y[:50])
    # a damaged shard is refused by name, with the fix
    shard = folder / "test-001.npz"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="test-001.npz.*synth-nmnist"):
        event_data.load_synth_recordings("test", small_synth, seed=3, limit=50,
                                         progress=False)


def test_synth_training_split_leaves_out_the_real_sample_images(small_synth):
    recs = event_data.load_synth_recordings("train", small_synth, seed=0, limit=30,
                                            progress=False)
    # sample ids are MNIST index + 1: the real sample holds ids 1..200
    assert recs.sample_ids.min() == event_data.REAL_SAMPLE_IMAGES + 1


def test_manifest_of_other_simulator_parameters_is_refused(small_synth):
    folder = event_data.build_synth_nmnist(small_synth, seed=0, splits=("test",), shards=1,
                                           progress=False)
    path = folder / event_data.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["params"]["refractory_us"] = 12345
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="other simulator parameters.*--force"):
        event_data.load_synth_recordings("test", small_synth, seed=0, limit=5, progress=False)


def test_event_network_trains_exports_and_the_twin_agrees(small_synth, tmp_path):
    from spikeforge.hardware.export import export
    from spikeforge.hardware.verify import verify
    from spikeforge.train import evaluate_run, fit

    config = TrainConfig(dataset="nmnist-synth", data_dir=str(small_synth), hidden=(32,),
                         timesteps=8, epochs=2, limit_train=120, limit_test=40,
                         eval_batch_size=64)
    run = tmp_path / "run"
    metrics = fit(config, run, progress=False)
    assert metrics["n_train"] == 120 and 0.0 <= metrics["test_accuracy"] <= 1.0
    bundle = tmp_path / "bundle"
    export(run, bundle, target="digital")
    spec = json.loads((bundle / "spec.json").read_text())
    assert spec["layers"][0]["shape"] == [32, 2312] and spec["encoding"]["type"] == "spikes"
    readme = (bundle / "README.md").read_text()
    assert "2312 spike lines" in readme and "µs of recording" in readme
    report = verify(bundle, n_inputs=40, nir_inputs=10)
    assert report["identical_spike_trains"] == report["n"] == 40 and report["ok"]
    # the same network on the real recordings (inputs must match: 2 x 34 x 34 lines)
    real = evaluate_run(run, progress=False, dataset="nmnist-sample")
    assert real["dataset"] == "nmnist-sample" and real["n_test"] == 200
    with pytest.raises(ConfigError, match="--dataset digits: encoding"):
        evaluate_run(run, progress=False, dataset="digits")


def test_random_shift_moves_every_step_and_polarity_of_an_event_sample_together():
    from spikeforge.data.augment import random_shift

    x = torch.zeros(2, 3, 2 * 6 * 6, dtype=torch.uint8)  # 2 samples, T = 3, 2 x 6 x 6
    frames = x.view(2, 3, 2, 6, 6)
    frames[:, :, 0, 2, 2] = 1  # OFF at (y 2, x 2) in every step
    frames[:, 1, 1, 3, 3] = 1  # ON at (y 3, x 3) in step 1
    torch.manual_seed(0)
    shifted = random_shift(x, (2, 6, 6), 1).view(2, 3, 2, 6, 6)
    assert shifted.dtype == torch.uint8 and int(shifted.sum()) == int(x.sum())
    for n in range(2):
        off = torch.nonzero(shifted[n, :, 0])  # (step, y, x) of the OFF pixel
        on = torch.nonzero(shifted[n, 1, 1])
        assert len(off) == 3 and len(set(map(tuple, off[:, 1:].tolist()))) == 1
        # the ON pixel moved by the same offset as the OFF one
        assert (on[0] - off[0, 1:]).tolist() == [1, 1]


def test_recordings_subset_and_concat_keep_each_recording_whole():
    from spikeforge.events import EventRecordings, make_events
    from spikeforge.events.datasets import concat_recordings

    rng = np.random.default_rng(0)
    recordings = [make_events(rng.integers(0, 34, n), rng.integers(0, 34, n),
                              np.sort(rng.integers(0, 1000, n)), rng.integers(0, 2, n))
                  for n in (3, 0, 5, 2)]
    recs = EventRecordings.from_list(recordings, np.arange(4), np.arange(4) + 1)
    for index in (slice(1, 3), np.array([3, 0, 2]), slice(0, 0), slice(None, None, 2)):
        part = recs.subset(index)
        chosen = np.arange(4)[index]
        assert len(part) == len(chosen) and np.array_equal(part.labels, chosen)
        for k, i in enumerate(chosen):
            assert np.array_equal(part[k], recordings[i])
    both = concat_recordings([recs.subset(slice(0, 2)), recs.subset(slice(2, 4))])
    assert np.array_equal(both.offsets, recs.offsets) and np.array_equal(both.t, recs.t)


def test_cli_builds_the_simulated_set_and_refuses_bad_shard_counts(small_synth, capsys):
    from spikeforge.cli import main

    assert main(["data", "synth-nmnist", "--split", "test", "--shards", "1", "--data-dir",
                 str(small_synth), "--no-progress"]) == 0
    folder = Path(capsys.readouterr().out.split(" built in ")[1].strip())
    assert (folder / "test-000.npz").is_file() and not (folder / "test-001.npz").exists()
    assert main(["data", "synth-nmnist", "--shards", "0", "--data-dir",
                 str(small_synth)]) == 2
    assert "--shards 0" in capsys.readouterr().err


def test_datasets_that_cannot_train_or_be_found_are_refused_with_the_fix(tmp_path):
    from spikeforge.train import fit

    with pytest.raises(ConfigError, match="no training split.*nmnist-synth"):
        fit(TrainConfig(dataset="nmnist-sample"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(DatasetError, match="cannot download N-MNIST.*nmnist-synth"):
        load_dataset("nmnist", tmp_path, progress=False)
    with pytest.raises(DatasetError, match="nmnist-sample.*missing"):
        load_dataset("nmnist-sample", tmp_path, progress=False)
