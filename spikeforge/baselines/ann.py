"""Non-spiking baselines: a multilayer perceptron trained by backpropagation.

The source's two working ANNs, both ``n_features -> hidden -> classes`` with a softmax
output and the cross-entropy loss:

* ``ann-sigmoid``: sigmoid hidden units, ``h = σ(W₁x + b₁)`` with ``σ(z) = 1 / (1 + e^-z)``;
* ``ann-relu``: ReLU hidden units, ``h = max(0, W₁x + b₁)`` (784-128-10 on MNIST).

Output ``p = softmax(W₂h + b₂)``, loss ``L = -(1/B) Σ_i log p_{y_i}(x_i)`` over a batch of
``B``, gradients by backpropagation, steps by Adam (default) or SGD with momentum 0.9, the
learning rate decayed to 0 on a cosine over the run.

Protocol (:mod:`spikeforge.baselines.common`): a validation split is held out of the
training set (:func:`validation_split`); every epoch is scored on it, and the weights of the
best validation epoch (early stopping) are the ones scored, once, on the test set.

The helpers here (:class:`MLP`, :func:`validation_split`, :func:`class_histogram`, ...) are
shared with the REINFORCE baseline, which uses the same network as its policy.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spikeforge.baselines.common import BaselineResult, BaselineSettings, accuracy, limited
from spikeforge.data.datasets import Dataset
from spikeforge.errors import ConfigError
from spikeforge.train import keep_freed_memory

#: Default epochs per dataset. Iris has 112 training samples, so an epoch is a handful of
#: steps and many more epochs are needed for the same number of updates. The MNIST recipe
#: (20 epochs, Adam 3e-3, cosine) was chosen on the 5,000-sample validation split: 98.3 %
#: (ReLU; 2e-3 gave the same) and 98.0 % (sigmoid) there, against 98.1 % / 97.7 % for 12
#: epochs at a constant 1e-3 and 97.8 % / 96.8 % for 12 epochs at 1e-3 with the cosine.
ANN_EPOCHS = {"iris": 200, "mnist": 20, "mnist-binary": 5}
#: Default mini-batch per dataset (Iris: small batches, more steps per epoch).
ANN_BATCH = {"iris": 16}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
OPTIMIZERS = ("adam", "sgd")


class MLP(nn.Module):
    """``n_in -> hidden... -> n_out`` with one activation between the linear layers; the
    output is logits (softmax is taken by the loss or the policy)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int,
                 activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation = {activation!r}: choose one of "
                              f"{', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        sizes = (n_in, *hidden)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def validation_size(n_train: int) -> int:
    """How many training samples to hold out: 10 % (at most 5,000) of a large set, 20 % of
    a small one such as Iris (10 % of 112 samples would be too noisy to choose on), and
    none when fewer than 10 samples are left to train on."""
    if n_train < 10:
        return 0
    return min(5000, n_train // 10) if n_train >= 1000 else max(2, n_train // 5)


def validation_split(data: Dataset) -> tuple[Dataset, bool]:
    """``(fit data, held_out)``: ``data.hold_out(n)`` with n from :func:`validation_size`
    (its ``test_*`` are then the validation samples). With too few samples to hold any out,
    ``data`` itself and ``False``; the caller must not choose on its test set then, and
    the methods here simply keep the last epoch."""
    n = validation_size(len(data.train_x))
    return (data.hold_out(n), True) if n else (data, False)


def as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The model's logits for ``x`` in eval mode, in batches."""
    was_training = model.training
    model.eval()
    parts = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0, model.head.out_features)


