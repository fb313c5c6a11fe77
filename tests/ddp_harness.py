"""Run a function on N gloo ranks in fresh processes, with a time bound and no process left behind.

``run_ranks(fn, world_size, *args, timeout=...)`` starts ``world_size`` spawned processes, each calling
``fn(rank, world_size, *args)`` inside an initialised gloo process group, and returns their results
in rank order. If a rank raises, dies or the time runs out, every rank still alive is killed and a
RuntimeError says which rank failed and how (its traceback included).
"""

from __future__ import annotations

import io
import os
import queue
import socket
import time
import traceback

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn, rank, world_size, port, args, results):
    import torch.distributed as dist

    torch.set_num_threads(1)  # what torchrun does (OMP_NUM_THREADS=1): two ranks on two cores
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
        value = io.BytesIO()
        torch.save(fn(rank, world_size, *args), value)  # bytes, not shared tensors: this process exits next
        results.put((rank, "ok", value.getvalue()))
        dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((rank, "error", traceback.format_exc()))


def run_ranks(fn, world_size: int, *args, timeout: float = 60.0):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(fn, r, world_size, port, args, results), daemon=True)
             for r in range(world_size)]
    for p in procs:
        p.start()
    out, deadline = {}, time.monotonic() + timeout
    try:
        while len(out) < world_size:
            try:
                rank, status, value = results.get(timeout=0.2)
            except queue.Empty:  # check the processes and the clock
                dead = [r for r, p in enumerate(procs) if r not in out and not p.is_alive() and p.exitcode]
                if dead:
                    raise RuntimeError(f"rank {dead[0]} exited with code {procs[dead[0]].exitcode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ranks {sorted(set(range(world_size)) - set(out))} did not finish "
                                       f"within {timeout:.0f} s") from None
                continue
            if status == "error":
                raise RuntimeError(f"rank {rank} failed:\n{value}")
            out[rank] = torch.load(io.BytesIO(value), weights_only=False)
        return [out[r] for r in range(world_size)]
    finally:
        for p in procs:
            p.join(timeout=5 if len(out) == world_size else 0.1)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()


def alive(pids) -> list[int]:
    """The pids among ``pids`` that still exist (for the cleanup test)."""
    living = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            living.append(pid)
        except ProcessLookupError:
            pass
    return living
