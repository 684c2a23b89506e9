"""Training: ``fit`` a config into a run directory; ``train_epoch`` and ``evaluate``.

A run directory holds::

    checkpoint.pt   model + optimiser + schedule + history, the config and the spec;
                    rewritten atomically after every epoch (``--resume`` continues from it)
    history.csv     one row per finished epoch
    metrics.json    written last: its presence means the run finished
    plots/          training curves, confusion matrix, spike raster, receptive fields

Reproducibility: the model is initialised from ``seed``, and each epoch reseeds the global
RNG from ``(seed, epoch)`` before shuffling, augmenting and dropping out, so a resumed run
repeats exactly the epochs an uninterrupted one would have run.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spikeforge import __version__
from spikeforge.config import TrainConfig
from spikeforge.data.augment import random_shift
from spikeforge.data.datasets import IMAGE_SHAPES, Dataset, load_dataset
from spikeforge.distributed import (
    DistContext,
    all_sum,
    average_buffers,
    barrier,
    broadcast,
    check_replicas,
    init_distributed,
    loss_scale,
    rank_share,
    shutdown,
    unwrap,
    wrap_model,
)
from spikeforge.encoders import Encoder
from spikeforge.errors import CheckpointError, ConfigError, SpikeforgeError
from spikeforge.io import atomic_open, write_json, write_text
from spikeforge.losses import Objective
from spikeforge.models import INPUT_POWER, ConvSpikingNet, SpikingNet
from spikeforge.pruning import Pruner, count_synapses, max_fan_in
from spikeforge.spec import NetworkSpec, decode
from spikeforge.surrogates import get_surrogate

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
HISTORY = "history.csv"
CHECKPOINT_FORMAT = "spikeforge-checkpoint/1"
#: what every checkpoint holds (``fit`` writes them all, resume and scoring need them)
CHECKPOINT_KEYS = ("epoch", "config", "spec", "model", "optimizer", "scheduler", "history",
                   "train_seconds")
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "lr",
                  "epoch_seconds")


class DivergenceError(SpikeforgeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Evaluation:
    """Scores of a model on a labelled set, decoded as the hardware decodes."""

    accuracy: float
    correct: int
    n: int
    predictions: np.ndarray
    counts: np.ndarray
    labels: np.ndarray


#: noise draws for the tolerance score in metrics.json
TOLERANCE_DRAWS = 20


def auto_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when a GPU is present, else the CPU; ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"`` as given, refused by name where this machine has no such device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is visible to PyTorch (torch "
                          f"{torch.__version__}); use --device cpu, or auto to take a GPU "
                          f"only where there is one")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: use auto, cpu or cuda")
    return dev


Model = SpikingNet | ConvSpikingNet


def build_model(config: TrainConfig, spec: NetworkSpec) -> Model:
    """The network ``config`` trains, for the contract ``spec`` of its dataset."""
    surrogate = get_surrogate(config.surrogate, config.surrogate_slope)
    # event data arrives as spike trains: nothing to encode
    encoder = (None if config.encoding == "events"
               else Encoder(config.encoding, config.timesteps, config.encoding_gain))
    if config.model == "conv":
        shape = IMAGE_SHAPES[config.dataset]
        assert shape is not None  # TrainConfig refuses conv on non-image data
        image = (*shape[:-2], shape[-2] // config.downsample, shape[-1] // config.downsample)
        return ConvSpikingNet(image, spec.layer_sizes[-1], config.channels, config.kernel_size,
                              config.pool, config.hidden, timesteps=spec.timesteps,
                              neuron=spec.neuron, surrogate=surrogate, dropout=config.dropout,
                              encoder=encoder)
    # IF is the contract's LIF with decay 1 (set in the spec): the fused loop runs it
    cell = "lif" if config.neuron == "if" else config.neuron
    return SpikingNet(spec, surrogate=surrogate, dropout=config.dropout,
                      weight_bits=config.quantize_bits, series=config.series,
                      r_range=config.r_range, weight_noise=config.weight_noise,
                      gain_noise=config.gain_noise, masked=config.prunes, encoder=encoder,
                      cell=cell, learn_decay=config.learn_decay,
                      learn_threshold=config.learn_threshold)


def make_objective(config: TrainConfig) -> Objective:
    """The training loss of ``config`` (classification loss plus spike regularisers)."""
    return Objective(config.loss, config.logit_scale, config.timesteps, config.target_rate,
                     config.spike_l1, config.spike_l2)


def prepare_dataset(config: TrainConfig, data_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> Dataset:
    """The data a run of ``config`` trains and is scored on, exactly as training sees it:
    loaded (``data_dir`` first, else the config's), limited to ``limit_train`` /
    ``limit_test``, and pooled by the ``downsample`` front-end. Export and evaluation use
    this too, so a bundle is scored on the inputs its network was trained for."""
    data = load_dataset(config.dataset, data_dir or config.data_dir, progress=progress,
                        timesteps=config.timesteps, limit_train=config.limit_train,
                        limit_test=config.limit_test)
    return data.limit(config.limit_train, config.limit_test).downsample(config.downsample)


@torch.no_grad()
def evaluate_with_tolerance(model: SpikingNet, x: torch.Tensor, y: torch.Tensor,
                            tolerance: float, draws: int = TOLERANCE_DRAWS, seed: int = 0,
                            gain_tolerance: float = 0.0, batch_size: int = 1000
                            ) -> dict[str, Any]:
    """Accuracy of ``draws`` boards built from the model's realised weights
    (:meth:`SpikingNet.weights`) with parts of tolerance ``±tolerance``: every weight and
    bias times ``1 + U(-tol, tol)``, and with ``gain_tolerance`` every neuron's current
    times ``1 + U(-g, g)``. A quick proxy for a Monte-Carlo test of the analog board."""
    weights, biases = model.weights()
    board = SpikingNet(model.spec, model.surrogate).to(weights[0].device).eval()
    gen = torch.Generator().manual_seed(seed)

    def factors(shape: torch.Size, tol: float) -> torch.Tensor:
        u = torch.rand(shape, generator=gen, dtype=torch.float64)
        return (1.0 + tol * (2.0 * u - 1.0)).to(weights[0])

    accuracies = []
    for _ in range(draws):
        for layer, w, b in zip(board.layers, weights, biases, strict=True):
            gain = factors(w.shape[:1], gain_tolerance)
            layer.weight.copy_(w * factors(w.shape, tolerance) * gain[:, None])
            if b is not None:
                layer.bias.copy_(b * factors(b.shape, tolerance) * gain)
        accuracies.append(evaluate(board, x, y, batch_size).accuracy)
    a = np.array(accuracies)
    return {"tolerance": tolerance, "gain_tolerance": gain_tolerance, "draws": draws,
            "median": float(np.median(a)), "mean": float(a.mean()), "min": float(a.min()),
            "max": float(a.max())}


def hardware_counts(model: SpikingNet) -> dict[str, int]:
    """What the realised weights cost on a board: non-zero weights (synapse resistors),
    the largest fan-in of any neuron, and non-zero biases (bias resistors)."""
    weights, biases = model.weights()
    return {"synapses": count_synapses(weights), "max_fan_in": max_fan_in(weights),
            "bias_parts": sum(int(torch.count_nonzero(b)) for b in biases if b is not None)}


def readout(config: TrainConfig) -> str:
    """How a run's outputs are decoded: ``"spike_count"`` (the hardware's, the default) or,
    for a network trained with ``loss = "ce_membrane"``, ``"membrane"`` (the largest
    accumulated membrane; software only, as the targets count spikes)."""
    return "membrane" if config.loss == "ce_membrane" else "spike_count"


@torch.no_grad()
def evaluate(model: Model, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 1000, readout: str = "spike_count") -> Evaluation:
    """Accuracy with spike-count decoding and lowest-index tie-break (or, with ``readout =
    "membrane"``, the largest accumulated membrane). ``counts`` holds what was decoded."""
    if readout not in ("spike_count", "membrane"):
        raise ValueError(f"readout = {readout!r}: choose spike_count or membrane")
    was_training = model.training
    model.eval()
    outputs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    counts = torch.cat([o.counts if readout == "spike_count" else o.membrane for o in outputs])
    model.train(was_training)
    predictions = decode(counts)
    correct = int((predictions == y).sum())
    return Evaluation(correct / max(len(y), 1), correct, len(y), predictions.cpu().numpy(),
                      counts.cpu().numpy(), y.cpu().numpy())


def train_epoch(model: Model, x: torch.Tensor, y: torch.Tensor,
                optimizer: torch.optim.Optimizer, scheduler: Any = None, batch_size: int = 128,
                augment_shift: int = 0, image_shape: tuple[int, ...] | None = None,
                logit_scale: float = 1.0, bar: tqdm | None = None,
                pruner: Pruner | None = None, first_step: int = 0,
                objective: Objective | None = None,
                dist: DistContext | None = None) -> tuple[float, float]:
    """One pass over ``(x, y)`` in a random order; returns mean loss and train accuracy.

    ``objective`` is the loss (default: cross-entropy on ``logit_scale`` x spike counts);
    ``scheduler`` (optional) steps after every batch. The order, the augmentation,
    dropout, Poisson input and simulated part tolerances draw from the global torch RNG:
    seed it first (``fit`` does, per epoch) to make the epoch reproducible. ``pruner``
    tightens the model's masks before the optimiser steps it schedules (``first_step`` is
    the global index of this epoch's first step).

    ``dist`` (under torchrun): ``model`` is wrapped in DDP, every rank draws the same
    order and trains on its share of each global batch (``spikeforge.distributed``); the
    returned loss and accuracy are over all ranks' samples.
    """
    objective = objective or Objective("ce_count", logit_scale)
    net = unwrap(model)
    model.train()
    order = torch.randperm(len(x), device=x.device)
    if dist is not None:  # same order on every rank, but each its own training noise
        torch.manual_seed((torch.initial_seed() * 1_000_003 + dist.rank + 1) % 2**63)
    total_loss, correct, seen = 0.0, 0, 0
    for batch, start in enumerate(range(0, len(x), batch_size)):
        if pruner is not None:
            if first_step + batch in pruner.schedule:  # every rank ranks the same inputs
                average_buffers(net, INPUT_POWER, dist)
            pruner(net, first_step + batch)
        idx = order[start:start + batch_size]
        n_global = len(idx)
        if dist is not None and n_global < dist.world_size:
            continue  # a last batch smaller than the rank count: every rank skips it
        idx = rank_share(idx, dist)
        xb, yb = x[idx], y[idx]
        if augment_shift and image_shape is not None and len(image_shape) in (2, 3):
            xb = random_shift(xb, image_shape, augment_shift)
        out = model(xb, record=objective.needs_spikes, membrane=objective.needs_membrane)
        counts = out.counts
        decoded = out.membrane if objective.needs_membrane else counts
        batch_correct = int((decode(decoded.detach()) == yb).sum())
        loss = objective(out, yb)
        loss_value = loss.item()
        if dist is not None:  # every rank must take the same decision on divergence
            loss_sum, batch_correct_f = all_sum([loss_value * len(idx), batch_correct], dist)
            loss_value, batch_correct = loss_sum / n_global, int(batch_correct_f)
            loss = loss * loss_scale(len(idx), n_global, dist)
        if not math.isfinite(loss_value):
            lr = optimizer.param_groups[0]["lr"]
            raise DivergenceError(f"the loss became {loss_value} at sample {start}: training "
                                  f"diverged at a learning rate of {lr:.3g}; lower --lr and "
                                  f"train again")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Exploding weights need not show in the loss: a NaN membrane never spikes, and
        # cross-entropy on zero spike counts is a finite ln(classes), forever.
        if not _finite_parameters(model):
            lr = optimizer.param_groups[0]["lr"]
            raise DivergenceError(f"the weights became NaN or infinite at sample {start} (the "
                                  f"loss was {loss_value:.4g}): training diverged at a "
                                  f"learning rate of {lr:.3g}; lower --lr and train again")
        if isinstance(net, SpikingNet):
            net.apply_masks_()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss_value * n_global
        correct += batch_correct
        seen += n_global
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    return total_loss / max(seen, 1), correct / max(seen, 1)


def _finite_parameters(model: Model) -> bool:
    """Whether every parameter is finite (one reduction per tensor, one device sync)."""
    peaks = [p.detach().abs().amax() for p in model.parameters() if p.numel()]
    return not peaks or bool(torch.isfinite(torch.stack(peaks)).all())


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    A training step allocates and frees tensors of a few MB (``T x batch x neurons``);
    by default glibc serves those with fresh ``mmap`` pages and gives them back on free, so
    every step pays for page faults on memory it just released (about 20 % of a CPU step
    for the reference network). Raising the mmap and trim thresholds keeps the pages.
    Process-wide and harmless elsewhere; a no-op where glibc is absent.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _training_plan(config: TrainConfig, model: Model, n_train: int
                   ) -> tuple[torch.optim.Optimizer, Any, Pruner | None, int]:
    """Optimiser, learning-rate schedule, pruning schedule and batches per epoch of a run."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, fused=True)
    batches_per_epoch = math.ceil(n_train / config.batch_size)
    total_steps = config.epochs * batches_per_epoch
    if config.lr_schedule == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    pruner = None
    if config.prunes:
        pruner = Pruner(model.spec.weight_shapes, config.max_synapses, config.fan_in,
                        total_steps)
    return optimizer, scheduler, pruner, batches_per_epoch