def predict_classes(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Greedy prediction: the argmax of the logits (ties to the lowest index, as
    :func:`spikeforge.spec.decode`)."""
    return logits_of(model, x).argmax(1).numpy()


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of the greedy prediction on ``(x, y)``."""
    logits = logits_of(model, x)
    return (accuracy(logits.argmax(1).numpy(), y.numpy()),
            float(F.cross_entropy(logits, y)) if len(y) else 0.0)


def class_histogram(predictions: np.ndarray, n_classes: int) -> list[int]:
    """How many samples were given each class: a collapse to one class shows as one bin."""
    return np.bincount(np.asarray(predictions, dtype=np.int64), minlength=n_classes).tolist()


#: below this many multiply-adds per training step, run on one thread (single_thread_if_small)
SMALL_STEP = 32_000_000


@contextmanager
def single_thread_if_small(multiply_adds: int) -> Iterator[None]:
    """Run the block on one intra-op thread when a training step is small: the MLPs here
    (784 x 128 x batch 128 = 12.8 M multiply-adds, about a millisecond on one core; Iris
    16 x 4 x 128) gain little from splitting each matrix over threads, and on shared cores
    they lose a great deal: every parallel region then waits for a descheduled thread.
    Measured on 2 loaded cores: 216 ms per MNIST MLP step with 2 threads, 1 ms with one.
    A side benefit: results no longer depend on the machine's thread count. Larger steps
    (the spiking network on MNIST: x T = 25 time steps) keep the settings as they are.
    Torch's threads and, for the spiking network's LIF kernels, Numba's are both limited."""
    small = multiply_adds < SMALL_STEP
    before = torch.get_num_threads()
    numba = sys.modules.get("numba") if small else None  # loaded by the spiking kernels
    numba_before = numba.get_num_threads() if numba is not None else None
    if small:
        torch.set_num_threads(1)
        if numba is not None:
            numba.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if numba is not None and numba_before is not None:
            numba.set_num_threads(numba_before)


def default_epochs(dataset: str, table: dict[str, int], settings: BaselineSettings) -> int:
    """``settings.epochs`` if given, else the method's default for ``dataset``."""
    epochs = settings.epochs if settings.epochs is not None else table.get(dataset, 10)
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ConfigError(f"epochs = {epochs!r} is not allowed: it must be an integer >= 1")
    return epochs


def default_lr(optimizer: str, dataset: str) -> float:
    """The learning rate a backprop baseline uses when none is given: 0.05 for SGD with
    momentum; for Adam 1e-2 on Iris (a few dozen steps an epoch) and 3e-3 elsewhere."""
    return 0.05 if optimizer == "sgd" else (1e-2 if dataset == "iris" else 3e-3)


def make_optimizer(params: Any, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ConfigError(f"optimizer = {name!r}: choose one of {', '.join(OPTIMIZERS)}")


class BestWeights:
    """Keeps the weights of the epoch with the highest validation accuracy. Ties go to the
    lower validation cross-entropy: a small validation set (Iris: 22 samples) is often
    100 % right after a few epochs, and the loss still tells the better of those epochs."""

    def __init__(self) -> None:
        self.accuracy = -1.0
        self.loss = float("inf")
        self.epoch = 0
        self.state: dict[str, Any] | None = None

    def update(self, model: nn.Module, val_accuracy: float, val_loss: float,
               epoch: int) -> None:
        if (val_accuracy, -val_loss) > (self.accuracy, -self.loss):
            self.accuracy, self.loss, self.epoch = val_accuracy, val_loss, epoch
            self.state = copy.deepcopy(model.state_dict())

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


def train_mlp(data: Dataset, settings: BaselineSettings, method: str, activation: str, *,
              hidden: tuple[int, ...] = (128,), optimizer: str = "adam",
              lr: float | None = None, batch_size: int | None = None,
              schedule: str = "cosine") -> BaselineResult:
    """Train an :class:`MLP` with softmax + cross-entropy by backpropagation; see the module
    docstring for the protocol. ``lr`` defaults to 3e-3 for Adam (1e-2 on Iris, whose
    epochs are only 6 steps) and 0.05 for SGD; ``schedule`` is ``"cosine"`` (decay to 0
    over the run) or ``"constant"``."""
    batch_size = batch_size or ANN_BATCH.get(data.name, 128)
    with single_thread_if_small(batch_size * data.n_features * max(hidden, default=1)):
        return _train_mlp(data, settings, method, activation, hidden, optimizer, lr,
                          batch_size, schedule)


def _train_mlp(data: Dataset, settings: BaselineSettings, method: str, activation: str,
               hidden: tuple[int, ...], optimizer: str, lr: float | None, batch_size: int,
               schedule: str) -> BaselineResult:
    start = time.perf_counter()
    keep_freed_memory()
    data = limited(data, settings)
    epochs = default_epochs(data.name, ANN_EPOCHS, settings)
    if lr is None:
        lr = default_lr(optimizer, data.name)
    fit_data, held_out = validation_split(data)
    train_x, train_y = as_tensors(fit_data.train_x, fit_data.train_y)
    val_x, val_y = as_tensors(fit_data.test_x, fit_data.test_y)

    torch.manual_seed(settings.seed)  # the initial weights
    model = MLP(data.n_features, hidden, data.n_classes, activation)
    opt = make_optimizer(model.parameters(), optimizer, lr)
    # cosine decay to 0 over the run, stepped per batch: the last epochs fine-tune with
    # small steps, worth about half a point on MNIST over a constant rate
    steps = epochs * math.ceil(len(train_x) / batch_size)
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule = {schedule!r}: choose cosine or constant")
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
                 if schedule == "cosine" else None)
    shuffle = torch.Generator().manual_seed(settings.seed)  # the order of the samples
    best = BestWeights()
    history: list[dict[str, Any]] = []
    bar = tqdm(range(1, epochs + 1), desc=f"{method} on {data.name}", unit="epoch",
               leave=False, disable=not settings.progress, mininterval=0.5)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), generator=shuffle)
        total_loss, correct = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            logits = model(train_x[idx])
            loss = F.cross_entropy(logits, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == train_y[idx]).sum())
        row: dict[str, Any] = {"epoch": epoch,
                               "train_loss": round(total_loss / max(len(order), 1), 6),
                               "train_accuracy": round(correct / max(len(order), 1), 6)}
        if held_out:
            val, val_loss = score(model, val_x, val_y)
            row["val_accuracy"], row["val_loss"] = round(val, 6), round(val_loss, 6)
            best.update(model, val, val_loss, epoch)
            bar.set_postfix(val=f"{val:.2%}")
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)

    notes = [f"{data.n_features}-{'-'.join(map(str, hidden))}-{data.n_classes} MLP, "
             f"{activation} hidden, softmax + cross-entropy, {optimizer} lr {lr:g} "
             f"(cosine decay), batch {batch_size}"]
    predictions = score_test_once(model, best if held_out else None, len(val_y), data, notes)
    return BaselineResult(
        method=method, dataset=data.name,
        test_accuracy=accuracy(predictions, data.test_y), epochs=epochs,
        seconds=time.perf_counter() - start, predictions=predictions, history=history,
        diagnostics={"best_epoch": best.epoch if held_out else epochs,
                     "n_train": len(train_y), "n_validation": len(val_y) if held_out else 0,
                     "n_test": len(data.test_y),
                     "torch_threads": torch.get_num_threads()},
        notes=notes)


