"""How training time grows with T, hidden width and batch size, and a training run's peak
memory. Run::

    python benchmarks/train_scaling.py               # tables, then peak memory (~3 min)
    python benchmarks/train_scaling.py --skip-memory

**Time.** The reference network's training step (784-H-10 LIF, constant-current input,
fast-sigmoid surrogate, cross-entropy on counts, AdamW, batch B, T steps), as
`spikeforge train` runs it, timed over real MNIST batches in one process. One factor is
varied at a time from the reference point (T = 25, H = 128, B = 128), and the variants of a
table take turns (round robin, several rounds, best round kept), so that a busy spell of
the machine falls on all of them. Each row gives seconds per epoch of 60,000 samples and
that time relative to the reference point.

**Memory.** `spikeforge train --epochs 1` at T = 25 and T = 100 (batch 128, full MNIST,
scoring and plots included), each in a fresh process, which reports its own peak resident
set size (``ru_maxrss``) at the end: everything, the data set in memory included.

Prints Markdown tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import torch

from spikeforge.config import TrainConfig
from spikeforge.data import load_dataset
from spikeforge.train import build_model, keep_freed_memory, make_objective

REFERENCE = {"timesteps": 25, "hidden": 128, "batch_size": 128}
VARIANTS = {"timesteps": [10, 25, 50, 100, 200], "hidden": [64, 128, 256, 512, 1024],
            "batch_size": [32, 64, 128, 256, 512]}

_PEAK = """
import resource, sys
from spikeforge.cli import main
rc = main(sys.argv[1:])
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


class Trainer:
    """One configuration's model, optimiser and batch stream; ``step(n)`` trains n batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, **settings: int):
        config = TrainConfig.from_dict({**REFERENCE, **settings, "hidden": str(
            settings.get("hidden", REFERENCE["hidden"]))})
        torch.manual_seed(0)
        self.model = build_model(config, config.network_spec(x.shape[1], 10)).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay, fused=True)
        self.objective = make_objective(config)
        self.x, self.y, self.batch = x, y, config.batch_size
        self.order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        self.next = 0

    def step(self, n: int) -> None:
        for _ in range(n):
            start = (self.next * self.batch) % (len(self.x) - self.batch)
            idx = self.order[start:start + self.batch]
            self.next += 1
            out = self.model(self.x[idx], membrane=self.objective.needs_membrane)
            loss = self.objective(out, self.y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def time_table(factor: str, x: torch.Tensor, y: torch.Tensor, rounds: int, turn: float
               ) -> list[dict[str, float]]:
    """Seconds per 60,000 samples for every value of ``factor`` (others at REFERENCE)."""
    trainers = {v: Trainer(x, y, **{factor: v}) for v in VARIANTS[factor]}
    for t in trainers.values():
        t.step(3)  # compile kernels, fill the allocator
    best = dict.fromkeys(trainers, float("inf"))
    for _ in range(rounds):
        for value, t in trainers.items():
            # enough batches for about `turn` seconds, estimated from the best so far
            per_batch = best[value] * t.batch / 60_000 if best[value] < float("inf") else None
            n = max(3, int(turn / per_batch)) if per_batch else 5
            start = time.perf_counter()
            t.step(n)
            seconds = time.perf_counter() - start
            best[value] = min(best[value], seconds / (n * t.batch) * 60_000)
    base = best[REFERENCE[factor]]
    values = list(best)
    rows = []
    for i, v in enumerate(values):
        row = {factor: v, "seconds_per_epoch": round(best[v], 2),
               "relative": round(best[v] / base, 2)}
        if i > 0:  # growth from the previous row: time ratio against the factor's ratio
            row["step_time_ratio"] = round(best[v] / best[values[i - 1]], 2)
            row["step_factor_ratio"] = round(v / values[i - 1], 2)
        rows.append(row)
    return rows


def peak_memory(args: list[str]) -> int:
    """Peak resident set size (bytes) of a fresh process running ``spikeforge <args>``."""
    done = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"spikeforge {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    line = next(s for s in done.stdout.splitlines() if s.startswith("PEAK_KIB"))
    return int(line.split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turn", type=float, default=0.4, help="seconds per variant per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-time", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    result: dict[str, object] = {"benchmark": "train_scaling", "threads": args.threads,
                                 "torch": torch.__version__, "reference": REFERENCE}
    if not args.skip_time:
        data = load_dataset("mnist", progress=False)
        x, y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
        for factor in VARIANTS:
            rows = time_table(factor, x, y, args.rounds, args.turn)
            result[factor] = rows
            print(f"\n| {factor} | s per epoch (60,000 samples) | relative to {factor} = "
                  f"{REFERENCE[factor]} | time ratio to the row above (for a {factor} ratio "
                  f"of) |\n|---|---|---|---|")
            for r in rows:
                step = (f"{r['step_time_ratio']} (x{r['step_factor_ratio']:g})"
                        if "step_time_ratio" in r else "")
                print(f"| {r[factor]} | {r['seconds_per_epoch']} | {r['relative']} | {step} |")
    if not args.skip_memory:
        memory: dict[str, int] = {}
        for steps in (25, 100):
            with tempfile.TemporaryDirectory() as tmp:
                peak = peak_memory(["train", "--timesteps", str(steps), "--epochs", "1",
                                    "--out", f"{tmp}/run", "--no-progress"])
            memory[f"train_T{steps}_mib"] = round(peak / 2**20)
        result["peak_memory"] = memory
        print("\n| process | peak resident memory |\n|---|---|")
        for steps in (25, 100):
            print(f"| `spikeforge train --timesteps {steps} --epochs 1` (batch 128) | "
                  f"{memory[f'train_T{steps}_mib']} MiB |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
