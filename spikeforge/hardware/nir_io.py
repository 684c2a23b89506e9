"""NIR interchange (Neuromorphic Intermediate Representation, package ``nir``).

A bundle becomes ``Input -> [Affine -> LIF] x L -> Output``. NIR's LIF is a continuous-time
neuron, ``tau · dv/dt = (v_leak - v) + r · I``, spiking when ``v > v_threshold`` and
resetting to ``v_reset``; the contract is discrete, ``V = decay · V + I``, spiking when
``V >= threshold``. The importers that exist (snnTorch, Norse) integrate NIR's equation with
forward Euler, ``v += dt/tau · (r·I - v)``, and snnTorch always uses ``dt = 1e-4``. So the
graph is written for that reading, which then reproduces the contract's decay and input
gain exactly::

    dt = 1e-4 s,   tau = dt / (1 - decay),   r = 1,   v_leak = 0,   v_reset = 0,
    v_threshold = (1 - decay) · threshold      (v = (1 - decay) · V)

Affine weights and biases are in model units (digital bundles: integer values times their
scale), and the graph's input is the held current ``scale · x``. What NIR cannot say goes
into the graph's metadata: ``dt``, the discretisation, the reset mode (NIR's LIF has no
reset by subtraction), the firing comparison (``>=``), and ``tau_exact = -dt / ln(decay)``
for simulators that integrate exactly. What still differs from the contract: importers fire
on ``v > threshold`` (differs only when ``V`` equals the threshold exactly), both importers
reset LIF nodes to ``v_reset`` (a "subtract" network runs with reset to zero), neither has
a refractory period, floating-point rounding of ``v`` is not the same, and a digital
bundle's rounding down in the decay is not expressible.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from spikeforge.hardware.bundle import Bundle

NIR_DT = 1e-4  # seconds per clock; snnTorch's NIR importer assumes exactly this value


def model_units(bundle: Bundle) -> tuple[list[np.ndarray], list[np.ndarray | None],
                                         list[float]]:
    """Weights, biases and per-layer thresholds in model units (float64)."""
    spec = bundle.spec
    if spec.digital is None:
        thresholds = [spec.neuron.threshold] * len(bundle.weights)
        return ([np.asarray(w, np.float64) for w in bundle.weights],
                [None if b is None else np.asarray(b, np.float64) for b in bundle.biases],
                thresholds)
    layers = bundle.info["digital"]["layers"]
    weights, biases, thresholds = [], [], []
    for layer, (w, b) in enumerate(zip(bundle.weights, bundle.biases, strict=True)):
        scale, quantum = layers[layer]["weight_scale"], layers[layer]["current_quantum"]
        weights.append(w * scale)
        biases.append(None if b is None else b * quantum)
        thresholds.append(spec.digital.thresholds[layer] * quantum)
    return weights, biases, thresholds


def to_nir(bundle: Bundle) -> Any:
    """The bundle's network as a ``nir.NIRGraph`` (module docstring for the mapping)."""
    import nir

    spec = bundle.spec
    decay = spec.neuron.decay
    leak = 1.0 - decay
    tau = NIR_DT / leak if leak > 0 else 1e9  # decay 1: a plain integrator
    weights, biases, thresholds = model_units(bundle)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([weights[0].shape[1]]))}
    edges = []
    previous = "input"
    for name, w, b, threshold in zip(bundle.layer_names, weights, biases, thresholds,
                                     strict=True):
        n = w.shape[0]
        bias = np.zeros(n) if b is None else b
        nodes[name] = nir.Affine(weight=w.astype(np.float32), bias=bias.astype(np.float32))
        nodes[f"{name}_lif"] = nir.LIF(
            tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n),
            v_threshold=np.full(n, threshold * leak if leak > 0 else threshold),
            v_reset=np.zeros(n))
        edges += [(previous, name), (name, f"{name}_lif")]
        previous = f"{name}_lif"
    nodes["output"] = nir.Output(output_type=np.array([weights[-1].shape[0]]))
    edges.append((previous, "output"))
    metadata = {
        "dt": NIR_DT,
        "discretisation": "forward Euler: v += dt/tau * (r*I - v), one step per clock",
        "timesteps": spec.timesteps,
        "decay": decay,
        "tau_exact": -NIR_DT / math.log(decay) if decay < 1 else float("inf"),
        "reset": spec.neuron.reset,
        "refractory": spec.neuron.refractory,
        "fires_when": "V >= threshold",
        "input": f"held current {spec.encoding.scale} * x per clock, x in [0, 1]"
                 if spec.encoding.type == "constant_current" else "spikes (0/1) per clock",
        "decoding": "argmax of output spike counts, ties to the lowest index",
        "target": bundle.target,
        "source": "spikeforge",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def differences(bundle: Bundle) -> list[str]:
    """What the NIR importers run differently from this bundle's contract."""
    spec = bundle.spec
    out = ["importers fire on v > threshold, the contract on V >= threshold (differs only "
           "when V equals the threshold exactly)",
           "importers compute in float32 with v scaled by (1 - decay); rounding differs"]
    if spec.neuron.reset == "subtract":
        out.append("reset by subtraction: NIR's LIF resets to v_reset, so importers reset to "
                   "zero")
    if spec.neuron.refractory:
        out.append(f"refractory period of {spec.neuron.refractory} clocks: NIR's LIF has none")
    if spec.digital is not None:
        out.append("digital: the membrane decay's rounding down (arithmetic shift) is not "
                   "expressible; importers decay exactly")
    return out


def _step_inputs(bundle: Bundle, x: np.ndarray) -> list[Any]:
    """The input of every time step for a batch of samples: the held current
    ``scale · x`` each step, or step ``t`` of event samples ``(n, T, features)``."""
    import torch

    if bundle.spec.encoding.type == "spikes":
        spikes = torch.as_tensor(np.asarray(x, np.float32))
        return [spikes[:, t] for t in range(bundle.spec.timesteps)]
    held = torch.as_tensor(np.asarray(x, np.float32) * bundle.spec.encoding.scale)
    return [held] * bundle.spec.timesteps


def run_snntorch(graph: Any, bundle: Bundle, x: np.ndarray, batch_size: int = 500
                 ) -> np.ndarray:
    """Output spike counts of ``snntorch.import_from_nir(graph)`` on inputs ``x``
    (``(n, features)`` held, or event samples ``(n, T, features)``)."""
    import contextlib
    import io

    import snntorch as snn
    import torch
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the importer's own notices
        net = import_from_nir(graph)
    leaky = [m for m in net.modules() if isinstance(m, snn.Leaky)]
    counts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            for m in leaky:
                m.mem = torch.zeros(())
            total = 0
            for s_t in _step_inputs(bundle, x[start:start + batch_size]):
                out, _ = net(s_t)
                total = total + out
            counts.append(total.numpy())
    return np.concatenate(counts)


def run_norse(graph: Any, bundle: Bundle, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Output spike counts of ``norse.torch.from_nir(graph, dt=1e-4)`` on inputs ``x``.
    (Norse builds NIR LIF nodes with reset to ``v_reset``, ignoring ``r``, which is 1 here.)"""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Norse's torch.jit, nirtorch
        import norse.torch as norse

        net = norse.from_nir(graph, dt=NIR_DT, ignore_warnings=True)
    counts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            state = None
            total = 0
            for s_t in _step_inputs(bundle, x[start:start + batch_size]):
                out, state = net(s_t, state)
                total = total + out
            counts.append(total.numpy())
    return np.concatenate(counts)