def train_model(config: TrainConfig, data: Dataset, device: str = "auto") -> Model:
    """Train ``config`` on ``data`` as ``fit`` does (same seeds, schedules and pruning), in
    memory, without a run directory, evaluation or progress output; returns the model in
    eval mode. For short trial runs, e.g. the part-budget search on a validation split."""
    dev = auto_device(device)
    spec = config.network_spec(data.n_features, data.n_classes)
    train_x, train_y, _, _ = _tensors(data, dev)
    torch.manual_seed(config.seed)
    model = build_model(config, spec).to(dev)
    optimizer, scheduler, pruner, batches = _training_plan(config, model, len(train_x))
    for epoch in range(1, config.epochs + 1):
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        train_epoch(model, train_x, train_y, optimizer, scheduler, config.batch_size,
                    config.augment_shift, data.image_shape, config.logit_scale,
                    pruner=pruner, first_step=(epoch - 1) * batches,
                    objective=make_objective(config))
    return model.eval()


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def _tensors(data: Dataset, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(a).to(device) for a in
                 (data.train_x, data.train_y, data.test_x, data.test_y))


def environment() -> dict[str, Any]:
    """What produced a result: versions, machine and the git commit if any."""
    commit, dirty = None, None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                                  cwd=Path(__file__).parent).stdout.strip()

        commit = git("rev-parse", "HEAD") or None
        if commit:
            dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"spikeforge": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
            "git_commit": commit, "git_dirty": dirty}


