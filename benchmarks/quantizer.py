"""Forward+backward time and peak extra memory of the vector quantiser (run by hand).

    python benchmarks/quantizer.py            # needs: pip install vector-quantize-pytorch

Compares, in one process, fp32, code_dim=64, num_codes=512, at N = 128*7*7 and N = 32*32*32:

- ours:     vqvae_lib.quantize.VectorQuantizer
- vqp:      vector-quantize-pytorch's VectorQuantize (ema_update=False, learnable_codebook=True,
            rotation_trick=False, accept_image_fmap=True): the baseline a practitioner reaches for
- floor:    the unavoidable work, written as bare tensor ops: the layout change, one addmm distance
            matmul, argmin, gather, and the codebook-gradient index_add

It prints the median time of each, the ratios ours/vqp (target <= 0.4) and ours/floor (target <= 1.4),
and the peak memory allocated during one forward+backward beyond the inputs, against the size of one
N x K fp32 distance matrix (target: about one). Memory comes from the PyTorch profiler's allocation
events on the CPU, or torch.cuda.max_memory_allocated on a GPU.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's start/stop lines off stderr
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqvae_lib.quantize import VectorQuantizer  # noqa: E402

D, K, REPEATS = 64, 512, 15
SHAPES = {"N = 128*7*7": (128, 7, 7), "N = 32*32*32": (32, 32, 32)}


# The decoder's gradient arrives as ``upstream``; backward() takes it directly, so the harness adds
# no work of its own beyond what the floor also pays.
def ours_step(quantizer, z_e, upstream):
    out = quantizer(z_e)
    torch.autograd.backward((out.loss, out.z_q), (torch.ones_like(out.loss), upstream))


def vqp_step(quantizer, z_e, upstream):
    z_q, _, commit_loss = quantizer(z_e)
    torch.autograd.backward((commit_loss.sum(), z_q), (torch.ones(()), upstream))


def floor_step(codebook, z_e, upstream):
    b, d, h, w = z_e.shape
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
    indices = torch.addmm(codebook.pow(2).sum(1), flat, codebook.t(), alpha=-2.0).argmin(1)
    z_q = codebook.index_select(0, indices).view(b, h, w, d).permute(0, 3, 1, 2)
    grad = upstream.permute(0, 2, 3, 1).reshape(-1, d)
    torch.zeros_like(codebook).index_add_(0, indices, grad)
    return z_q


def median_seconds(fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_extra_bytes(fn, device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Each op's net allocation (its own, not its children's) plus the frees recorded between ops,
    # replayed in time order; the running maximum is the peak above the starting level.
    deltas = sorted(
        (e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
        for e in prof.events()
    )
    level = peak = 0
    for _, delta in deltas:
        level += delta
        peak = max(peak, level)
    return peak


def main() -> None:
    from vector_quantize_pytorch import VectorQuantize

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device={device.type} threads={torch.get_num_threads()} torch={torch.__version__} D={D} K={K}")
    torch.manual_seed(0)
    ours = VectorQuantizer(K, D).to(device)
    vqp = VectorQuantize(dim=D, codebook_size=K, ema_update=False, learnable_codebook=True,
                         rotation_trick=False, accept_image_fmap=True).to(device)
    codebook = torch.randn(K, D, device=device)
    header = f"{'':14s} {'ours ms':>8s} {'vqp ms':>8s} {'floor ms':>9s} {'ours/vqp':>9s} {'ours/floor':>11s}"
    print(header)
    memory_rows = []
    for label, (b, h, w) in SHAPES.items():
        z_e = torch.randn(b, D, h, w, device=device, requires_grad=True)
        upstream = torch.randn_like(z_e)
        steps = {
            "ours": lambda: ours_step(ours, z_e, upstream),
            "vqp": lambda: vqp_step(vqp, z_e, upstream),
            "floor": lambda: floor_step(codebook, z_e, upstream),
        }
        t = {name: median_seconds(fn) for name, fn in steps.items()}
        print(f"{label:14s} {t['ours'] * 1e3:8.2f} {t['vqp'] * 1e3:8.2f} {t['floor'] * 1e3:9.2f} "
              f"{t['ours'] / t['vqp']:9.2f} {t['ours'] / t['floor']:11.2f}")
        distance_matrix = b * h * w * K * 4
        mem = {name: peak_extra_bytes(fn, device) for name, fn in steps.items()}
        memory_rows.append((label, mem, distance_matrix))
    print(f"\npeak extra memory in one forward+backward, in units of one N x K fp32 distance matrix")
    print(f"{'':14s} {'NxK MB':>7s} {'ours':>6s} {'vqp':>6s} {'floor':>6s}")
    for label, mem, unit in memory_rows:
        print(f"{label:14s} {unit / 2**20:7.1f} {mem['ours'] / unit:6.2f} {mem['vqp'] / unit:6.2f} {mem['floor'] / unit:6.2f}")
    print("\ntargets: ours/vqp <= 0.40, ours/floor <= 1.40, ours memory about 1 distance matrix")


if __name__ == "__main__":
    main()
