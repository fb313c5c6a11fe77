"""What the book's quantisers and training loop need from ``torch.distributed`` (Chapter 10, "Scaling out").

DDP all-reduces *gradients*. A codebook learned by exponential moving averages, k-means
initialisation and dead-code restarts live outside the gradient, so the quantisers call these
helpers to keep their state equal on every rank. Outside a process group every helper is a no-op
that returns its input, so a single process pays one ``is_initialized()`` check and nothing else.

Collectives run only inside training-mode forwards, which every rank makes in step; evaluation
(eval mode) never communicates, so rank 0 may evaluate alone.
"""

from __future__ import annotations

import inspect
import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group is initialised (with more than one process or not)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it.

    In place means in *this* storage: a non-contiguous view would be reduced through a temporary
    copy and the result silently dropped (a bug a popular library once shipped), so it is refused.
    """
    if not is_distributed():
        return tensor
    if not tensor.is_contiguous():
        raise ValueError("all_reduce_sum_ needs a contiguous tensor: a reduced copy would be thrown away")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values, in place (contiguous only)."""
    if not is_distributed():
        return tensor
    if not tensor.is_contiguous():
        raise ValueError("broadcast_ needs a contiguous tensor: a broadcast copy would be thrown away")
    dist.broadcast(tensor, src)
    return tensor


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of ``x: (N_r, D)``, concatenated in rank order, on every rank.

    Ranks may hold different numbers of rows (a short last batch): each pads to the largest and the
    padding is cut off again.
    """
    if not is_distributed():
        return x
    sizes = torch.tensor([len(x)], device=x.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(world_size())]
    dist.all_gather(all_sizes, sizes)
    longest = int(max(s.item() for s in all_sizes))
    padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in all_sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[: int(n.item())] for part, n in zip(parts, all_sizes)])


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for the CPU (the two backends ``torch.distributed`` ships for them)."""
    return "nccl" if device.type == "cuda" else "gloo"


def launched_by_torchrun() -> bool:
    """Whether the environment has the variables torchrun sets for each worker."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def ddp_options() -> dict:
    """``DistributedDataParallel`` keyword arguments that leave buffers alone after construction.

    The quantisers synchronise their own buffers (above), so DDP's forward-time broadcast of rank 0's
    buffers would only cost time and hide a missing sync. torch 2.14 renamed the switch to
    ``forward_sync_buffers`` and warns about the old ``broadcast_buffers``; older releases know only
    the old name.
    """
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}