def score_test_once(model: nn.Module, best: BestWeights | None, n_validation: int,
                    data: Dataset, notes: list[str]) -> np.ndarray:
    """The test set's predicted classes, scored once at the end: with the weights of the
    best validation epoch when a split was held out (``best``), else of the last epoch.
    Appends to ``notes`` which weights were scored."""
    if best is not None:
        best.restore(model)
        notes.append(f"weights of epoch {best.epoch} (best of {n_validation} held-out "
                     f"validation samples, {best.accuracy:.2%})")
    else:
        notes.append("too few training samples to hold any out: the last epoch is scored")
    test_x, _ = as_tensors(data.test_x, data.test_y)
    return predict_classes(model, test_x)


def train_ann_sigmoid(data: Dataset, settings: BaselineSettings, **options: Any
                      ) -> BaselineResult:
    """Method ``ann-sigmoid``: ``n_features-128-classes``, sigmoid hidden layer, softmax
    output, cross-entropy, backpropagation (the source's first working network).
    ``options`` go to :func:`train_mlp` (``hidden``, ``optimizer``, ``lr``, ``batch_size``)."""
    return train_mlp(data, settings, "ann-sigmoid", "sigmoid", **options)


def train_ann_relu(data: Dataset, settings: BaselineSettings, **options: Any) -> BaselineResult:
    """Method ``ann-relu``: the ReLU MLP 784-128-10 (``n_features-128-classes``), softmax
    output, cross-entropy, Adam. ``options`` as :func:`train_ann_sigmoid`."""
    return train_mlp(data, settings, "ann-relu", "relu", **options)
