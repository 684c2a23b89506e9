"""Data-parallel training across processes with PyTorch's own engine (``torchrun``).

``torchrun --nproc_per_node N -m spikeforge train ...`` starts N copies of the trainer;
each finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), joins one process group (gloo on the CPU,
nccl on GPUs) and wraps its model in ``DistributedDataParallel``.

The split keeps one process's mathematics. Every rank draws the same epoch permutation and
so the same global batch of ``batch_size`` samples; rank ``r`` takes samples ``r, r + N,
...`` of it. Its loss is scaled so that DDP's gradient average equals the gradient of the
mean loss over the whole global batch::

    loss_r = mean_r · (n_r · N / n)        =>   (1/N) · Σ_r ∇loss_r = ∇ (1/n) Σ_i ℓ_i

with ``n_r`` the rank's share and ``n`` the global batch. The optimiser, learning-rate
schedule and pruning therefore see the same steps as one process would; only the draws of
training noise (dropout, shifts) differ, because each rank draws them for its own samples.
Rank 0 alone scores, checkpoints, plots and writes the run directory.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from spikeforge.errors import ConfigError, SpikeforgeError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run directory and reports."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets ``WORLD_SIZE``) started N > 1 ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str = "auto") -> DistContext | None:
    """Join the process group torchrun describes; ``None`` for a single process.

    ``device``: ``auto`` takes this rank's GPU (``cuda:LOCAL_RANK``) where CUDA is present,
    else the CPU; the backend follows the device (nccl on GPUs, gloo on the CPU).
    """
    if not launched_by_torchrun():
        return None
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {device!r} under torchrun: use auto, cpu or cuda (each "
                          f"rank takes the GPU of its LOCAL_RANK)")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(f"rank {rank} has LOCAL_RANK {local_rank} but this machine "
                              f"shows {torch.cuda.device_count()} CUDA GPU(s): start at most "
                              f"that many processes per node, or use --device cpu")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend)
    _share_cores(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return DistContext(rank, world_size, local_rank, dev, backend)


def _share_cores(local_ranks: int) -> None:
    """Split this machine's cores between the ranks on it, for torch and for the Numba LIF
    kernels alike: N ranks each spawning a thread per core would oversubscribe the CPU
    N times over. ``OMP_NUM_THREADS``, when set, is the user's choice and is kept."""
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        threads = max(1, cores // max(1, local_ranks))
    try:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    # after Numba: starting its OpenMP thread pool resets the pool size torch shares with it
    torch.set_num_threads(threads)


def wrap_model(model: torch.nn.Module, ctx: DistContext | None) -> torch.nn.Module:
    """``model`` inside ``DistributedDataParallel`` (or itself for one process).

    Buffers (pruning masks) are not broadcast: every rank updates them with the same
    deterministic rule from the same weights, so they agree without traffic.
    """
    if ctx is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # torch >= 2.13 renames the switch; an initial sync is harmless (all ranks start equal)
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(model, device_ids=ids, **no_sync)


def unwrap(model: torch.nn.Module) -> Any:
    """The network inside a DDP wrapper (or the network itself)."""
    return getattr(model, "module", model)


def rank_share(idx: torch.Tensor, ctx: DistContext | None) -> torch.Tensor:
    """This rank's samples of a global batch: every ``world_size``-th index from ``rank``."""
    return idx if ctx is None else idx[ctx.rank::ctx.world_size]


def loss_scale(n_rank: int, n_global: int, ctx: DistContext | None) -> float:
    """Factor that turns a rank's mean loss into its share of the global mean (module doc)."""
    return 1.0 if ctx is None else n_rank * ctx.world_size / n_global


def all_sum(values: list[float], ctx: DistContext | None) -> list[float]:
    """Element-wise sum over ranks of a few numbers (losses, counts): one small collective."""
    if ctx is None:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    torch_dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any, ctx: DistContext | None) -> Any:
    """Rank 0's ``obj`` on every rank (a config chosen once, say)."""
    if ctx is None:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def average_buffers(module: torch.nn.Module, prefix: str, ctx: DistContext | None) -> None:
    """Replace every buffer whose name starts with ``prefix`` by its mean over ranks.

    The pruning ranking's input power is a running mean over each rank's own samples; its
    mean over ranks is the running mean over the global batches (the average is linear), so
    every rank ranks, and prunes, the same synapses.
    """
    if ctx is None:
        return
    for name, buffer in module.named_buffers():
        if name.startswith(prefix):
            torch_dist.all_reduce(buffer)
            buffer.div_(ctx.world_size)


def check_replicas(module: torch.nn.Module, ctx: DistContext | None,
                   rank_local: str | None = None) -> None:
    """Raise if the ranks' copies of the parameters and buffers have drifted apart.

    They must stay bit-identical (same start, same averaged gradients, same deterministic
    pruning masks); a cheap per-epoch check of that: every rank's float64 sum of each
    tensor, gathered and compared. Buffers named ``rank_local...`` are left out: statistics
    of each rank's own samples (the pruning ranking's input power, averaged only before a
    pruning step).
    """
    if ctx is None:
        return
    tensors = [*module.parameters(), *(b for name, b in module.named_buffers()
                                       if rank_local is None or not name.startswith(rank_local))]
    sums = torch.stack([t.detach().double().sum() for t in tensors]).to(ctx.device)
    gathered = [torch.empty_like(sums) for _ in range(ctx.world_size)]
    torch_dist.all_gather(gathered, sums)
    if not all(torch.equal(gathered[0], g) for g in gathered[1:]):
        raise SpikeforgeError("data-parallel ranks hold different weights after an epoch; "
                              "this is a bug in spikeforge's torchrun support: train in one "
                              "process and report it")


def barrier(ctx: DistContext | None) -> None:
    """Wait until every rank gets here (e.g. rank 0 has fetched the data)."""
    if ctx is not None:
        torch_dist.barrier()


def shutdown(ctx: DistContext | None) -> None:
    """Leave the process group (end of a run, or an error on the way out)."""
    if ctx is not None and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