# ---------------------------------------------------------------- checkpoints and run dirs


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_open(path) as f:
        torch.save(state, f)


def load_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint of a run directory, checked to be one of ours."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no {CHECKPOINT} here; is this a spikeforge run "
                              f"directory?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"{path}: cannot be read ({type(e).__name__}: {e}); it is "
                              f"corrupt or not a spikeforge checkpoint: train the run "
                              f"again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (format "
                              f"{found!r}{_written_by(state)}); this spikeforge "
                              f"({__version__}) cannot continue or score it: use the version "
                              f"that wrote it, or train the run again")
    problems = [f"lacks {key!r}" for key in CHECKPOINT_KEYS if key not in state]
    problems += [f"{key!r} is not a mapping" for key in ("config", "spec", "model")
                 if key in state and not isinstance(state[key], dict)]
    if problems:
        raise CheckpointError(f"{path}: {', '.join(problems)}{_written_by(state)}; it is "
                              f"damaged or was not written by spikeforge: train the run "
                              f"again")
    return state


def _written_by(state: Any) -> str:
    """``", written by spikeforge X"`` when a checkpoint says which version wrote it."""
    version = state.get("spikeforge") if isinstance(state, dict) else None
    return f", written by spikeforge {version}" if version else ""


def _stored_run(state: dict[str, Any], run_dir: str | os.PathLike
                ) -> tuple[TrainConfig, NetworkSpec]:
    """The config and spec a checkpoint stores. One written by another spikeforge version
    may hold options this version lacks (or lacks ones it needs): say so, by name."""
    source = f"{run_dir}/{CHECKPOINT}"
    try:
        return (TrainConfig.from_dict(state["config"], source=source),
                NetworkSpec.from_dict(state["spec"]))
    except SpikeforgeError as e:
        writer = state.get("spikeforge")
        fix = (f"it was written by spikeforge {writer} and this is {__version__}: use "
               f"{writer} to continue or score it, or train the run again"
               if writer not in (None, __version__) else "train the run again")
        raise CheckpointError(f"{source}: its stored config or spec cannot be used here "
                              f"({e}); {fix}") from None


