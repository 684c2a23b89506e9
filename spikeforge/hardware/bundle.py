"""The deployment bundle: what ``spikeforge export`` writes and everything downstream reads.

A folder that a hardware builder, or any independent program, can use without
spikeforge (format in docs/bundle.md)::

    spec.json     the contract (timesteps, neuron, encoding, decoding, layers), the target's
                  section (digital integers / analog values), the accuracy of exactly
                  these weights, and where they came from
    weights.npz   the values the hardware realises: int64 (digital) or float64 (analog)
    csv/          the same matrices as CSV, one file per array
    network.nir   the network as a NIR graph (see spikeforge.hardware.nir_io)
    README.md     the hardware specification in words and figures

A bundle is written into a temporary folder beside its destination and moved into place
when complete, so it is never half-written.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.errors import SpecError, SpikeforgeError
from spikeforge.io import staged_dir
from spikeforge.spec import (
    DecodingSpec,
    DigitalSpec,
    EncodingSpec,
    NetworkSpec,
    NeuronSpec,
)

BUNDLE_FORMAT = "spikeforge-bundle"
BUNDLE_SCHEMA_VERSION = 1
TARGETS = ("digital", "analog")


class BundleError(SpikeforgeError):
    """A bundle folder that is missing files, keys or values, or holds impossible ones."""


@dataclass
class Bundle:
    """A deployment bundle in memory.

    spec:        the contract the hardware runs (``spec.digital`` set on the digital target).
    target:      ``"digital"`` or ``"analog"``.
    weights:     ``(out, in)`` arrays in layer order; int64 (digital) or float64 (analog).
    biases:      per layer, an ``(out,)`` array or ``None``.
    layer_names: e.g. ``["fc1", "fc2"]``; keys in weights.npz are ``<name>.weight/.bias``.
    info:        the rest of spec.json (accuracy, digital/analog sections, provenance).
    """

    spec: NetworkSpec
    target: str
    weights: list[np.ndarray]
    biases: list[np.ndarray | None]
    layer_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its weights.npz key (the target's own arrays last, e.g. the
        analog target's signed resistor values ``<layer>.weight_ohms``)."""
        out = {}
        for name, w, b in zip(self.layer_names, self.weights, self.biases, strict=True):
            out[f"{name}.weight"] = w
            if b is not None:
                out[f"{name}.bias"] = b
        return {**out, **self.extra_arrays}

    def circuit(self) -> Any:
        """The analog target's :class:`~spikeforge.hardware.circuit.AnalogCircuit`."""
        from spikeforge.hardware.circuit import AnalogCircuit

        section = (self.info.get("analog") or {}).get("circuit")
        if self.target != "analog" or not section:
            raise BundleError("this bundle has no analog circuit: export it with `spikeforge "
                              "export RUN --target analog`")
        return AnalogCircuit.from_json(section, self.arrays)

    def to_json(self) -> dict[str, Any]:
        """spec.json as a dict (docs/bundle.md)."""
        spec = self.spec
        layers = [{"name": name, "shape": list(w.shape), "weights": f"{name}.weight",
                   "bias": None if b is None else f"{name}.bias"}
                  for name, w, b in zip(self.layer_names, self.weights, self.biases,
                                        strict=True)]
        digital = None
        if spec.digital is not None:
            d = spec.digital
            digital = {"weight_bits": d.weight_bits, "input_bits": d.input_bits,
                       "decay_num": d.decay_num, "decay_shift": d.decay_shift,
                       "thresholds": list(d.thresholds),
                       **self.info.get("digital", {})}
        return {
            "format": BUNDLE_FORMAT,
            "schema_version": BUNDLE_SCHEMA_VERSION,
            "target": self.target,
            "timesteps": spec.timesteps,
            "neuron": {"decay": spec.neuron.decay, "threshold": spec.neuron.threshold,
                       "reset": spec.neuron.reset, "refractory": spec.neuron.refractory},
            "encoding": {"type": spec.encoding.type, "scale": spec.encoding.scale},
            "decoding": {"type": spec.decoding.type, "tie_break": spec.decoding.tie_break},
            "layers": layers,
            "digital": digital,
            "analog": self.info.get("analog") if self.target == "analog" else None,
            **{k: v for k, v in self.info.items() if k not in ("digital", "analog")},
        }


