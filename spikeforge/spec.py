"""The hardware contract: the one definition of what a spikeforge network computes.

The trainer, the hardware twin, every exporter and every test use this module; nothing
else restates the equations. Clocked, discrete-time leaky integrate-and-fire, per layer
``l`` and time step ``t = 1..T``::

    I_l[t] = W_l · s_{l-1}[t] + b_l            (s_0[t] = encoded input)
    U_l[t] = decay · V_l[t-1] + I_l[t]         (V_l[0] = 0; U is the membrane before reset)
    s_l[t] = 1 if U_l[t] >= threshold else 0
    reset  "zero":     V_l[t] = 0                  where s_l[t] = 1, else V_l[t] = U_l[t]
           "subtract": V_l[t] = U_l[t] - threshold where s_l[t] = 1, else V_l[t] = U_l[t]
    refractory r >= 0: for the r steps after a spike the neuron ignores its input
                       (I counts as 0, the membrane only leaks) and cannot spike
    prediction = argmax_k sum_t s_L[t]_k; ties go to the lowest index (a priority encoder)

Encoding ``constant_current`` applies ``s_0[t] = scale · x`` with ``x`` in [0, 1] on every
step (a pixel as a held current); ``spikes`` feeds binary spike lines (e.g. binned events).

The digital target runs the same equations in integers (:class:`DigitalSpec`): integer
weights, biases and per-layer thresholds, the input as an integer code, and the decay as
a fixed-point multiply rounded down, ``floor(V · decay_num / 2^decay_shift)`` (an
arithmetic right shift). Its ``decay`` is exactly ``decay_num / 2^decay_shift``.

The executable definition is :func:`lif_step` with :func:`reference_forward` and
:func:`decode`: written with array operators only, so they run on NumPy arrays and torch
tensors alike. They are deliberately plain (a Python loop over time); fast implementations
live elsewhere and are tested against them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from spikeforge.errors import SpecError

#: Version of the serialised spec (``spec.json`` in bundles, ``spec`` in checkpoints).
SCHEMA_VERSION = 1

RESET_MODES = ("zero", "subtract")
ENCODINGS = ("constant_current", "spikes")
DECODINGS = ("spike_count",)
TIE_BREAKS = ("lowest_index",)


def _check(ok: bool, field_name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpecError(f"{field_name} = {value!r} is not allowed: it must be {allowed}")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class NeuronSpec:
    """LIF constants shared by every neuron of the network.

    decay:      membrane retention per clock, in (0, 1]; ``exp(-dt / (R_m C_m))`` on a board.
    threshold:  firing threshold, > 0, in model units of current.
    reset:      ``"zero"`` or ``"subtract"``.
    refractory: clocks after a spike during which input is ignored, >= 0.
    """

    decay: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"
    refractory: int = 0

    def __post_init__(self) -> None:
        _check(_finite(self.decay) and 0.0 < self.decay <= 1.0, "neuron.decay", self.decay,
               "a number in (0, 1] (1 = no leak)")
        _check(_finite(self.threshold) and self.threshold > 0, "neuron.threshold",
               self.threshold, "a number > 0")
        _check(self.reset in RESET_MODES, "neuron.reset", self.reset,
               f"one of {', '.join(RESET_MODES)}")
        _check(isinstance(self.refractory, int) and not isinstance(self.refractory, bool)
               and self.refractory >= 0, "neuron.refractory", self.refractory,
               "an integer number of steps >= 0")


@dataclass(frozen=True)
class EncodingSpec:
    """How an input sample becomes the first layer's input ``s_0[t]``.

    type:  ``"constant_current"`` (``s_0[t] = scale · x`` every step, x in [0, 1]) or
           ``"spikes"`` (binary spike lines, e.g. binned camera events).
    scale: input current per unit of ``x`` (constant current only).
    """

    type: str = "constant_current"
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check(self.type in ENCODINGS, "encoding.type", self.type,
               f"one of {', '.join(ENCODINGS)}")
        _check(_finite(self.scale) and self.scale > 0, "encoding.scale", self.scale,
               "a number > 0")


@dataclass(frozen=True)
class DecodingSpec:
    """How output spikes become a class: spike counts, ties to the lowest index."""

    type: str = "spike_count"
    tie_break: str = "lowest_index"

    def __post_init__(self) -> None:
        _check(self.type in DECODINGS, "decoding.type", self.type,
               f"one of {', '.join(DECODINGS)}")
        _check(self.tie_break in TIE_BREAKS, "decoding.tie_break", self.tie_break,
               f"one of {', '.join(TIE_BREAKS)}")


@dataclass(frozen=True)
class DigitalSpec:
    """Integer arithmetic of the digital target.

    weight_bits: signed weight width k: weights in ``[-(2^(k-1) - 1), 2^(k-1) - 1]``.
    input_bits:  a constant-current input ``x`` in [0, 1] enters as the integer code
                 ``round(x · (2^input_bits - 1))``; spike inputs enter as 0/1.
    decay_num, decay_shift: the decay is ``decay_num / 2^decay_shift``; the membrane
                 decays as ``floor(V · decay_num / 2^decay_shift)``.
    thresholds:  the integer threshold of each layer (each layer has its own current unit).
    """

    weight_bits: int = 8
    input_bits: int = 8
    decay_num: int = 230
    decay_shift: int = 8
    thresholds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(self.thresholds))

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        _check(is_int(self.weight_bits) and 2 <= self.weight_bits <= 32, "digital.weight_bits",
               self.weight_bits, "an integer in 2..32")
        _check(is_int(self.input_bits) and 1 <= self.input_bits <= 16, "digital.input_bits",
               self.input_bits, "an integer in 1..16")
        _check(is_int(self.decay_shift) and 0 <= self.decay_shift <= 24, "digital.decay_shift",
               self.decay_shift, "an integer in 0..24")
        _check(is_int(self.decay_num) and 0 < self.decay_num <= 2**self.decay_shift,
               "digital.decay_num", self.decay_num, f"an integer in 1..2^decay_shift "
               f"(= {2**self.decay_shift})")
        for i, t in enumerate(self.thresholds):
            _check(is_int(t) and t >= 1, f"digital.thresholds[{i}]", t, "an integer >= 1")

    @property
    def decay(self) -> float:
        return self.decay_num / 2**self.decay_shift

    @property
    def weight_max(self) -> int:
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def input_max(self) -> int:
        return 2**self.input_bits - 1


@dataclass(frozen=True)
class NetworkSpec:
    """A feed-forward stack of fully connected LIF layers and its time base.

    layer_sizes: neurons per layer, input first, e.g. ``(784, 128, 10)``.
    timesteps:   clocks per inference, T >= 1.
    bias:        whether every layer has a bias current ``b_l``.
    """

    layer_sizes: tuple[int, ...] = (784, 128, 10)
    timesteps: int = 25
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    decoding: DecodingSpec = field(default_factory=DecodingSpec)
    bias: bool = True
    digital: DigitalSpec | None = None

    def __post_init__(self) -> None:
        sizes = tuple(self.layer_sizes)
        object.__setattr__(self, "layer_sizes", sizes)
        _check(len(sizes) >= 2, "layer_sizes", sizes, "at least (inputs, outputs)")
        for i, n in enumerate(sizes):
            _check(isinstance(n, int) and not isinstance(n, bool) and n >= 1,
                   f"layer_sizes[{i}]", n, "an integer >= 1")
        _check(isinstance(self.timesteps, int) and not isinstance(self.timesteps, bool)
               and self.timesteps >= 1, "timesteps", self.timesteps, "an integer >= 1")
        if self.digital is not None:
            _check(len(self.digital.thresholds) == len(sizes) - 1, "digital.thresholds",
                   self.digital.thresholds, f"one integer per layer ({len(sizes) - 1})")
            _check(self.neuron.decay == self.digital.decay, "neuron.decay", self.neuron.decay,
                   f"decay_num / 2^decay_shift = {self.digital.decay} on the digital target")

    @property
    def n_layers(self) -> int:
        """Number of weight layers (LIF layers)."""
        return len(self.layer_sizes) - 1

    @property
    def weight_shapes(self) -> list[tuple[int, int]]:
        """Shape ``(out, in)`` of every weight matrix, in order."""
        sizes = self.layer_sizes
        return [(o, i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_sizes"] = list(self.layer_sizes)
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkSpec:
        """Rebuild a spec from :meth:`to_dict` output, with errors that name the field."""
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SpecError(f"spec schema_version {version!r} is not supported: this spikeforge "
                            f"reads version {SCHEMA_VERSION}; re-export with this version")
        try:
            return cls(
                layer_sizes=tuple(d.pop("layer_sizes")),
                timesteps=d.pop("timesteps"),
                neuron=NeuronSpec(**d.pop("neuron", {})),
                encoding=EncodingSpec(**d.pop("encoding", {})),
                decoding=DecodingSpec(**d.pop("decoding", {})),
                bias=bool(d.pop("bias", True)),
                digital=DigitalSpec(**digital) if (digital := d.pop("digital", None)) else None,
            )
        except KeyError as e:
            raise SpecError(f"spec is missing the field {e.args[0]!r}") from None
        except TypeError as e:  # unknown keyword inside neuron/encoding/decoding
            raise SpecError(f"spec has an unknown field: {e}") from None


class LIFState(NamedTuple):
    """State of one LIF layer between clocks: membrane ``v`` and refractory steps left."""

    v: Any
    refractory_left: Any


def lif_step(state: LIFState, current: Any, neuron: NeuronSpec,
             digital: tuple[DigitalSpec, int] | None = None) -> tuple[Any, LIFState]:
    """One clock of one LIF layer, exactly as the contract defines it.

    ``current`` is ``I[t]``; returns ``(spikes, new_state)`` with boolean spikes::

        active = refractory_left == 0
        U      = decay · V + I · active
        s      = (U >= threshold) and active
        V'     = U · (1 - s)            (reset "zero")
               = U - threshold · s      (reset "subtract")
        refractory_left' = r where s, else max(refractory_left - 1, 0)

    With ``digital = (DigitalSpec, layer)`` the arithmetic is the digital target's: the
    layer's integer threshold, and ``decay · V`` becomes
    ``floor(V · decay_num / 2^decay_shift)`` (``//`` floors on NumPy and torch alike).
    """
    v, refr = state
    active = refr <= 0
    if digital is None:
        threshold = neuron.threshold
        u = neuron.decay * v + current * active
    else:
        spec, layer = digital
        threshold = spec.thresholds[layer]
        u = (v * spec.decay_num) // 2**spec.decay_shift + current * active
    spikes = (u >= threshold) & active
    v_new = u * ~spikes if neuron.reset == "zero" else u - threshold * spikes
    refr_new = (refr - 1) * (refr > 0) * ~spikes + neuron.refractory * spikes
    return spikes, LIFState(v_new, refr_new)


def _as_numbers(spikes: Any, like: Any) -> Any:
    """Boolean spikes as 0/1 in ``like``'s dtype (NumPy arrays and torch tensors)."""
    return spikes.astype(like.dtype) if hasattr(spikes, "astype") else spikes.to(like.dtype)


def reference_forward(weights: Sequence[Any], biases: Sequence[Any | None], inputs: Any,
                      spec: NetworkSpec) -> list[list[Any]]:
    """Run the whole network step by step; the slow, obviously correct definition.

    ``weights[l]`` has shape ``(out, in)``; ``inputs`` is ``s_0``: shape ``(batch, in)`` for
    a constant current (already scaled; integer codes on the digital target) or
    ``(T, batch, in)`` for spike input. Returns the boolean spikes of every layer at every
    step: ``result[l][t]`` of shape ``(batch, out)``. A spec with ``digital`` set runs the
    digital target's integer arithmetic (pass integer-valued arrays).
    """
    first = inputs if inputs.ndim == 2 else inputs[0]
    zeros = [first[:, :1] * 0 + w[:, 0] * 0 for w in weights]  # (batch, out), of the input's kind
    states = [LIFState(z, (z != z) * 0) for z in zeros]  # integer refractory counters, all 0
    spikes: list[list[Any]] = [[] for _ in weights]
    for t in range(spec.timesteps):
        s = inputs if inputs.ndim == 2 else inputs[t]
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            current = s @ w.T
            if b is not None:
                current = current + b
            digital = None if spec.digital is None else (spec.digital, layer)
            s, states[layer] = lif_step(states[layer], current, spec.neuron, digital)
            spikes[layer].append(s)
            s = _as_numbers(s, like=w)  # spikes enter the next layer as 0/1 numbers
    return spikes


def decode(counts: Any) -> Any:
    """Class per sample from output spike counts ``(..., classes)``: the argmax, ties to the
    lowest index (what a priority encoder on the hardware does). NumPy's and PyTorch's argmax
    both return the first maximal index, which is exactly this rule."""
    return counts.argmax(-1)
