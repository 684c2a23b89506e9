"""An independent reader of a spikeforge bundle: DESIGN.md section 1 (and the digital
arithmetic of docs/bundle.md) from spec.json + weights.npz, with NumPy only and no
spikeforge import. Usage: python reader.py BUNDLE_DIR MNIST_DIR -> prints the accuracy."""

import gzip
import json
import sys
from pathlib import Path

import numpy as np


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main(bundle_dir, mnist_dir):
    spec = json.loads((Path(bundle_dir) / "spec.json").read_text())
    arrays = np.load(Path(bundle_dir) / "weights.npz")
    n = spec["accuracy"]["n"]
    x = idx(Path(mnist_dir) / "t10k-images-idx3-ubyte.gz")[:n].reshape(n, -1)
    labels = idx(Path(mnist_dir) / "t10k-labels-idx1-ubyte.gz")[:n]
    neuron, digital = spec["neuron"], spec["digital"]
    x = x.astype(np.float32) * np.float32(1 / 255)  # pixel intensity in [0, 1]
    if digital:  # integer input codes, integer membrane, decay rounded down
        s = np.rint(x.astype(np.float64) * (2 ** digital["input_bits"] - 1))
    else:
        s = x.astype(np.float64) * spec["encoding"]["scale"]
    layers = []
    for i, layer in enumerate(spec["layers"]):
        w = arrays[layer["weights"]].astype(np.float64)
        b = arrays[layer["bias"]].astype(np.float64) if layer["bias"] else 0.0
        theta = digital["thresholds"][i] if digital else neuron["threshold"]
        layers.append((w, b, theta))
    v = [np.zeros((n, w.shape[0])) for w, _, _ in layers]
    refractory = [np.zeros((n, w.shape[0]), int) for w, _, _ in layers]
    counts = 0
    for _ in range(spec["timesteps"]):
        inp = s
        for i, (w, b, theta) in enumerate(layers):
            current = inp @ w.T + b
            active = refractory[i] == 0
            if digital:
                u = np.floor(v[i] * digital["decay_num"] / 2 ** digital["decay_shift"])
            else:
                u = neuron["decay"] * v[i]
            u = u + np.where(active, current, 0.0)
            fired = (u >= theta) & active
            v[i] = np.where(fired, 0.0 if neuron["reset"] == "zero" else u - theta, u)
            refractory[i] = np.where(fired, neuron["refractory"],
                                     np.maximum(refractory[i] - 1, 0))
            inp = fired.astype(np.float64)
        counts = counts + inp
    predictions = counts.argmax(1)  # first maximum: ties go to the lowest index
    return float((predictions == labels).mean())


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
