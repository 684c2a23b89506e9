"""Training throughput: spikeforge against snnTorch and a plain PyTorch loop, in one run.

The reference network (784-128-10 LIF, decay 0.9, threshold 1, reset to zero, T = 25,
constant-current input, fast-sigmoid surrogate, cross-entropy on spike counts, Adam) is
trained for the same MNIST batches, from the same initial weights, by

- ``spikeforge``: :class:`spikeforge.models.SpikingNet` (W·x once per sample, fused LIF loop,
  the readout as one node: ``lif_readout``);
- ``layer_by_layer``: the same model called with ``record=True``, which runs every layer
  through its own fused LIF loop and autograd's matrix products (what ``spikeforge`` did
  before ``lif_readout``);
- ``plain_loop``: the same layer-by-layer schedule with the plain autograd LIF loop
  (:func:`spikeforge.neurons.lif_sequence_unfused`);
- ``snntorch``: ``snn.Leaky(reset_mechanism="zero")`` written as snnTorch's tutorials do
  (every layer evaluated at every time step).

Each trains one full epoch (two untimed warm-up batches, then 468 timed batches of 128)
from the same initial weights on the same batches; the three take turns of half a second
each, so that a busy spell of the machine slows all of them alike. Then each is scored on
the 10,000 test images (argmax of output spike counts, ties to the lowest index). The JSON
line reports samples/s, the ratios and each method's test accuracy after that one epoch.
Run::

    python benchmarks/train_throughput.py            # needs `pip install -e ".[bench]"`
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.data import load_dataset
from spikeforge.models import SpikingNet, SpikingOutput
from spikeforge.neurons import lif_sequence_unfused
from spikeforge.spec import NetworkSpec, decode
from spikeforge.surrogates import FastSigmoid
from spikeforge.train import keep_freed_memory

SLOPE = 2.0


class PlainLoopNet(nn.Module):
    """Same layers as SpikingNet, LIF as a step-by-step autograd loop."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        sizes = spec.layer_sizes
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                     strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x
        for layer in self.layers:
            current = layer(s) if s.dim() == 2 else layer(s.flatten(0, 1)).unflatten(0, s.shape[:2])
            s = lif_sequence_unfused(current, self.spec.neuron, self.spec.timesteps,
                                     FastSigmoid(SLOPE))
        return s.sum(0)


def snntorch_net(spec: NetworkSpec) -> nn.Module:
    import snntorch as snn
    from snntorch import surrogate

    class SnnTorchNet(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = spec.layer_sizes
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                         strict=True))
            self.lifs = nn.ModuleList(
                snn.Leaky(beta=spec.neuron.decay, threshold=spec.neuron.threshold,
                          reset_mechanism="zero", spike_grad=surrogate.fast_sigmoid(slope=SLOPE))
                for _ in self.layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mems = [lif.init_leaky() for lif in self.lifs]
            counts = 0
            for _ in range(spec.timesteps):
                s = x
                for i, (layer, lif) in enumerate(zip(self.layers, self.lifs, strict=True)):
                    s, mems[i] = lif(layer(s), mems[i])
                counts = counts + s
            return counts

    return SnnTorchNet()


@torch.no_grad()
def test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of test images whose output spike counts' argmax (ties low) is the label."""
    model.eval()
    correct = 0
    for start in range(0, len(x), 1000):
        out = model(x[start:start + 1000])
        counts = out.counts if isinstance(out, SpikingOutput) else out
        correct += int((decode(counts) == y[start:start + 1000]).sum())
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=0,
                        help="timed batches per method (default 0: one epoch)")
    parser.add_argument("--turn", type=float, default=0.5,
                        help="seconds each method trains per turn before the next takes over")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # what `spikeforge train` does; it helps every method alike

    data = load_dataset("mnist", args.data_dir, progress=False)
    x = torch.from_numpy(data.train_x)
    y = torch.from_numpy(data.train_y)
    batches = args.batches or len(x) // args.batch_size
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    spec = NetworkSpec()

    torch.manual_seed(0)
    reference = SpikingNet(spec, FastSigmoid(SLOPE))
    factories = {"spikeforge": lambda: SpikingNet(spec, FastSigmoid(SLOPE)),
                 "layer_by_layer": lambda: SpikingNet(spec, FastSigmoid(SLOPE)),
                 "plain_loop": lambda: PlainLoopNet(spec),
                 "snntorch": lambda: snntorch_net(spec)}
    methods = {}
    for name, make in factories.items():
        if name in args.skip:
            continue
        model = make()
        for mine, ref in zip(model.layers, reference.layers, strict=True):  # identical init
            mine.load_state_dict(ref.state_dict())
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, fused=True)
        methods[name] = {"model": model, "opt": optimizer, "seconds": 0.0, "loss": 0.0, "next": 0,
                         "record": name == "layer_by_layer"}

    def run(m: dict, n: int) -> None:
        for _ in range(n):
            i = m["next"] % (len(x) // args.batch_size)
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            m["next"] += 1
            # as `spikeforge train` calls it when the loss reads spike counts
            out = (m["model"](x[idx], record=m["record"], membrane=False)
                   if isinstance(m["model"], SpikingNet) else m["model"](x[idx]))
            counts = out.counts if isinstance(out, SpikingOutput) else out
            loss = F.cross_entropy(counts, y[idx])
            m["opt"].zero_grad()
            loss.backward()
            m["opt"].step()
            m["loss"] = loss.item()

    for m in methods.values():  # warm-up (kernels compiled, allocator filled), untimed
        run(m, 2)
    # Turns of equal time, not of equal batch counts: a method resuming after another pays
    # for cold caches and sleeping threads, and a few-millisecond batch would pay that
    # on every short turn. Half-second turns keep that cost small for all, while a busy
    # spell of the machine still falls on all of them alike.
    done = dict.fromkeys(methods, 0)
    while any(done[name] < batches for name in methods):
        for name, m in methods.items():
            start = time.perf_counter()
            while done[name] < batches and time.perf_counter() - start < args.turn:
                run(m, 1)
                done[name] += 1
            m["seconds"] += time.perf_counter() - start

    timed = batches * args.batch_size
    result = {"benchmark": "train_throughput", "network": "784-128-10", "timesteps": 25,
              "batch_size": args.batch_size, "timed_samples_per_method": timed,
              "threads": args.threads, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine()}
    test_x, test_y = torch.from_numpy(data.test_x), torch.from_numpy(data.test_y)
    for name, m in methods.items():
        result[f"{name}_samples_per_s"] = round(timed / m["seconds"], 1)
        result[f"{name}_last_loss"] = round(m["loss"], 4)
        result[f"{name}_test_accuracy"] = round(test_accuracy(m["model"], test_x, test_y), 4)
    for name in methods:
        if name != "spikeforge" and "spikeforge" in methods:
            result[f"speedup_vs_{name}"] = round(
                result["spikeforge_samples_per_s"] / result[f"{name}_samples_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
