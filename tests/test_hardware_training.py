"""Hardware-aware training for the analog target: the downsampling front-end, resistor-series
snapping with a straight-through gradient, part-tolerance noise, pruning to a synapse and
fan-in budget (kept across resume), and the part-budget search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge import train as train_module
from spikeforge.budget import candidate_designs
from spikeforge.config import TrainConfig
from spikeforge.data.datasets import downsample_images, load_dataset
from spikeforge.errors import ConfigError, DatasetError
from spikeforge.hardware.circuit import CircuitOptions, design_circuit
from spikeforge.hardware.components import layer_levels, snap_magnitudes
from spikeforge.hardware.quantize import fake_snap, series_levels
from spikeforge.models import SpikingNet
from spikeforge.pruning import Pruner, allocate, count_synapses, max_fan_in
from spikeforge.spec import EncodingSpec, NetworkSpec, reference_forward
from spikeforge.train import fit, load_run, prepare_dataset

DIGITS = {"dataset": "digits", "hidden": 32, "epochs": 4, "batch_size": 64,
          "augment_shift": 0, "dropout": 0.0}


def _fit(tmp_path, name: str, **settings):
    metrics = fit(TrainConfig.from_dict({**DIGITS, **settings}), tmp_path / name,
                  progress=False, plots=False)
    return metrics, load_run(tmp_path / name)


# ------------------------------------------------------------------------- downsampling


def test_downsample_averages_blocks_and_keeps_values_in_range():
    x = np.arange(2 * 16, dtype=np.float32).reshape(2, 16) / 31
    pooled, shape = downsample_images(x, (4, 4), 2)
    assert shape == (2, 2) and pooled.shape == (2, 4) and pooled.dtype == np.float32
    image = x[0].reshape(4, 4)
    assert pooled[0, 0] == pytest.approx(image[:2, :2].mean())
    assert pooled[0, 3] == pytest.approx(image[2:, 2:].mean())
    ones, _ = downsample_images(np.ones((1, 784), np.float32), (28, 28), 4)
    assert ones.shape == (1, 49) and ones.max() == 1.0
    same, _ = downsample_images(x, (4, 4), 1)
    assert same is x
    none, _ = downsample_images(np.ones((0, 784), np.float32), (28, 28), 2)
    assert none.shape == (0, 196)  # an empty split (a bundle scores test samples only)


def test_dataset_downsample_pools_train_and_test_and_refuses_what_cannot_be_pooled():
    digits = load_dataset("digits")
    small = digits.downsample(2)
    assert small.image_shape == (4, 4) and small.n_features == 16
    assert small.test_x.shape == (len(digits.test_x), 16)
    assert small.train_x.min() >= 0.0 and small.train_x.max() <= 1.0
    assert digits.downsample(1) is digits
    with pytest.raises(DatasetError, match="does not divide the 8x8 images: use one of 1, 2, 4, 8"):
        digits.downsample(3)
    with pytest.raises(DatasetError, match="not images"):
        load_dataset("iris").downsample(2)


def test_prepare_dataset_loads_limits_and_downsamples_as_training_does(data_dir):
    config = TrainConfig(downsample=4, limit_train=100, limit_test=50)
    data = prepare_dataset(config, progress=False)
    assert data.train_x.shape == (100, 49) and data.test_x.shape == (50, 49)
    assert data.image_shape == (7, 7)


def test_hold_out_never_touches_the_test_set():
    digits = load_dataset("digits")
    split = digits.hold_out(300)
    assert len(split.train_x) == len(digits.train_x) - 300 and len(split.test_x) == 300
    assert np.array_equal(split.test_x, digits.train_x[-300:])


# ------------------------------------------------------------------ series snapping (STE)


def test_fake_snap_forward_equals_the_numpy_rule_sign_kept():
    torch.manual_seed(0)
    w = torch.randn(64, 50) * 0.3
    w[0, :3] = torch.tensor([0.0, 1e-6, -1e-6])  # zero and pruned
    levels = series_levels(w, None, "E24", 1e4, 1e6)
    expected = layer_levels(float(w.abs().max()), "E24", 1e4, 1e6)
    assert np.array_equal(levels.numpy(), expected)
    snapped = fake_snap(w, levels)
    magnitude, _ = snap_magnitudes(w.double().abs().numpy(), expected)
    assert np.array_equal(snapped.numpy(), (np.sign(w.numpy()) * magnitude).astype(np.float32))
    assert (snapped[0, :3] == 0).all() and snapped.abs().max() == w.abs().max()
    assert torch.equal(torch.sign(snapped[snapped != 0]), torch.sign(w[snapped != 0]))
    # values on the levels only, and a second snap changes nothing
    assert np.isin(snapped.abs().numpy()[snapped.numpy() != 0],
                   expected.astype(np.float32)).all()
    assert torch.equal(fake_snap(snapped, series_levels(snapped, None, "E24", 1e4, 1e6)),
                       snapped)


def test_fake_snap_gradient_passes_straight_through():
    w = torch.randn(8, 5, requires_grad=True)
    upstream = torch.randn(8, 5)
    (fake_snap(w, series_levels(w, None, "E12", 1e4, 1e6)) * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


@pytest.mark.parametrize("input_scale", [1.0, 2.5])
def test_a_snapped_model_is_what_the_analog_export_builds_and_runs_it_exactly(input_scale):
    spec = NetworkSpec(layer_sizes=(20, 12, 4), timesteps=10,
                       encoding=EncodingSpec("constant_current", input_scale))
    torch.manual_seed(1)
    model = SpikingNet(spec, series="E24", r_range=(1e4, 1e6)).eval()
    with torch.no_grad():
        model.layers[1].bias[0] = 3.0  # a bias above every weight sets the layer's R_unit
    weights, biases = model.weights()
    as_numpy = [[a.double().numpy() for a in arrays] for arrays in (weights, biases)]
    circuit, realised_w, realised_b = design_circuit(
        spec, *as_numpy, ["fc1", "fc2"], CircuitOptions(series="E24", r_min=1e4, r_max=1e6))
    for layer in circuit.report["layers"]:  # export has nothing left to snap
        assert layer["clipped"] == layer["pruned"] == layer["bias_clipped"] == 0
        assert layer["bias_pruned"] == 0 and layer["max_relative_error"] < 1e-6
    for ours, built in zip(as_numpy[0] + as_numpy[1], realised_w + realised_b, strict=True):
        assert np.array_equal(ours != 0, built != 0)
        ratio = built[ours != 0] / ours[ours != 0]  # one factor per layer (threshold divider)
        assert ratio.max() - ratio.min() < 1e-6 and abs(ratio.mean() - 1) < 1e-3
    x = torch.rand(16, 20) * 2
    spikes = reference_forward(weights, biases, x * input_scale, spec)
    assert torch.equal(model(x).counts, torch.stack(spikes[-1]).float().sum(0))


# -------------------------------------------------------------------- tolerance noise


def test_weight_noise_only_in_training_mode():
    spec = NetworkSpec(layer_sizes=(30, 16, 5), timesteps=5)
    torch.manual_seed(2)
    model = SpikingNet(spec, series="E24", weight_noise=0.05, gain_noise=0.05)
    exact, exact_b = model.layer_params(0)
    noisy, noisy_b = model.layer_params(0, noise=True)
    ratio = noisy[exact != 0] / exact[exact != 0]
    assert (ratio - 1).abs().max() <= 0.05 + 1e-6 and (ratio != 1).all()
    assert ((noisy_b / exact_b - 1).abs() <= 0.05 + 1e-6).all()
    x = torch.rand(64, 30) * 3
    model.train()
    assert not torch.equal(model(x).counts, model(x).counts)  # fresh draw per pass
    model.eval()
    assert torch.equal(model(x).counts, model(x).counts)
    assert torch.equal(model.weights()[0][0], exact)


def test_tolerance_score_reports_draws():
    spec = NetworkSpec(layer_sizes=(30, 16, 5), timesteps=5)
    model = SpikingNet(spec, series="E24").eval()
    x, y = torch.rand(50, 30) * 3, torch.randint(0, 5, (50,))
    result = train_module.evaluate_with_tolerance(model, x, y, 0.01, draws=3)
    assert result["draws"] == 3 and result["min"] <= result["median"] <= result["max"]


# --------------------------------------------------------------------------- pruning


def test_allocation_splits_exactly_and_respects_capacity():
    assert allocate(1000, [(32, 196), (10, 32)], [6272, 320]) == [844, 156]
    assert allocate(1000, [(32, 49), (10, 32)], [1568, 320]) == [680, 320]
    assert sum(allocate(41, [(5, 7), (3, 5), (2, 3)], [35, 15, 6])) == 41
    assert allocate(10**6, [(5, 7), (3, 5)], [20, 15]) == [20, 15]


def test_pruner_reaches_exactly_max_synapses_and_the_fan_in_limit():
    spec = NetworkSpec(layer_sizes=(40, 24, 6))
    torch.manual_seed(3)
    model = SpikingNet(spec, masked=True)
    pruner = Pruner(spec.weight_shapes, max_synapses=150, fan_in=9, total_steps=30)
    counts = []
    for step in range(30):
        pruner(model, step)
        counts.append(count_synapses(model.weights()[0]))
    assert counts == sorted(counts, reverse=True)  # the count only falls
    weights = model.weights()[0]
    assert sum(int(m.sum()) for m in model.masks()) == 150
    assert all(int(m.sum(1).max()) <= 9 for m in model.masks())
    # without training in between, a weight that returned to fill the count is still 0
    assert 145 <= count_synapses(weights) <= 150 and max_fan_in(weights) <= 9


def test_fan_in_alone_caps_every_row():
    spec = NetworkSpec(layer_sizes=(40, 24, 6))
    model = SpikingNet(spec, masked=True)
    pruner = Pruner(spec.weight_shapes, max_synapses=None, fan_in=7, total_steps=10)
    for step in range(10):
        pruner(model, step)
    assert [int(m.sum()) for m in model.masks()] == [24 * 7, 6 * 7]
    assert max_fan_in(model.weights()[0]) == 7


def test_pruned_training_run_fits_exactly_and_pruned_weights_get_no_gradient(tmp_path):
    metrics, (config, _, model, _) = _fit(tmp_path, "pruned", max_synapses=300, fan_in=20)
    weights = model.weights()[0]
    assert count_synapses(weights) == 300 and max_fan_in(weights) <= 20
    assert metrics["hardware"]["synapses"] == 300 and metrics["hardware"]["max_fan_in"] <= 20
    for layer, mask in zip(model.layers, model.masks(), strict=True):
        assert (layer.weight[mask == 0] == 0).all()  # the parameter itself, not only its use
    model.train()
    data = prepare_dataset(config, progress=False)
    x = torch.from_numpy(data.train_x[:64])
    model(x).counts.sum().backward()
    for layer, mask in zip(model.layers, model.masks(), strict=True):
        assert (layer.weight.grad[mask == 0] == 0).all()
    assert metrics["test_accuracy"] > 0.5


def test_series_snapping_counts_the_realised_parts(tmp_path):
    metrics, (_, _, model, _) = _fit(tmp_path, "snapped", max_synapses=300, series="E24",
                                     weight_noise=0.01)
    weights, biases = model.weights()
    assert count_synapses(weights) <= 300
    assert metrics["hardware"]["synapses"] == count_synapses(weights)
    assert metrics["hardware"]["tolerance_test_accuracy"]["draws"] > 1
    for w, b in zip(weights, biases, strict=True):
        largest = max(float(w.abs().max()), float(b.abs().max()))
        levels = layer_levels(largest, "E24", 1e4, 1e6).astype(np.float32)
        values = torch.cat([w.flatten(), b]).abs().numpy()
        assert np.isin(values[values != 0], levels).all()


def test_masks_survive_an_interrupted_run_and_resume_ends_like_a_straight_run(
        tmp_path, monkeypatch):
    settings = {**DIGITS, "epochs": 4, "max_synapses": 250, "fan_in": 16, "weight_noise": 0.02,
                "series": "E12"}
    straight = fit(TrainConfig.from_dict(settings), tmp_path / "straight", progress=False,
                   plots=False)

    real_epoch, calls = train_module.train_epoch, []

    def dies_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(TrainConfig.from_dict(settings), tmp_path / "cut", progress=False, plots=False)
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)
    state = train_module.load_checkpoint(tmp_path / "cut")
    assert state["epoch"] == 2
    assert 250 < sum(int(state["model"][f"mask{i}"].sum()) for i in range(2)) < 64 * 32 + 320
    resumed = fit(TrainConfig(), tmp_path / "cut", resume=True, progress=False, plots=False)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    a, b = load_run(tmp_path / "cut")[2], load_run(tmp_path / "straight")[2]
    for ma, mb in zip(a.masks(), b.masks(), strict=True):
        assert torch.equal(ma, mb)
    assert all(torch.equal(x, y) for x, y in zip(a.weights()[0], b.weights()[0], strict=True))


def test_init_from_a_dense_run_prunes_its_weights(tmp_path):
    _fit(tmp_path, "dense")
    _, (_, _, model, _) = _fit(tmp_path, "tuned", epochs=2, max_synapses=200,
                               init_from=str(tmp_path / "dense"))
    assert count_synapses(model.weights()[0]) == 200


# ------------------------------------------------------------------ downsampled training


def test_downsampled_training_with_augmentation_and_exact_rescoring(tmp_path, data_dir):
    settings = {"limit_train": 600, "limit_test": 200, "epochs": 1, "downsample": 2,
                "augment_shift": 1, "hidden": 16}
    metrics = fit(TrainConfig.from_dict(settings), tmp_path / "pooled", progress=False,
                  plots=False)
    assert metrics["spec"]["layer_sizes"] == [196, 16, 10]
    rescored = train_module.evaluate_run(tmp_path / "pooled", progress=False)
    assert rescored["matches_reported"] is True


# ------------------------------------------------------------------------ part budget


def test_part_budget_result_fits_the_budget(tmp_path):
    metrics, (config, _, model, state) = _fit(tmp_path, "budget", part_budget=400,
                                              series="E24", hidden=24, epochs=3)
    assert config.part_budget == 400 and config.max_synapses == 400
    assert count_synapses(model.weights()[0]) <= 400
    assert metrics["hardware"]["synapses"] <= 400
    search = metrics["hardware"]["part_budget_search"]
    assert [c["downsample"] for c in search["candidates"]] == [2, 1]  # hidden 24 was given
    assert search["chosen"]["downsample"] == config.downsample
    assert search["validation_samples"] == len(load_dataset("digits").train_x) // 6
    assert state["part_budget_search"] == search


def test_part_budget_candidates_follow_the_documented_rule():
    assert candidate_designs(1000, (28, 28)) == [
        {"downsample": k, "hidden": [h]} for h in (31, 62, 125) for k in (4, 2)]
    assert candidate_designs(5000, (28, 28)) == [
        {"downsample": k, "hidden": [h]} for h in (156, 256) for k in (2, 1)]
    assert candidate_designs(1000, (28, 28), downsample=2, hidden=(40,)) == [
        {"downsample": 2, "hidden": [40]}]
    assert [d["downsample"] for d in candidate_designs(300, None)] == [1, 1, 1]


# ----------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(("settings", "message"), [
    ({"downsample": 3}, "downsample = 3 is not allowed: it must be a block size that divides "
                        "the 28x28 mnist images: one of 1, 2, 4, 7, 14, 28"),
    ({"dataset": "iris", "downsample": 2}, "downsample = 2 is not allowed"),
    ({"series": "E7"}, "series = 'E7' is not allowed: it must be one of E6, E12, E24"),
    ({"series": "E24", "quantize_bits": 4}, "series = 'E24' is not allowed"),
    ({"r_range": "1M,10k"}, "r_range = '1M,10k' is not allowed: it must be the smallest and "
                            "largest resistor in ohms"),
    ({"r_range": [1e4]}, "r_range = [10000.0] is not allowed"),
    ({"series": "E6", "r_range": "10k,12k"}, "r_range = (10000.0, 12000.0) is not allowed: "
                                             "it must be a range holding at least two E6"),
    ({"weight_noise": -0.1}, "weight_noise = -0.1 is not allowed: it must be a tolerance"),
    ({"gain_noise": 0.9}, "gain_noise = 0.9 is not allowed"),
    ({"max_synapses": 0}, "max_synapses = 0 is not allowed: it must be an integer >= 1"),
    ({"fan_in": 2.5}, "fan_in = 2.5 is not allowed"),
    ({"part_budget": -1}, "part_budget = -1 is not allowed"),
    ({"part_budget": 500, "max_synapses": 900}, "max_synapses = 900 is not allowed: it must "
                                                "be at most part_budget (500)"),
])
def test_bad_hardware_settings_name_the_field(settings, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(settings)
    assert message in str(err.value)


def test_r_range_reads_engineering_notation_and_round_trips():
    config = TrainConfig(r_range="4.7k, 2.2M")
    assert config.r_range == (4700.0, 2.2e6) == TrainConfig(r_range="4.7k:2.2M").r_range
    assert TrainConfig.from_dict(config.to_dict()) == config
