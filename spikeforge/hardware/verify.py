"""``spikeforge verify``: prove that a bundle means the same thing everywhere.

1. The NumPy twin against a PyTorch execution of the same bundle, every spike of every
   layer, input by input. Analog (float) bundles run in the trainer's own model
   (:class:`~spikeforge.models.SpikingNet`, float64); digital bundles run the contract's
   definition (:func:`spikeforge.spec.reference_forward`) on torch tensors holding the
   integers, since the trainer's float model has no integer arithmetic.
2. ``network.nir`` read back with ``nir.read`` and run by snnTorch's and Norse's importers:
   agreement of their predictions with the twin's (see spikeforge.hardware.nir_io for what
   NIR cannot express).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.hardware.bundle import Bundle, load_bundle
from spikeforge.hardware.simulate import encode_inputs, run_twin, score, twin_inputs
from spikeforge.spec import decode, reference_forward


def torch_spikes(bundle: Bundle, x: np.ndarray, batch_size: int = 2000) -> list[np.ndarray]:
    """Every layer's spikes ``(T, n, out)`` computed by PyTorch (module docstring)."""
    from spikeforge.models import SpikingNet

    spec = bundle.spec
    per_batch = []
    with torch.no_grad():
        if spec.digital is None:
            model = SpikingNet(spec).double()
            for layer, w, b in zip(model.layers, bundle.weights, bundle.biases, strict=True):
                layer.weight.copy_(torch.from_numpy(w))
                if b is not None:
                    layer.bias.copy_(torch.from_numpy(b))
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.asarray(x[start:start + batch_size], np.float64))
                if xb.dim() == 3:  # event samples (n, T, features) -> spikes (T, n, features)
                    xb = xb.transpose(0, 1)
                per_batch.append([s.bool().numpy() for s in model(xb, record=True).spikes])
        else:
            weights = [torch.from_numpy(w.astype(np.float64)) for w in bundle.weights]
            biases = [None if b is None else torch.from_numpy(b.astype(np.float64))
                      for b in bundle.biases]
            for start in range(0, len(x), batch_size):
                codes = torch.from_numpy(np.asarray(encode_inputs(  # spikes: 0/1 as numbers
                    spec, twin_inputs(spec, x[start:start + batch_size])), np.float64))
                steps = reference_forward(weights, biases, codes, spec)
                per_batch.append([torch.stack(layer).numpy() for layer in steps])
    return [np.concatenate([b[i] for b in per_batch], axis=1) for i in range(len(bundle.weights))]


def verify(path: str | os.PathLike, n_inputs: int | None = None, nir_inputs: int = 1000,
           data_dir: str | None = None) -> dict[str, Any]:
    """Run all checks on a bundle folder; returns a report (``ok`` is the verdict)."""
    from spikeforge.hardware.export import bundle_dataset

    if nir_inputs < 1:
        raise SpikeforgeError(f"--nir-inputs {nir_inputs}: compare at least 1 input through "
                              f"the NIR imports")
    bundle = load_bundle(path)
    data = bundle_dataset(bundle, data_dir=data_dir, limit=n_inputs)
    dataset = data.name
    x = data.test_x
    twin = run_twin(bundle.spec, bundle.weights, bundle.biases, twin_inputs(bundle.spec, x),
                    record=True)
    reference = torch_spikes(bundle, x)
    same = np.ones(len(x), dtype=bool)
    layers = []
    for name, a, b in zip(bundle.layer_names, twin.spikes, reference, strict=True):
        layer_same = (a == b).all(axis=(0, 2))
        same &= layer_same
        layers.append({"layer": name, "identical_inputs": int(layer_same.sum())})
    torch_predictions = decode(reference[-1].sum(0))
    report: dict[str, Any] = {
        "bundle": str(path), "target": bundle.target, "dataset": dataset, "n": len(x),
        "torch_side": "SpikingNet (float64)" if bundle.spec.digital is None
        else "spec.reference_forward on torch integers",
        "identical_spike_trains": int(same.sum()),
        "identical_predictions": int((torch_predictions == twin.predictions).sum()),
        "layers": layers,
        "twin_accuracy": score(twin, data.test_y[:len(x)])["accuracy"],
    }
    report["nir"] = _verify_nir(Path(path), bundle, x[:nir_inputs], twin.predictions[:nir_inputs])
    exact = report["identical_spike_trains"] == report["n"]
    report["ok"] = exact or bundle.target != "digital"
    return report


def _verify_nir(folder: Path, bundle: Bundle, x: np.ndarray,
                twin_predictions: np.ndarray) -> dict[str, Any]:
    import nir

    from spikeforge.hardware import nir_io

    nir_path = folder / "network.nir"
    if not nir_path.exists():
        return {"read": False, "error": "network.nir is missing"}
    graph = nir.read(nir_path)
    result: dict[str, Any] = {"read": True, "n": len(x), "metadata": {
        k: (v.item() if hasattr(v, "item") else v) for k, v in graph.metadata.items()},
        "differences": nir_io.differences(bundle)}
    for name, runner in (("snntorch", nir_io.run_snntorch), ("norse", nir_io.run_norse)):
        try:  # a fresh read each: snnTorch's importer rewrites the graph it is given
            counts = runner(nir.read(nir_path), bundle, x)
        except ImportError as e:
            result[name] = {"error": f"not installed ({e.name})"}
            continue
        agree = decode(counts) == twin_predictions
        result[name] = {"agreement": float(agree.mean()), "agreeing": int(agree.sum())}
    return result