def load_run(run_dir: str | os.PathLike) -> tuple[TrainConfig, NetworkSpec, Model,
                                                  dict[str, Any]]:
    """Config, spec, trained model (eval mode, CPU) and checkpoint of a run directory."""
    state = load_checkpoint(run_dir)
    config, spec = _stored_run(state, run_dir)
    model = build_model(config, spec)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{run_dir}/{CHECKPOINT}: its weights do not fit its stored spec "
                              f"{spec.layer_sizes} ({e}); the checkpoint was edited or "
                              f"damaged: train the run again") from None
    return config, spec, model.eval(), state


def _init_from(model: Model, run_dir: str, spec: NetworkSpec) -> None:
    """Start from another run's weights; its network must have the same shape."""
    source = load_checkpoint(run_dir)
    if isinstance(model, ConvSpikingNet):
        try:
            model.load_state_dict(source["model"])
        except RuntimeError as e:
            raise CheckpointError(f"--init-from {run_dir}: its weights do not fit this "
                                  f"network: {e}") from None
        return
    source_spec = NetworkSpec.from_dict(source["spec"])
    if source_spec.layer_sizes != spec.layer_sizes:
        raise CheckpointError(f"--init-from {run_dir}: its layers {source_spec.layer_sizes} "
                              f"differ from this run's {spec.layer_sizes}")
    weights = {k: v for k, v in source["model"].items() if not k.startswith("mask")}
    model.load_state_dict(weights, strict=False)  # checks shapes; masks are handled below
    missing = sorted(k for k in set(model.state_dict()) - set(weights)
                     if not k.startswith(("mask", INPUT_POWER)))
    if missing:
        raise CheckpointError(f"--init-from {run_dir}: its checkpoint lacks {missing}")
    source_masks = [source["model"].get(f"mask{i}") for i in range(len(model.layers))]
    if model.masked and all(m is not None for m in source_masks):
        model.set_masks(source_masks)  # continue pruning from the source's masks
    elif model.masked:  # pruning starts from the weights the source realised
        model.set_masks([(layer.weight != 0).to(layer.weight) for layer in model.layers])


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.dataset}-{datetime.now():%Y%m%d-%H%M%S}"


