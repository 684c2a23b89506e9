"""Data-parallel training under torchrun (spikeforge.distributed): the split keeps one
process's gradient, two processes train to the same network as one, pruning masks agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from spikeforge.config import TrainConfig
from spikeforge.distributed import (
    DistContext,
    launched_by_torchrun,
    loss_scale,
    rank_share,
    unwrap,
    wrap_model,
)
from spikeforge.errors import ConfigError
from spikeforge.train import auto_device, fit

SLICE = ["--limit-train", "2048", "--limit-test", "1000", "--epochs", "2",
         "--dropout", "0", "--augment-shift", "0", "--batch-size", "100"]


def _ctx(rank: int, world: int) -> DistContext:
    return DistContext(rank, world, rank, torch.device("cpu"), "gloo")


@pytest.mark.parametrize("n_global", [128, 97, 3])
def test_rank_shares_with_scaled_losses_average_to_the_global_batch_gradient(n_global):
    """(1/N) Σ_r ∇(mean_r · n_r N / n) = ∇ mean over the global batch, for uneven shares."""
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(n_global, 5)
    idx = torch.randperm(n_global)

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x[rows] @ w).pow(2).mean()

    (full,) = torch.autograd.grad(loss_of(idx), w)
    world = 3
    grads = []
    for rank in range(world):
        share = rank_share(idx, _ctx(rank, world))
        scaled = loss_of(share) * loss_scale(len(share), n_global, _ctx(rank, world))
        grads.append(torch.autograd.grad(scaled, w)[0])
    assert torch.allclose(torch.stack(grads).mean(0), full, atol=1e-6)
    shares = torch.cat([rank_share(idx, _ctx(r, world)) for r in range(world)])
    assert sorted(shares.tolist()) == sorted(idx.tolist())  # every sample, once


def test_a_single_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched_by_torchrun()
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, None) is model and unwrap(model) is model
    assert loss_scale(7, 100, None) == 1.0


def test_cuda_is_refused_by_name_where_there_is_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        auto_device("cuda")
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        auto_device("tpu")
    assert auto_device("auto").type == "cpu"


def _torchrun(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "spikeforge", "train", *args, "--no-progress", "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_two_processes_train_the_network_one_process_trains(tmp_path):
    """torchrun with gloo, 2 ranks, pruned to a synapse budget and a fan-in limit: the same
    test accuracy and weights as one process (the same steps; only float sums differ in
    order), rank 0 alone reports, and the masks met the limits."""
    limits = ["--max-synapses", "20000", "--fan-in", "200"]
    done = _torchrun([*SLICE, *limits, "--out", str(tmp_path / "ddp")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # rank 1 prints nothing
    ddp = json.loads(reports[0])
    assert ddp["processes"] == 2
    assert ddp["hardware"]["synapses"] == 20000 and ddp["hardware"]["max_fan_in"] <= 200

    config = TrainConfig.from_dict({
        "limit_train": 2048, "limit_test": 1000, "epochs": 2, "dropout": 0.0,
        "augment_shift": 0, "batch_size": 100, "max_synapses": 20000, "fan_in": 200})
    one = fit(config, tmp_path / "one", progress=False, plots=False)
    assert one["processes"] == 1
    assert abs(ddp["test_accuracy"] - one["test_accuracy"]) <= 0.01
    a = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)["model"]
    w0 = a["layers.0.weight"]
    assert (w0 - b["layers.0.weight"]).abs().max() < 0.05 * w0.abs().max()
    assert torch.equal(a["mask1"], b["mask1"])  # both pruned the same output synapses
