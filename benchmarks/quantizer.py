"""Forward+backward time and peak extra memory of the vector quantiser, and the time of Chapter 10's
quantisers against their floors (run by hand).

    python benchmarks/quantizer.py            # needs: pip install vector-quantize-pytorch
    python benchmarks/quantizer.py --no-vqp   # without it: the vqp columns print as "-"

Compares, in one process, fp32, code_dim=64, num_codes=512, at N = 128*7*7 and N = 32*32*32:

- ours:     vqvae_lib.quantizers.VectorQuantizer
- vqp:      vector-quantize-pytorch's VectorQuantize (ema_update=False, learnable_codebook=True,
            rotation_trick=False, accept_image_fmap=True): the baseline a practitioner reaches for
- floor:    the unavoidable work, written as bare tensor ops: the layout change, one addmm distance
            matmul, argmin, gather, and the codebook-gradient index_add

It prints the median time of each, the ratios ours/vqp (target <= 0.4) and ours/floor (target <= 1.4),
and the peak memory allocated during one forward+backward beyond the inputs, against the size of one
N x K fp32 distance matrix (target: about one). Memory comes from the PyTorch profiler's allocation
events on the CPU, or torch.cuda.max_memory_allocated on a GPU.

Then, in the same run and at the same two N, the forward+backward time of each of Chapter 10's
quantisers (in training mode, the gradient of z_q from the decoder given as ``upstream``, plus the
loss's where there is one) against a floor of bare tensor ops for the work that method cannot avoid:

- FSQ, levels (8, 5, 5, 5), D = 4: the tanh bound of fsq.py, round, divide by floor(L/2), the
  mixed-radix index, and the gradient ``upstream * f'(z) / floor(L/2)``; all in the (B, D, H, W) layout;
- LFQ, D = 10 (1,024 codes), entropy_weight 0.1, commitment_weight 0.25: the layout change, sign and
  bit-pattern index, and the loss's gradient by hand: the commitment term, the per-sample binary
  entropies, and the exact batch entropy over all 2^D codes as lfq.py computes it (one (N, 2^D)
  matmul, softmax, column mean, log, and the softmax backward with one more (N, 2^D) matmul);
- residual VQ, 2 stages of 32 codes, D = 64, "vq" stages: the layout change, then per stage the VQ
  floor on its residual (addmm, argmin, gather, index_add of an (N, D) gradient) and the residual
  subtraction; "ema" stages: per stage addmm, argmin, bincount, index_add of the residuals, the EMA
  update of counts, sums and codes (no codebook gradient), gather and the residual subtraction;
- rotation trick, K = 512, D = 64: the VQ floor plus the rotated gradient ``lambda R^T upstream``
  (norms, u, q, r and two row dot products; rotation.py).

Like the VQ floor, the floors leave out what only logs (perplexity, idle counts) or guards (shape
checks, eps clamps). For these rows the script reports the ratio ours/floor; there is no target.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's start/stop lines off stderr
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqvae_lib.quantizers.fsq import FiniteScalarQuantizer# noqa: E402
from vqvae_lib.quantizers.lfq import LookupFreeQuantizer# noqa: E402
from vqvae_lib.quantizers.vq import VectorQuantizer# noqa: E402
from vqvae_lib.quantizers.residual import ResidualVectorQuantizer# noqa: E402

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


# --- Chapter 10's quantisers and their floors -----------------------------------------------------

LEVELS = (8, 5, 5, 5)  # FSQ at 10 bits (fsq.RECOMMENDED_LEVELS[10])
LFQ_BITS, LFQ_ENTROPY, LFQ_COMMITMENT = 10, 0.1, 0.25  # Chapter 10's LFQ (temperature 1, diversity_gamma 1)
RVQ_STAGES, RVQ_CODES, EMA_DECAY, EMA_EPS = 2, 32, 0.99, 1e-5  # Chapter 10's residual VQ: 2 x 5 bits


def new_step(quantizer, z_e, upstream):
    """Ours, for any quantiser of the book: backward from z_q (and from the loss where it has a graph;
    FSQ's zero loss has none)."""
    out = quantizer(z_e)
    outputs, grads = [out.z_q], [upstream]
    if out.loss.requires_grad:
        outputs.append(out.loss)
        grads.append(torch.ones_like(out.loss))
    torch.autograd.backward(outputs, grads)


def fsq_constants(levels, device) -> dict:
    levels = torch.tensor(levels, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    half_l = (levels - 1) * (1 + 1e-3) / 2
    offset = (levels % 2 == 0).float() / 2
    half_width = torch.floor(levels / 2)
    basis = torch.cumprod(torch.cat([torch.ones_like(levels[:, :1]), levels[:, :-1]], 1), 1).long()
    return dict(shift=torch.atanh(offset / half_l), half_l=half_l, offset=offset, half_width=half_width,
                slope=half_l / half_width, basis=basis)


def fsq_floor(c, z_e, upstream):
    t = torch.tanh(z_e.detach() + c["shift"])
    rounded = torch.round(t * c["half_l"] - c["offset"])
    z_q = rounded / c["half_width"]
    indices = ((rounded + c["half_width"]).long() * c["basis"]).sum(1)
    grad = upstream * (1 - t * t) * c["slope"]  # d z_q / d z_e = f'(z) / floor(L/2)
    return z_q, indices, grad


def lfq_constants(code_dim, device) -> dict:
    powers = 2 ** torch.arange(code_dim, device=device)
    codes = ((torch.arange(2**code_dim, device=device).unsqueeze(1) & powers) != 0).float() * 2 - 1  # (M, D)
    return dict(powers=powers, codes=2 * codes)  # 2 c / T, T = 1: the logits are z @ (2 C)^T


def lfq_floor(c, z_e, upstream):
    b, d, h, w = z_e.shape
    z = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
    n = len(z)
    positive = z >= 0
    signs = positive.float() * 2 - 1
    indices = (positive.long() * c["powers"]).sum(1)
    g = upstream.permute(0, 2, 3, 1).reshape(-1, d)
    g = g + (2 * LFQ_COMMITMENT / (n * d)) * (z - signs)  # commitment term
    logits = 4 * z  # per-sample entropy: binary entropy of sigmoid(4 z_d), dH/dz_d = -4 l p (1 - p)
    p = torch.sigmoid(logits)
    g = g - (LFQ_ENTROPY * 4 / n) * logits * p * (1 - p)
    q = torch.softmax(torch.mm(z, c["codes"].t()), dim=1)  # (N, M) soft assignments q(c | z)
    log_m = q.mean(0).clamp_min(1e-30).log()  # log E_z[q]; H = -sum m log m
    # dH/dlogits = -(1/n) q (log m - q.log m): softmax backward; minus H in the loss, so + below
    grad_logits = q.mul_(log_m - (q @ log_m).unsqueeze(1))
    g = g + (LFQ_ENTROPY / n) * torch.mm(grad_logits, c["codes"])
    return signs.view(b, h, w, d).permute(0, 3, 1, 2), indices.view(b, h, w), g.view(b, h, w, d).permute(0, 3, 1, 2)


def rvq_floor(codebooks, z_e, upstream):
    b, d, h, w = z_e.shape
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
    grad = upstream.permute(0, 2, 3, 1).reshape(-1, d)
    residual, indices = flat, []
    for codebook in codebooks:
        index = torch.addmm(codebook.pow(2).sum(1), residual, codebook.t(), alpha=-2.0).argmin(1)
        residual = residual - codebook.index_select(0, index)
        torch.zeros_like(codebook).index_add_(0, index, grad)  # this stage's codebook gradient
        indices.append(index)
    z_q = (flat - residual).view(b, h, w, d).permute(0, 3, 1, 2)  # e_1 + ... + e_S
    return z_q, torch.stack(indices)


def rvq_ema_floor(stages, z_e, upstream):
    b, d, h, w = z_e.shape
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
    residual, indices = flat, []
    for codebook, cluster_size, code_sum in stages:
        index = torch.addmm(codebook.pow(2).sum(1), residual, codebook.t(), alpha=-2.0).argmin(1)
        counts = torch.bincount(index, minlength=len(codebook))
        sums = torch.zeros_like(code_sum).index_add_(0, index, residual)
        cluster_size.mul_(EMA_DECAY).add_(counts, alpha=1 - EMA_DECAY)
        code_sum.mul_(EMA_DECAY).add_(sums, alpha=1 - EMA_DECAY)
        total = cluster_size.sum()  # Laplace smoothing, and only the chosen codes move (quantize.py)
        smoothed = (cluster_size + EMA_EPS) / (total + len(codebook) * EMA_EPS) * total
        codebook.copy_(torch.where((counts > 0).unsqueeze(1), code_sum / smoothed.unsqueeze(1), codebook))
        residual = residual - codebook.index_select(0, index)  # the updated codes, as in residual.py
        indices.append(index)
    z_q = (flat - residual).view(b, h, w, d).permute(0, 3, 1, 2)
    return z_q, torch.stack(indices)


def rotation_floor(codebook, z_e, upstream):
    b, d, h, w = z_e.shape
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
    indices = torch.addmm(codebook.pow(2).sum(1), flat, codebook.t(), alpha=-2.0).argmin(1)
    e = codebook.index_select(0, indices)
    g = upstream.permute(0, 2, 3, 1).reshape(-1, d)
    torch.zeros_like(codebook).index_add_(0, indices, g)
    norm_z, norm_e = flat.norm(dim=1, keepdim=True), e.norm(dim=1, keepdim=True)
    u, q = flat / norm_z, e / norm_e
    r = F.normalize(u + q, dim=1)
    grad = (norm_e / norm_z) * (g - 2 * r * (r * g).sum(1, keepdim=True) + 2 * u * (q * g).sum(1, keepdim=True))
    return e.view(b, h, w, d).permute(0, 3, 1, 2), grad.view(b, h, w, d).permute(0, 3, 1, 2)


def new_methods(device) -> dict:
    """name -> (code_dim, ours, floor(z_e, upstream)); every quantiser in training mode."""
    torch.manual_seed(0)
    fsq_c, lfq_c = fsq_constants(LEVELS, device), lfq_constants(LFQ_BITS, device)
    limit = (3.0 / D) ** 0.5
    rvq_codebooks = [torch.empty(RVQ_CODES, D, device=device).uniform_(-limit, limit) for _ in range(RVQ_STAGES)]
    ema_stages = [(c.clone(), torch.ones(RVQ_CODES, device=device), c.clone()) for c in rvq_codebooks]
    rotation_codebook = torch.randn(K, D, device=device)
    return {
        f"FSQ {LEVELS}": (len(LEVELS), FiniteScalarQuantizer(LEVELS), lambda z, g: fsq_floor(fsq_c, z, g)),
        f"LFQ, D={LFQ_BITS}, exact entropy": (
            LFQ_BITS, LookupFreeQuantizer(LFQ_BITS, entropy_weight=LFQ_ENTROPY, commitment_weight=LFQ_COMMITMENT),
            lambda z, g: lfq_floor(lfq_c, z, g)),
        f"residual VQ {RVQ_STAGES}x{RVQ_CODES}, vq": (
            D, ResidualVectorQuantizer(RVQ_STAGES, RVQ_CODES, D, 0.25, quantizer="vq"),
            lambda z, g: rvq_floor(rvq_codebooks, z, g)),
        f"residual VQ {RVQ_STAGES}x{RVQ_CODES}, ema": (
            D, ResidualVectorQuantizer(RVQ_STAGES, RVQ_CODES, D, 0.25, quantizer="ema"),
            lambda z, g: rvq_ema_floor(ema_stages, z, g)),
        f"VQ K={K}, rotation trick": (
            D, VectorQuantizer(K, D, gradient="rotation"), lambda z, g: rotation_floor(rotation_codebook, z, g)),
    }


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-vqp", action="store_true", help="skip vector-quantize-pytorch (its columns print as -)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device={device.type} threads={torch.get_num_threads()} torch={torch.__version__} D={D} K={K}")
    torch.manual_seed(0)
    ours = VectorQuantizer(K, D).to(device)
    vqp = None
    if not args.no_vqp:
        from vector_quantize_pytorch import VectorQuantize

        vqp = VectorQuantize(dim=D, codebook_size=K, ema_update=False, learnable_codebook=True,
                             rotation_trick=False, accept_image_fmap=True).to(device)
    codebook = torch.randn(K, D, device=device)
    fmt = lambda value, spec: "-" if value is None else f"{value:{spec}}"  # noqa: E731
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
        if vqp is None:
            del steps["vqp"]
        t = {name: median_seconds(fn) for name, fn in steps.items()}
        t_vqp = t.get("vqp")
        print(f"{label:14s} {t['ours'] * 1e3:8.2f} {fmt(t_vqp and t_vqp * 1e3, '8.2f'):>8s} {t['floor'] * 1e3:9.2f} "
              f"{fmt(t_vqp and t['ours'] / t_vqp, '9.2f'):>9s} {t['ours'] / t['floor']:11.2f}")
        distance_matrix = b * h * w * K * 4
        mem = {name: peak_extra_bytes(fn, device) for name, fn in steps.items()}
        memory_rows.append((label, mem, distance_matrix))
    print(f"\npeak extra memory in one forward+backward, in units of one N x K fp32 distance matrix")
    print(f"{'':14s} {'NxK MB':>7s} {'ours':>6s} {'vqp':>6s} {'floor':>6s}")
    for label, mem, unit in memory_rows:
        vqp_mem = mem.get("vqp")
        print(f"{label:14s} {unit / 2**20:7.1f} {mem['ours'] / unit:6.2f} {fmt(vqp_mem and vqp_mem / unit, '6.2f'):>6s} "
              f"{mem['floor'] / unit:6.2f}")
    print("\ntargets: ours/vqp <= 0.40, ours/floor <= 1.40, ours memory about 1 distance matrix")

    print(f"\nChapter 10's quantisers, forward+backward in training mode, against their floors (no targets)")
    print(f"{'method':34s} {'':14s} {'ours ms':>8s} {'floor ms':>9s} {'ours/floor':>11s}")
    for name, (code_dim, quantizer, floor) in new_methods(device).items():
        quantizer = quantizer.to(device).train()
        for label, (b, h, w) in SHAPES.items():
            z_e = torch.randn(b, code_dim, h, w, device=device, requires_grad=True)
            upstream = torch.randn_like(z_e)
            t_ours = median_seconds(lambda: new_step(quantizer, z_e, upstream))
            t_floor = median_seconds(lambda: floor(z_e, upstream))
            print(f"{name:34s} {label:14s} {t_ours * 1e3:8.2f} {t_floor * 1e3:9.2f} {t_ours / t_floor:11.2f}", flush=True)


if __name__ == "__main__":
    main()