def _require(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise BundleError(f"{where} must be a JSON object, not {d!r}; re-export the bundle "
                          f"with `spikeforge export`")
    if key not in d:
        raise BundleError(f"{where}: missing key {key!r}; re-export the bundle with "
                          f"`spikeforge export`")
    return d[key]


def _section(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``d[key]``, which must be a JSON object (a spec.json section such as ``neuron``)."""
    value = _require(d, key, where)
    if not isinstance(value, dict):
        raise BundleError(f"{where}: {key!r} must be a JSON object, not {value!r}; re-export "
                          f"the bundle with `spikeforge export`")
    return value


def spec_from_json(d: dict[str, Any], where: str = "spec.json") -> NetworkSpec:
    """The contract described by a spec.json dict (validated, errors name the field)."""
    if d.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: not a spikeforge bundle (format {d.get('format')!r})")
    version = d.get("schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise BundleError(f"{where}: schema_version {version!r} is not supported (this "
                          f"spikeforge reads {BUNDLE_SCHEMA_VERSION}); re-export the bundle "
                          f"with this version")
    target = _require(d, "target", where)
    if target not in TARGETS:
        raise BundleError(f"{where}: target {target!r} is not one of {', '.join(TARGETS)}")
    layers = _require(d, "layers", where)
    if not isinstance(layers, list) or not layers:
        raise BundleError(f"{where}: 'layers' must be a non-empty list")
    shapes = []
    for i, layer in enumerate(layers):
        shape = _require(layer, "shape", f"{where} layers[{i}]")
        if not (isinstance(shape, list) and len(shape) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
            raise BundleError(f"{where}: layers[{i}].shape must be [out, in], two integers "
                              f">= 1, not {shape!r}")
        shapes.append(shape)
    for i in range(1, len(shapes)):
        if shapes[i][1] != shapes[i - 1][0]:
            raise BundleError(f"{where}: layer shapes do not chain: layers[{i - 1}] has "
                              f"{shapes[i - 1][0]} outputs but layers[{i}] takes "
                              f"{shapes[i][1]} inputs")
    digital = _section(d, "digital", where) if target == "digital" else None
    try:
        return NetworkSpec(
            layer_sizes=(shapes[0][1], *(s[0] for s in shapes)),
            timesteps=_require(d, "timesteps", where),
            neuron=NeuronSpec(**_section(d, "neuron", where)),
            encoding=EncodingSpec(**_section(d, "encoding", where)),
            decoding=DecodingSpec(**_section(d, "decoding", where)),
            bias=all(layer.get("bias") for layer in layers),
            digital=None if digital is None else DigitalSpec(
                **{k: digital[k] for k in ("weight_bits", "input_bits", "decay_num",
                                           "decay_shift", "thresholds") if k in digital}),
        )
    except SpecError as e:
        raise BundleError(f"{where}: {e}") from None
    except TypeError as e:
        raise BundleError(f"{where}: unexpected field: {e}") from None


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and check a bundle folder; :class:`BundleError` says what is wrong and where."""
    folder = Path(path)
    spec_path = folder / "spec.json"
    if not spec_path.is_file():
        raise BundleError(f"{folder}: no spec.json; is this a bundle written by "
                          f"`spikeforge export`?")
    try:
        d = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"{spec_path}: not valid JSON ({e}); export the bundle "
                          f"again") from None
    if not isinstance(d, dict):
        raise BundleError(f"{spec_path}: must hold a JSON object")
    spec = spec_from_json(d, str(spec_path))
    npz_path = folder / "weights.npz"
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BundleError(f"{folder}: weights.npz is missing; export the bundle "
                          f"again") from None
    except Exception as e:  # noqa: BLE001 - a damaged zip or array header raises many types
        raise BundleError(f"{npz_path}: cannot be read ({e}); it is damaged: export the "
                          f"bundle again") from None
    weights, biases, names = [], [], []
    named = set()
    for i, layer in enumerate(d["layers"]):
        where = f"{spec_path} layers[{i}]"
        w_key = _require(layer, "weights", where)
        w = _array(arrays, w_key, tuple(layer["shape"]), npz_path)
        b_key = layer.get("bias")
        b = None if not b_key else _array(arrays, b_key, (layer["shape"][0],), npz_path)
        for key, a in ((w_key, w), (b_key, b)):
            if a is not None:
                _check_values(a, key, spec, npz_path)
                named.add(key)
        weights.append(w)
        biases.append(b)
        names.append(str(layer.get("name", f"layer{i + 1}")))
    info = {k: v for k, v in d.items() if k not in (
        "format", "schema_version", "target", "timesteps", "neuron", "encoding", "decoding",
        "layers")}
    if spec.digital is not None:
        info["digital"] = {k: v for k, v in d["digital"].items() if k not in (
            "weight_bits", "input_bits", "decay_num", "decay_shift", "thresholds")}
    extra = {k: a for k, a in arrays.items() if k not in named}
    for key, a in extra.items():
        if np.issubdtype(a.dtype, np.number) and not np.isfinite(a).all():
            raise BundleError(f"{npz_path}: {key!r} holds NaN or infinite values; export the "
                              f"bundle again")
    bundle = Bundle(spec, d["target"], weights, biases, names, info, extra)
    if spec.digital is None and d.get("analog") is not None:
        _check_parts(bundle, spec_path, npz_path)
    return bundle


def _check_parts(bundle: Bundle, spec_path: Path, npz_path: Path) -> None:
    """An analog bundle's circuit must rebuild, with one resistor array per weight array
    and every part a value of its series: resistors the builder cannot buy are refused
    here, not discovered at the soldering iron."""
    from spikeforge.hardware.components import nearest_in_series

    section = bundle.info.get("analog")
    if not isinstance(section, dict):
        raise BundleError(f"{spec_path}: 'analog' must be an object holding the circuit "
                          f"('circuit'); re-export the bundle with `spikeforge export "
                          f"--target analog`")
    if not section.get("circuit"):
        return  # weights only: nothing to build from
    try:
        circuit = bundle.circuit()
    except SpikeforgeError as e:  # AnalogError, or an unknown series in its options
        raise BundleError(f"{spec_path}: {e}") from None
    if len(circuit.layers) != len(bundle.weights):
        raise BundleError(f"{spec_path}: analog.circuit has {len(circuit.layers)} layers but "
                          f"'layers' has {len(bundle.weights)}; re-export the bundle")
    o = circuit.options
    for layer, w, b in zip(circuit.layers, bundle.weights, bundle.biases, strict=True):
        for kind, ohms, values in (("weight", layer.resistance, w),
                                   ("bias", layer.bias_resistance, b)):
            key = f"{layer.name}.{kind}_ohms"
            if ohms is None and values is None:
                continue
            if ohms is None or values is None or ohms.shape != values.shape:
                raise BundleError(f"{npz_path}: {key!r} must hold one resistor per {kind} of "
                                  f"layer {layer.name} as {spec_path.name} describes it "
                                  f"(shape {None if values is None else values.shape}), not "
                                  f"{None if ohms is None else ohms.shape}; one of the two "
                                  f"files is damaged: re-export the bundle")
            parts = ohms[ohms > 0]  # 0: no part
            if not parts.size:
                continue
            off = ((parts < o.r_min * (1 - 1e-9)) | (parts > o.r_max * (1 + 1e-9))
                   | ~np.isclose(nearest_in_series(parts, o.series), parts, rtol=1e-9,
                                 atol=0))
            if off.any():
                raise BundleError(
                    f"{npz_path}: {key!r} holds {int(off.sum())} resistor(s) that are not "
                    f"{o.series} values in {o.r_min:g}..{o.r_max:g} Ω, the parts "
                    f"{spec_path.name}'s analog circuit allows (e.g. "
                    f"{float(parts[off][0]):g} Ω): no part builds them. Re-export the bundle "
                    f"with `spikeforge export --target analog` (--series, --r-range choose "
                    f"the parts)")


def _array(arrays: dict[str, np.ndarray], key: Any, shape: tuple[int, ...],
           npz_path: Path) -> np.ndarray:
    if not isinstance(key, str) or key not in arrays:
        raise BundleError(f"{npz_path}: no array {key!r} (spec.json names it)")
    a = arrays[key]
    if a.shape != shape:
        raise BundleError(f"{npz_path}: {key!r} has shape {a.shape}, spec.json says {shape}")
    return a


def _check_values(a: np.ndarray, key: str, spec: NetworkSpec, npz_path: Path) -> None:
    if spec.digital is not None:
        if not np.issubdtype(a.dtype, np.integer):
            raise BundleError(f"{npz_path}: {key!r} must hold integers on the digital target, "
                              f"not {a.dtype}")
        if key.endswith(".weight") and a.size and np.abs(a).max() > spec.digital.weight_max:
            raise BundleError(f"{npz_path}: {key!r} has a weight of magnitude "
                              f"{int(np.abs(a).max())}, more than {spec.digital.weight_bits}-bit "
                              f"weights hold ({spec.digital.weight_max})")
        return
    if not np.issubdtype(a.dtype, np.floating):
        raise BundleError(f"{npz_path}: {key!r} must hold floats, not {a.dtype}")
    if not np.isfinite(a).all():
        raise BundleError(f"{npz_path}: {key!r} holds NaN or infinite values; the run that "
                          f"produced it diverged: retrain and export again")


# ------------------------------------------------------------------------------- writing


def _csv(a: np.ndarray) -> str:
    buf = io.StringIO()
    np.savetxt(buf, np.atleast_2d(a), fmt="%d" if np.issubdtype(a.dtype, np.integer)
               else "%.17g", delimiter=",")
    return buf.getvalue()


def write_bundle(bundle: Bundle, out: str | os.PathLike, readme: str, nir_graph: Any = None,
                 force: bool = False, files: dict[str, str] | None = None) -> Path:
    """Write ``bundle`` to the folder ``out`` atomically (temporary folder, then rename).

    ``files``: further text files by name (the analog target's bom.csv and placement.csv).
    An existing folder is replaced only with ``force``.
    """
    import nir

    out = Path(out)
    if out.exists() and not force:
        raise BundleError(f"{out} exists; pass --force to replace it, or choose another --out")
    with staged_dir(out) as tmp:
        (tmp / "spec.json").write_text(json.dumps(bundle.to_json(), indent=2) + "\n")
        np.savez(tmp / "weights.npz", **bundle.arrays)
        (tmp / "csv").mkdir()
        for key, a in bundle.arrays.items():
            (tmp / "csv" / f"{key}.csv").write_text(_csv(a))
        if nir_graph is not None:
            nir.write(tmp / "network.nir", nir_graph)
        (tmp / "README.md").write_text(readme)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
    return out


# ----------------------------------------------------------------------- part counts


def part_counts(bundle: Bundle) -> dict[str, int]:
    """What the hardware needs: neurons, synapses (non-zero weights), bias sources and,
    on the digital target, weight memory bits."""
    synapses = int(sum(np.count_nonzero(w) for w in bundle.weights))
    counts = {
        "neurons": int(sum(w.shape[0] for w in bundle.weights)),
        "inputs": int(bundle.weights[0].shape[1]),
        "weights": int(sum(w.size for w in bundle.weights)),
        "nonzero_synapses": synapses,
        "bias_sources": int(sum(np.count_nonzero(b) for b in bundle.biases if b is not None)),
    }
    if bundle.spec.digital is not None:
        counts["weight_memory_bits"] = counts["weights"] * bundle.spec.digital.weight_bits
    return counts

