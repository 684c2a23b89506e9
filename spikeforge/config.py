"""Training configuration: one dataclass, read from defaults < a TOML file < the command line.

Every field can live in a TOML file (``spikeforge train --config run.toml``), spelled with
underscores or dashes (``batch_size`` or ``batch-size``), e.g.::

    dataset = "mnist"
    epochs = 30
    hidden = [256, 128]
    decay = 0.9
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from spikeforge.data.datasets import DATASETS
from spikeforge.errors import ConfigError, SpecError
from spikeforge.spec import EncodingSpec, NetworkSpec, NeuronSpec
from spikeforge.surrogates import SURROGATES

LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults are the reference design on MNIST.

    Network (the hardware contract): ``hidden`` layer widths, ``timesteps``, ``decay``,
    ``threshold``, ``reset``, ``refractory``, ``input_scale`` (current per unit pixel).
    Optimisation: Adam with decoupled ``weight_decay`` (AdamW) and ``lr`` decayed by
    ``lr_schedule`` over all steps; cross-entropy on ``logit_scale`` x output spike counts;
    surrogate gradient ``surrogate`` with ``surrogate_slope``. Regularisers that never
    change the hardware: ``augment_shift`` shifts each training image by up to that many
    pixels (0 = off; images only); ``dropout`` silences each hidden neuron for a whole
    training sample with that probability. ``quantize_bits`` trains with weights rounded
    to that many bits per layer (quantisation-aware training, straight-through gradient)
    so that a digital export of that width loses as little as possible. ``init_from``
    starts from the weights of another run (fine-tuning, e.g. quantisation-aware).
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.01
    logit_scale: float = 0.5
    hidden: tuple[int, ...] = (128,)
    timesteps: int = 25
    decay: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"
    refractory: int = 0
    input_scale: float = 1.0
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 2.0
    augment_shift: int = 1
    dropout: float = 0.2
    quantize_bits: int | None = None
    init_from: str | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    eval_batch_size: int = 1000
    out: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", parse_hidden(self.hidden))

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is not allowed: it must be "
                                  f"{allowed}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need(self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}")
        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1")
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(is_int(self.eval_batch_size) and self.eval_batch_size >= 1, "eval_batch_size",
             "an integer >= 1")
        need(is_num(self.lr) and self.lr > 0, "lr", "a number > 0 (e.g. 2e-3)")
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {', '.join(LR_SCHEDULES)}")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
             "a number >= 0")
        need(is_num(self.logit_scale) and self.logit_scale > 0, "logit_scale", "a number > 0")
        need(self.surrogate in SURROGATES, "surrogate", f"one of {', '.join(SURROGATES)}")
        need(is_num(self.surrogate_slope) and self.surrogate_slope > 0, "surrogate_slope",
             "a number > 0")
        need(is_int(self.augment_shift) and 0 <= self.augment_shift <= 8, "augment_shift",
             "an integer number of pixels in 0..8")
        need(is_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "a number in [0, 1)")
        need(self.quantize_bits is None or (is_int(self.quantize_bits)
                                            and 2 <= self.quantize_bits <= 16),
             "quantize_bits", "an integer number of bits in 2..16, or absent")
        need(is_int(self.seed), "seed", "an integer")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            need(value is None or (is_int(value) and value >= 1), name,
                 "an integer >= 1, or absent for the whole set")
        self.network_spec(1, 2)  # validates the contract fields, naming them

    def network_spec(self, n_inputs: int, n_classes: int) -> NetworkSpec:
        """The hardware contract this config trains, for a dataset's input and class count."""
        try:
            return NetworkSpec(
                layer_sizes=(n_inputs, *self.hidden, n_classes),
                timesteps=self.timesteps,
                neuron=NeuronSpec(self.decay, self.threshold, self.reset, self.refractory),
                encoding=EncodingSpec("constant_current", self.input_scale),
            )
        except SpecError as e:  # report the option's name as the user spells it
            msg = str(e)
            for spec_name, option in (("neuron.", ""), ("encoding.scale", "input_scale"),
                                      ("layer_sizes", "hidden")):
                msg = msg.replace(spec_name, option)
            raise ConfigError(msg) from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, with unknown keys reported by name."""
        known = {f.name for f in fields(cls)}
        clean = {}
        for key, value in d.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"{source}: unknown option {key!r}; known options: "
                                  f"{', '.join(sorted(known))}")
            clean[name] = value
        try:
            return cls(**clean)
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def parse_hidden(value: Any) -> tuple[int, ...]:
    """Hidden widths from ``128``, ``"256,128"``, ``[256, 128]`` or ``()`` (no hidden layer)."""
    items: Any = value
    if isinstance(value, str):
        items = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    try:
        widths = tuple(int(v) for v in items)
        ok = all(w >= 1 for w in widths) and not any(isinstance(v, (bool, float)) for v in items)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"hidden = {value!r} is not allowed: it must be layer widths >= 1, "
                          f"e.g. 128 or 256,128")
    return widths


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; syntax errors name the file and line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