def _prepare_new_run_dir(run_dir: Path, force: bool) -> None:
    finished = (run_dir / METRICS).exists()
    started = (run_dir / CHECKPOINT).exists()
    if (finished or started) and not force:
        what = "holds a finished run" if finished else "holds an unfinished run"
        hint = "" if finished else f" Continue it with `spikeforge train --resume {run_dir}`, or"
        raise CheckpointError(f"{run_dir} {what}; it is never overwritten silently.{hint} "
                              f"pass --force to replace it, or choose another --out")
    if force:
        for name in (CHECKPOINT, METRICS, HISTORY):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "plots", ignore_errors=True)
    # The folder itself appears with the first checkpoint: a run that fails before it
    # trained anything (missing data, say) leaves nothing behind.


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(run_dir / HISTORY, buf.getvalue())


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------------- fit


def fit(config: TrainConfig, run_dir: str | os.PathLike | None = None, *, resume: bool = False,
        force: bool = False, progress: bool = True, device: str = "auto",
        plots: bool = True, command: list[str] | None = None) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``); returns the
    metrics written to ``metrics.json``.

    Started by ``torchrun --nproc_per_node N`` it trains data-parallel
    (``spikeforge.distributed``): rank 0 writes the run directory and returns the metrics,
    the other ranks return ``{"rank": r}``.
    """
    wall_start = time.perf_counter()
    if config.dataset == "nmnist-sample":  # refuse before a run directory is made
        raise ConfigError("dataset = 'nmnist-sample' has no training split: it is 200 real "
                          "recordings for scoring. Train on nmnist-synth (or nmnist), then "
                          "`spikeforge evaluate RUN --dataset nmnist-sample`")
    keep_freed_memory()
    dist = init_distributed(device)
    try:
        return _fit(config, run_dir, resume, force, progress, device, plots, command, dist,
                    wall_start)
    finally:
        shutdown(dist)


def _fit(config: TrainConfig, run_dir: str | os.PathLike | None, resume: bool, force: bool,
         progress: bool, device: str, plots: bool, command: list[str] | None,
         dist: DistContext | None, wall_start: float) -> dict[str, Any]:
    main = dist is None or dist.is_main
    progress = progress and main
    dev = dist.device if dist is not None else auto_device(device)
    state: dict[str, Any] | None = None
    if resume:
        if run_dir is None:
            raise CheckpointError("--resume needs the run directory to continue")
        run_dir = Path(run_dir)
        if (run_dir / METRICS).exists():
            raise CheckpointError(f"{run_dir} already finished ({METRICS} exists); nothing to "
                                  f"resume. Use `spikeforge evaluate {run_dir}` to re-score it")
        state = load_checkpoint(run_dir)
        config, _ = _stored_run(state, run_dir)
    else:
        run_dir = Path(run_dir or config.out or default_run_dir(config))
        if main:
            _prepare_new_run_dir(run_dir, force)
        barrier(dist)

    budget_search: dict[str, Any] | None = None
    if config.part_budget is not None and config.max_synapses is None:
        from spikeforge.budget import choose_design

        if main:  # one search, its choice sent to every rank
            config, budget_search = choose_design(config, progress=progress, device=device)
        config, budget_search = broadcast((config, budget_search), dist)
    if not main:
        barrier(dist)  # rank 0 fetches and checks the data files first
    data = prepare_dataset(config, progress=progress)
    if main and dist is not None:
        barrier(dist)
    spec = config.network_spec(data.n_features, data.n_classes)
    if state is not None and _stored_run(state, run_dir)[1] != spec:
        raise CheckpointError(f"{run_dir}: the checkpoint's spec differs from the network its "
                              f"config builds on {config.dataset}; the checkpoint was edited "
                              f"or the data changed: train the run again (--force)")
    train_x, train_y, test_x, test_y = _tensors(data, dev)

    torch.manual_seed(config.seed)
    model = build_model(config, spec)
    if config.init_from and state is None:
        _init_from(model, config.init_from, spec)
    model = model.to(dev)
    optimizer, scheduler, pruner, batches_per_epoch = _training_plan(config, model,
                                                                     len(train_x))
    history: list[dict[str, Any]] = []
    train_seconds = 0.0
    first_epoch = 1
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{run_dir}/{CHECKPOINT}: its weights or optimiser state do "
                                  f"not fit the network of its spec ({e}); the checkpoint was "
                                  f"edited or damaged: train the run again (--force)") from None
        history = list(state["history"])
        train_seconds = float(state["train_seconds"])
        first_epoch = int(state["epoch"]) + 1
        budget_search = state.get("part_budget_search")
        if main:
            _log(f"resuming {run_dir} after epoch {state['epoch']}/{config.epochs}")
    trained = wrap_model(model, dist)

    for epoch in range(first_epoch, config.epochs + 1):
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        lr = scheduler.get_last_lr()[0]
        with tqdm(total=batches_per_epoch, desc=f"epoch {epoch}/{config.epochs}",
                  unit="batch", leave=False, disable=not progress, mininterval=0.5) as bar:
            start = time.perf_counter()
            try:
                loss, train_acc = train_epoch(trained, train_x, train_y, optimizer, scheduler,
                                              config.batch_size, config.augment_shift,
                                              data.image_shape, config.logit_scale, bar,
                                              pruner, (epoch - 1) * batches_per_epoch,
                                              make_objective(config), dist)
            except DivergenceError as e:  # nothing of this epoch is saved
                kept = (f"the checkpoint of epoch {epoch - 1} is kept in {run_dir} (pass "
                        f"--force or another --out to train again)" if epoch > 1
                        else "no epoch had finished, so nothing was saved")
                raise DivergenceError(f"epoch {epoch}: {e}; {kept}") from None
            seconds = time.perf_counter() - start
        train_seconds += seconds
        check_replicas(unwrap(trained), dist, rank_local=INPUT_POWER)
        if not main:
            continue
        test = evaluate(model, test_x, test_y, config.eval_batch_size, readout(config))
        history.append({"epoch": epoch, "train_loss": round(loss, 6),
                        "train_accuracy": round(train_acc, 6),
                        "test_accuracy": round(test.accuracy, 6), "lr": lr,
                        "epoch_seconds": round(seconds, 3)})
        save_checkpoint(run_dir / CHECKPOINT, {
            "format": CHECKPOINT_FORMAT, "spikeforge": __version__, "epoch": epoch,
            "config": config.to_dict(), "spec": spec.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "history": history, "train_seconds": train_seconds,
            "part_budget_search": budget_search})
        _write_history(run_dir, history)
        _log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}  train {train_acc:.2%}  "
             f"test {test.accuracy:.2%}  ({seconds:.1f} s)")

    if not main:
        return {"rank": dist.rank if dist is not None else 0}
    final = evaluate(model, test_x, test_y, config.eval_batch_size, readout(config))
    hardware: dict[str, Any] = (hardware_counts(model) if isinstance(model, SpikingNet)
                                else {})
    if config.weight_noise > 0:
        hardware["tolerance_test_accuracy"] = evaluate_with_tolerance(
            model, test_x, test_y, config.weight_noise, seed=config.seed,
            batch_size=config.eval_batch_size)
    if budget_search is not None:
        hardware["part_budget_search"] = budget_search
    if plots:
        from spikeforge.plots import plot_run

        plot_run(run_dir, model.cpu(), data, history, final)
    metrics = {
        "test_accuracy": final.accuracy,
        "test_correct": final.correct,
        "readout": readout(config),
        "n_test": final.n,
        "n_train": len(train_x),
        "epochs": config.epochs,
        "train_seconds": round(train_seconds, 3),
        "samples_per_second": round(len(train_x) * config.epochs / max(train_seconds, 1e-9), 1),
        "wall_seconds": round(time.perf_counter() - wall_start, 3),
        "final_train_loss": history[-1]["train_loss"],
        "final_train_accuracy": history[-1]["train_accuracy"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "hardware": hardware,
        "device": str(dev),
        "processes": 1 if dist is None else dist.world_size,
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "data_files": data.files,
        "environment": environment(),
        "command": command,
        "run_dir": str(run_dir),
    }
    write_json(run_dir / METRICS, metrics)
    return metrics


def reported_accuracy(run_dir: str | os.PathLike) -> float | None:
    """The test accuracy a finished run reported in metrics.json (None if unfinished)."""
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()).get("test_accuracy") if path.exists() else None


def evaluate_run(run_dir: str | os.PathLike, data_dir: str | None = None,
                 progress: bool = True, dataset: str | None = None) -> dict[str, Any]:
    """Re-score a saved run on its test set (same dataset, same limit) from its checkpoint,
    or on the whole test split of ``dataset`` (its inputs must match the run's: e.g. the
    real ``nmnist-sample`` recordings for a run trained on ``nmnist-synth``)."""
    config, spec, model, _ = load_run(run_dir)
    other = dataset is not None and dataset != config.dataset
    if other and config.model == "conv" and IMAGE_SHAPES.get(dataset) != IMAGE_SHAPES[
            config.dataset]:
        raise ConfigError(f"--dataset {dataset}: its samples are not shaped like the run's "
                          f"{config.dataset} images {IMAGE_SHAPES[config.dataset]}; score it "
                          f"on a dataset with the same inputs")
    if other:
        try:  # only the test split is scored: read as little training data as possible
            config = dataclasses.replace(config, dataset=dataset, limit_train=1, limit_test=None)
        except ConfigError as e:
            raise ConfigError(f"--dataset {dataset}: {e}") from None
    data = prepare_dataset(config, data_dir, progress=progress)
    if config.model != "conv" and data.n_features != spec.layer_sizes[0]:
        raise ConfigError(f"--dataset {dataset}: its samples have {data.n_features} inputs, the "
                          f"run's network takes {spec.layer_sizes[0]}; score it on a dataset "
                          f"with the same inputs")
    result = evaluate(model, torch.from_numpy(data.test_x), torch.from_numpy(data.test_y),
                      config.eval_batch_size, readout(config))
    out: dict[str, Any] = {"dataset": data.name, "test_accuracy": result.accuracy,
                           "test_correct": result.correct, "n_test": result.n}
    reported = reported_accuracy(run_dir)
    if reported is not None and not other:
        out["reported_test_accuracy"] = reported
        out["matches_reported"] = reported == result.accuracy
    return out
