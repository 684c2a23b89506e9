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

from spikeforge.data.datasets import DATASETS, IMAGE_SHAPES, divisors, is_event_dataset
from spikeforge.errors import ConfigError, SpecError, SpikeforgeError
from spikeforge.hardware.components import E_SERIES, parse_value, series_values
from spikeforge.spec import EncodingSpec, NetworkSpec, NeuronSpec
from spikeforge.surrogates import SURROGATES

LR_SCHEDULES = ("cosine", "constant")
MODELS = ("mlp", "conv")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults are the reference design on MNIST.

    Network (the hardware contract): ``hidden`` layer widths, ``timesteps``, ``decay``,
    ``threshold``, ``reset``, ``refractory``, ``input_scale`` (current per unit pixel).
    Optimisation: Adam with decoupled ``weight_decay`` (AdamW) and ``lr`` decayed by
    ``lr_schedule`` over all steps; cross-entropy on ``logit_scale`` x output spike counts;
    surrogate gradient ``surrogate`` with its shape parameter ``surrogate_slope`` (absent:
    the surrogate's default; :mod:`spikeforge.surrogates`). Regularisers that never
    change the hardware: ``augment_shift`` shifts each training image by up to that many
    pixels (0 = off; images only); ``dropout`` silences each hidden neuron for a whole
    training sample with that probability. ``quantize_bits`` trains with weights rounded
    to that many bits per layer (quantisation-aware training, straight-through gradient)
    so that a digital export of that width loses as little as possible. ``init_from``
    starts from the weights of another run (fine-tuning, e.g. quantisation-aware).

    The toolkit beyond the contract (docs/toolkit.md): ``model`` ``"mlp"`` (a
    :class:`~spikeforge.models.SpikingNet`) or ``"conv"`` (a
    :class:`~spikeforge.models.ConvSpikingNet` with ``channels``, ``kernel_size``, ``pool``
    in front of the ``hidden`` dense layers); ``neuron``, the cell (``"lif"``, the
    contract's; ``"if"`` is the LIF with decay 1; others in
    :data:`spikeforge.neurons.cells.CELLS`), with ``learn_decay`` / ``learn_threshold``;
    ``encoding`` of the input (``"constant_current"``, ``"poisson"`` with ``encoding_gain``,
    ``"latency"``); ``loss`` (``"ce_count"``, ``"ce_membrane"``, ``"mse_rate"`` with
    ``target_rate``) plus ``spike_l1`` / ``spike_l2`` times the hidden spike-count
    regularisers. The hardware targets build only the mlp with LIF (or IF) neurons fed
    constant currents, and refuse the rest by name.

    Hardware-aware training for small analog boards (docs in :mod:`spikeforge.pruning` and
    :mod:`spikeforge.models`): ``downsample`` average-pools images by k x k blocks before
    the first layer (an input front-end; 28x28 -> 14x14 with 2). ``series`` snaps every
    weight and bias in the forward pass to the magnitudes one resistor of that E-series in
    ``r_range`` (ohms) can realise (straight-through gradient). ``weight_noise`` multiplies
    every weight and bias by ``1 + U(-tol, tol)`` in training (part tolerance, e.g. 0.01);
    ``gain_noise`` every neuron's input current likewise (capacitor tolerance).
    ``max_synapses`` prunes gradually to that many non-zero weights over all layers and
    ``fan_in`` to that many non-zero inputs per neuron, then fine-tunes with the masks
    fixed. ``part_budget`` chooses ``downsample`` and ``hidden`` for a board of that many
    synapse resistors by a short search on a validation split (:mod:`spikeforge.budget`;
    ``dropout`` and ``augment_shift`` left at their defaults are switched off) and sets
    ``max_synapses`` to it; a ``fan_in`` limit is kept as given.
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
    surrogate_slope: float | None = None
    model: str = "mlp"
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 5
    pool: int = 2
    neuron: str = "lif"
    learn_decay: bool = False
    learn_threshold: bool = False
    encoding: str = "constant_current"
    encoding_gain: float = 1.0
    loss: str = "ce_count"
    target_rate: float = 0.8
    spike_l1: float = 0.0
    spike_l2: float = 0.0
    augment_shift: int = 1
    dropout: float = 0.2
    quantize_bits: int | None = None
    init_from: str | None = None
    downsample: int = 1
    series: str | None = None
    r_range: tuple[float, float] = (1e4, 1e6)
    weight_noise: float = 0.0
    gain_noise: float = 0.0
    max_synapses: int | None = None
    fan_in: int | None = None
    part_budget: int | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    eval_batch_size: int = 1000
    out: str | None = None

    def __post_init__(self) -> None:
        if is_event_dataset(self.dataset) and self.encoding == "constant_current":
            # event data is spike input by nature: the default encoding means "as recorded"
            object.__setattr__(self, "encoding", "events")
        object.__setattr__(self, "hidden", parse_hidden(self.hidden))
        object.__setattr__(self, "r_range", parse_r_range(self.r_range))
        object.__setattr__(self, "channels", parse_hidden(self.channels, "channels"))

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is not allowed: it must be "
                                  f"{allowed}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        # choices are looked up in dicts: a list or a table given for a name must be
        # refused by its option's name, not by Python's "unhashable type"
        for name in ("dataset", "lr_schedule", "reset", "surrogate", "model", "neuron",
                     "encoding", "loss"):
            need(isinstance(getattr(self, name), str), name,
                 "a name, one of those `spikeforge train --help` lists")
        for name in ("series", "data_dir", "init_from", "out"):
            need(getattr(self, name) is None or isinstance(getattr(self, name), str), name,
                 "a string, or absent")
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
        need(self.surrogate_slope is None or (is_num(self.surrogate_slope)
                                              and self.surrogate_slope > 0),
             "surrogate_slope", "a number > 0, or absent for the surrogate's default")
        self._check_toolkit(need, is_int, is_num)
        need(is_int(self.augment_shift) and 0 <= self.augment_shift <= 8, "augment_shift",
             "an integer number of pixels in 0..8")
        need(is_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "a number in [0, 1)")
        need(self.quantize_bits is None or (is_int(self.quantize_bits)
                                            and 2 <= self.quantize_bits <= 16),
             "quantize_bits", "an integer number of bits in 2..16, or absent")
        self._check_hardware_aware(need, is_int, is_num)
        # torch seeds are 64-bit: a larger one would fail only once training starts
        need(is_int(self.seed) and -(2**63) <= self.seed < 2**63, "seed",
             "an integer that fits in 64 bits, e.g. 0")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            need(value is None or (is_int(value) and value >= 1), name,
                 "an integer >= 1, or absent for the whole set")
        self.network_spec(1, 2)  # validates the contract fields, naming them

    def _check_toolkit(self, need: Any, is_int: Any, is_num: Any) -> None:
        from spikeforge.encoders import ENCODERS
        from spikeforge.losses import LOSSES
        from spikeforge.neurons.cells import CELLS

        need(self.model in MODELS, "model", f"one of {', '.join(MODELS)}")
        need(self.neuron in CELLS, "neuron", f"one of {', '.join(CELLS)}")
        if is_event_dataset(self.dataset):
            need(self.encoding == "events", "encoding",
                 f"events (or left out) with the event dataset {self.dataset}: its samples "
                 f"are already spike trains")
        else:
            need(self.encoding in ENCODERS, "encoding", f"one of {', '.join(ENCODERS)} "
                 f"(events is for the event datasets: nmnist-synth, nmnist, nmnist-sample)")
        need(is_num(self.encoding_gain) and self.encoding_gain > 0, "encoding_gain",
             "a number > 0 (Poisson firing probability per step at x = 1)")
        need(self.loss in LOSSES, "loss", f"one of {', '.join(LOSSES)}")
        need(is_num(self.target_rate) and 0 < self.target_rate <= 1, "target_rate",
             "a firing rate per step in (0, 1]")
        for name in ("spike_l1", "spike_l2"):
            need(is_num(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "a regulariser weight >= 0 (0 = off)")
        for name in ("learn_decay", "learn_threshold"):
            need(isinstance(getattr(self, name), bool), name, "true or false")
        need(is_int(self.kernel_size) and self.kernel_size >= 1, "kernel_size",
             "an integer >= 1")
        need(is_int(self.pool) and self.pool >= 1, "pool", "an integer >= 1")
        if self.model == "conv":
            need(IMAGE_SHAPES[self.dataset] is not None, "model",
                 f"mlp: {self.dataset} samples are not images, there is nothing to convolve")
            need(self.neuron in ("lif", "if") and not (self.learn_decay or self.learn_threshold),
                 "neuron", "lif or if with model = conv (its layers use the fused LIF loop), "
                 "without learn_decay / learn_threshold")
            for name in ("quantize_bits", "series", "max_synapses", "fan_in", "part_budget"):
                need(getattr(self, name) is None, name,
                     "absent with model = conv: hardware-aware training shapes the fully "
                     "connected networks the targets build, and no target builds a conv net")

    def _check_hardware_aware(self, need: Any, is_int: Any, is_num: Any) -> None:
        shape = IMAGE_SHAPES[self.dataset]
        if shape is None:
            need(self.downsample == 1, "downsample",
                 f"1: {self.dataset} samples are not images, there is nothing to pool")
        else:
            options = ", ".join(map(str, divisors(*shape[-2:])))
            need(is_int(self.downsample) and self.downsample in divisors(*shape[-2:]),
                 "downsample",
                 f"a block size that divides the {shape[-2]}x{shape[-1]} {self.dataset} images: "
                 f"one of {options}")
        need(self.series is None or self.series in E_SERIES, "series",
             f"one of {', '.join(E_SERIES)}, or absent for unsnapped weights")
        need(self.series is None or self.quantize_bits is None, "series",
             "absent when quantize_bits is set (series snaps for the analog target, "
             "quantize_bits rounds for the digital one: choose one)")
        if self.series is not None:
            try:
                n_values = len(series_values(self.series, *self.r_range))
            except SpikeforgeError:
                n_values = 0
            need(n_values >= 2, "r_range",
                 f"a range holding at least two {self.series} values (it holds "
                 f"{n_values}); widen it, e.g. 10k,1M")
        for name in ("weight_noise", "gain_noise"):
            need(is_num(getattr(self, name)) and 0 <= getattr(self, name) <= 0.5, name,
                 "a tolerance in [0, 0.5], e.g. 0.01 for 1 % parts (0 = off)")
        for name in ("max_synapses", "fan_in", "part_budget"):
            value = getattr(self, name)
            need(value is None or (is_int(value) and value >= 1), name,
                 "an integer >= 1, or absent for no limit")
        need(self.part_budget is None or self.max_synapses is None
             or self.max_synapses <= self.part_budget, "max_synapses",
             f"at most part_budget ({self.part_budget}), or absent: part_budget then "
             f"chooses the design and sets max_synapses to the budget")

    @property
    def prunes(self) -> bool:
        """Whether the network carries pruning masks (a synapse or fan-in limit)."""
        return self.max_synapses is not None or self.fan_in is not None

    def network_spec(self, n_inputs: int, n_classes: int) -> NetworkSpec:
        """The hardware contract this config trains, for a dataset's input and class count."""
        try:
            return NetworkSpec(
                layer_sizes=(n_inputs, *self.hidden, n_classes),
                timesteps=self.timesteps,
                # the IF neuron is the contract's LIF without leak
                neuron=NeuronSpec(1.0 if self.neuron == "if" else self.decay, self.threshold,
                                  self.reset, self.refractory),
                encoding=(EncodingSpec("constant_current", self.input_scale)
                          if self.encoding == "constant_current" else EncodingSpec("spikes")),
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
        d["r_range"] = list(self.r_range)
        d["channels"] = list(self.channels)
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


def parse_hidden(value: Any, name: str = "hidden") -> tuple[int, ...]:
    """Hidden widths from ``128``, ``"256,128"``, ``[256, 128]`` or ``()`` (no hidden layer)."""
    items: Any = value
    if isinstance(value, str):
        items = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    try:
        widths = tuple(int(v) for v in items)
        ok = all(w >= 1 for w in widths) and not any(isinstance(v, (bool, float)) for v in items)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        ok = False
    if not ok:
        raise ConfigError(f"{name} = {value!r} is not allowed: it must be layer widths >= 1, "
                          f"e.g. 128 or 256,128")
    return widths


def parse_r_range(value: Any) -> tuple[float, float]:
    """Resistor range in ohms from ``(1e4, 1e6)``, ``[1e4, 1e6]``, ``"10k,1M"`` or
    ``"10k:1M"``."""
    items: Any = value
    if isinstance(value, str):
        items = [v for v in value.replace(" ", "").replace(":", ",").split(",") if v]
    try:
        lo, hi = (parse_value(v) for v in items)
        ok = (not any(isinstance(v, bool) for v in items) and math.isfinite(lo)
              and math.isfinite(hi) and 0 < lo < hi)
    except (TypeError, ValueError, SpikeforgeError):
        ok = False
    if not ok:
        raise ConfigError(f"r_range = {value!r} is not allowed: it must be the smallest and "
                          f"largest resistor in ohms, smallest first, e.g. 10k,1M")
    return float(lo), float(hi)


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
    except RecursionError:
        raise ConfigError(f"config file {path} nests arrays or tables too deeply to be a "
                          f"training config") from None
    except UnicodeDecodeError as e:  # tomllib decodes the bytes itself
        raise ConfigError(f"config file {path} is not UTF-8 text ({e}); TOML files are "
                          f"UTF-8: save it with that encoding") from None
    except OSError as e:  # a folder, no permission, ...
        raise ConfigError(f"config file {path} cannot be read ({e.strerror or e}); give "
                          f"--config a readable TOML file") from None
