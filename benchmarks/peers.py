"""Chapter 10's runs with vector-quantize-pytorch's quantisers in place of ours (run by hand).

    pip install vector-quantize-pytorch        # into the venv only; not a dependency of the book
    python benchmarks/peers.py [--seeds 0 1 2] [--steps 468] [--only fsq rvq rotation rotation_restarts]

Chapter 10's main table at 10 bits per latent, on its terms: Chapter 04's trunk (VQVAEConfig
hidden=64, res_hidden=32, beta=0.25), full Fashion-MNIST, 468 Adam steps (one epoch) at lr 2e-4 and
batch 128, seeds 0, 1, 2. For each pair below, both sides are the same VQVAE built under
``torch.manual_seed(seed)`` exactly as the chapter's ``run`` builds it; the vqp side then swaps
``model.quantizer`` for an adapter created after ``torch.manual_seed(seed)`` (so encoder and decoder
start bit-identical), the global RNG and the train loader's generator are reseeded with the seed (as
``load_or_fit`` does), and both take the same batches in the same order with Adam at the same lr.
Ours and vqp's runs alternate seed by seed in one process. Everything is fp32 on every device (the
chapter's ``fit`` trains under fp16 autocast on CUDA; this script does not).

Pairs (ours = vqvae_lib, vqp = vector-quantize-pytorch):

- ``fsq``: ours VQVAEConfig(quantizer="fsq", levels=(8, 5, 5, 5)) vs vqp FSQ(levels=[8, 5, 5, 5]) on
  the same 4-channel z_e. Same bound (tanh with the reference code's eps = 1e-3), same rounding;
  neither has a loss.
- ``rvq``: two stages of 32 codes, code_dim 64. Ours: rvq_stage="ema" (decay 0.99, eps 1e-5),
  restart_after=20. vqp: ResidualVQ(dim=64, num_quantizers=2, codebook_size=32, decay=0.99,
  commitment_weight=0.25, threshold_ema_dead_code=2, rotation_trick=False). Matched: EMA codebooks
  with decay 0.99 and Laplace eps 1e-5, commitment weight 0.25 on each stage's residual (element
  mean, summed over the stages as ours sums), straight-through gradients, no k-means init.
  Different: (1) restarts: vqp replaces a code when the EMA of its count per batch falls below 2
  (the value its README shows; a replaced code restarts at count 2, so it is replaced again unless
  it wins at least 2 vectors of the next batch; and the counts start at 1, so the first training
  batch re-seeds every code that wins fewer than 101 of its vectors), ours after 20 consecutive
  batches unchosen; (2) vqp's EMA
  moves unchosen codes too (the Laplace smoothing pulls them towards 0), ours leaves them; (3) vqp
  initialises codes with kaiming_uniform on a (1, K, D) tensor, bound sqrt(6 / (K D)) = 0.054 here,
  ours uniform(+-sqrt(3 / D)) = 0.22; (4) vqp's ResidualVQ applies straight-through at every stage,
  so the encoder receives S = 2 times the decoder's gradient (checked numerically), ours once;
  (5) vqp's accept_image_fmap fails for ResidualVQ in 1.32.0 (its index buffer is shaped from the
  (B, D, H, W) input), so the adapter passes (B, H*W, D) sequences.
- ``rotation``: K = 1024, code_dim 64, codebook trained by the loss, the rotation trick. Ours:
  VQVAEConfig(gradient="rotation"). vqp: VectorQuantize(dim=64, codebook_size=1024,
  rotation_trick=True, learnable_codebook=True, ema_update=False, commitment_weight=0.25). vqp's
  only loss is ``0.25 * mse(e, z_e)`` with the gradient to both; ours is ``mse(e, sg z_e) + 0.25 *
  mse(z_e, sg e)``. The encoder's gradient is the same; the codebook's is 1/4 of ours, and since the
  codebook gets no other gradient and Adam is invariant to a constant factor (up to its eps = 1e-8),
  the updates are nearly the same. Codebook init differs as in (3): bound 0.0096 against 0.22.
- ``rotation_restarts``: the same plus restarts: ours restart_after=20; vqp threshold_ema_dead_code=2
  with decay=0.99 (vqp tracks the cluster-size EMA for its restarts also without ema_update). At
  K = 1024 and 6,272 vectors per batch (about 6 per code) that threshold is far more aggressive than
  ours, and as in (1) the first training batch re-seeds nearly every (tiny) initial code.

The adapters give vqp's modules our quantiser API: ``num_codes``, ``code_dim``, ``forward`` ->
QuantizerOutput(z_q, loss, indices int64 (B, H, W) or (B, S, H, W), perplexity), and
``encode_indices`` (vqp's module in eval mode under no_grad, so nothing is updated). They have no
``dead_codes``, so VQVAE.loss logs 0 dead codes for them (nothing here reads it). Loss units: vqp's
commitment terms are F.mse_loss element means like ours, so VQVAE.loss's weight (N * D / M per pixel
value) applies to both unchanged. In eval vqp returns a zero loss, ours its VQ loss: only the test
MSE is read.

Reported per method and side, mean ± sd over the seeds: test NMSE (vqvae_lib.train.evaluate's test
MSE / variance of the test pixels), codebook use (perplexity of the test set's codes / K, the mean
over stages for residual VQ, as Chapter 10's ``measure``), and ms per training step (wall time of
the training loop, data loading included, / steps; every quantiser gets one untimed warm-up
forward+backward in the process first, see ``warm_up``). Then per pair: the NMSE ratio and the time
ratio ours/vqp (ratios of the means over seeds); "ours no worse" when ours' mean NMSE <= vqp's mean
+ the larger of the two sds (sd 0 with one seed); "ours faster" when ours' mean ms per step is below
vqp's, with the number of seeds in which ours' run was faster. No targets: this reports.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import math
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vqvae_lib  # noqa: E402
from vqvae_lib.data import make_loaders  # noqa: E402
from vqvae_lib.quantizers.base import QuantizerOutput, check_z_e, perplexity# noqa: E402
from vqvae_lib.runtime import get_device  # noqa: E402
from vqvae_lib.train import evaluate  # noqa: E402
from vqvae_lib.vqvae import VQVAE, VQVAEConfig  # noqa: E402

BATCH_SIZE, LR = 128, 2e-4
TRUNK = dict(hidden=64, res_hidden=32, beta=0.25)  # Chapter 10's TRUNK
RESTART_AFTER = 20  # Chapter 10's RESTART_AFTER
LEVELS = (8, 5, 5, 5)  # RECOMMENDED_LEVELS[10]
K, D = 1024, 64  # 10 bits per latent
STAGES, STAGE_CODES = 2, 32  # residual VQ: 2 x 5 bits
VQP_DEAD_CODE_THRESHOLD = 2  # vector-quantize-pytorch's README value


# --- vector-quantize-pytorch behind vqvae_lib's quantiser API --------------------------------------

class _Adapter(nn.Module):
    """What every adapter shares: ``encode_indices`` runs the module in eval mode under no_grad."""

    num_codes: int
    code_dim: int

    def _quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError  # (z_q (B, D, H, W), int64 indices, scalar loss)

    def _perplexity(self, indices: torch.Tensor) -> torch.Tensor:
        return perplexity(indices, self.num_codes)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        check_z_e(z_e, self.code_dim)
        z_q, indices, loss = self._quantize(z_e)
        return QuantizerOutput(z_q=z_q, loss=loss, indices=indices, perplexity=self._perplexity(indices))

    @torch.no_grad()
    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        check_z_e(z_e, self.code_dim)
        was_training = self.training
        self.eval()  # vqp updates codebooks, cluster sizes and restarts only in training mode
        try:
            return self._quantize(z_e)[1]
        finally:
            self.train(was_training)


class VqpFSQ(_Adapter):
    """vqp's FSQ(levels) on a (B, len(levels), H, W) z_e; no loss."""

    def __init__(self, levels):
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.fsq = FSQ(levels=list(levels))
        self.num_codes, self.code_dim = math.prod(levels), len(levels)

    def _quantize(self, z_e):
        z_q, indices = self.fsq(z_e)  # image input: channels first in and out, indices (B, H, W) int32
        return z_q, indices.long(), z_e.new_zeros(())


class VqpVQ(_Adapter):
    """vqp's VectorQuantize(dim, codebook_size, accept_image_fmap=True, **options)."""

    def __init__(self, num_codes, code_dim, **options):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.vq = VectorQuantize(dim=code_dim, codebook_size=num_codes, accept_image_fmap=True, **options)
        self.num_codes, self.code_dim = num_codes, code_dim

    def _quantize(self, z_e):
        z_q, indices, loss = self.vq(z_e)  # loss: a scalar, commitment_weight * element-mean MSE
        return z_q, indices, loss.sum()


class VqpRVQ(_Adapter):
    """vqp's ResidualVQ(dim, num_quantizers, codebook_size, **options) on (B, H*W, D) sequences."""

    def __init__(self, num_stages, num_codes, code_dim, **options):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.rvq = ResidualVQ(dim=code_dim, num_quantizers=num_stages, codebook_size=num_codes, **options)
        self.num_stages, self.num_codes, self.code_dim = num_stages, num_codes, code_dim

    def _quantize(self, z_e):
        b, d, h, w = z_e.shape
        z_q, indices, losses = self.rvq(z_e.permute(0, 2, 3, 1).reshape(b, h * w, d))
        z_q = z_q.view(b, h, w, d).permute(0, 3, 1, 2)
        indices = indices.view(b, h, w, -1).permute(0, 3, 1, 2)  # (B, S, H, W) int64
        return z_q, indices, losses.sum()  # one element-mean loss per stage, summed as ours

    def _perplexity(self, indices):
        return torch.stack([perplexity(indices[:, s], self.num_codes) for s in range(indices.shape[1])]).mean()


# --- the pairs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Side:
    label: str
    config: VQVAEConfig  # the trunk, and for ours the quantiser
    make: Callable[[], nn.Module] | None = None  # vqp: the adapter swapped in; None: ours from config


FSQ_CONFIG = VQVAEConfig(quantizer="fsq", levels=LEVELS, code_dim=len(LEVELS), num_codes=math.prod(LEVELS), **TRUNK)
RVQ_CONFIG = VQVAEConfig(quantizer="rvq", num_stages=STAGES, num_codes=STAGE_CODES, code_dim=D, rvq_stage="ema",
                         restart_after=RESTART_AFTER, **TRUNK)
ROT_CONFIG = VQVAEConfig(gradient="rotation", num_codes=K, code_dim=D, **TRUNK)
ROT_RESTARTS_CONFIG = VQVAEConfig(gradient="rotation", num_codes=K, code_dim=D, restart_after=RESTART_AFTER, **TRUNK)
VQP_ROTATION = dict(rotation_trick=True, learnable_codebook=True, ema_update=False, commitment_weight=0.25)

PAIRS = {
    "fsq": ("FSQ (8,5,5,5)", (
        Side("ours: FiniteScalarQuantizer", FSQ_CONFIG),
        Side("vqp: FSQ", FSQ_CONFIG, lambda: VqpFSQ(LEVELS)),
    )),
    "rvq": ("residual VQ, 2 x 32, EMA + restarts", (
        Side("ours: RVQ, ema stages, restart 20", RVQ_CONFIG),
        Side("vqp: ResidualVQ, ema, dead < 2", RVQ_CONFIG,
             lambda: VqpRVQ(STAGES, STAGE_CODES, D, decay=0.99, commitment_weight=0.25,
                            threshold_ema_dead_code=VQP_DEAD_CODE_THRESHOLD, rotation_trick=False)),
    )),
    "rotation": ("VQ K=1024, rotation trick", (
        Side("ours: VQ, rotation", ROT_CONFIG),
        Side("vqp: VectorQuantize, rotation", ROT_CONFIG, lambda: VqpVQ(K, D, **VQP_ROTATION)),
    )),
    "rotation_restarts": ("VQ K=1024, rotation trick + restarts", (
        Side("ours: VQ, rotation, restart 20", ROT_RESTARTS_CONFIG),
        Side("vqp: VectorQuantize, rotation, dead < 2", ROT_RESTARTS_CONFIG,
             lambda: VqpVQ(K, D, threshold_ema_dead_code=VQP_DEAD_CODE_THRESHOLD, decay=0.99, **VQP_ROTATION)),
    )),
}


# --- one run -----------------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def warm_up(sides, device) -> None:
    """One forward+backward and one encode_indices of each quantiser on a small random input, before
    any timed run, so that one-off costs (einx traces each expression on its first call) do not land
    in the first seed's time. The modules are thrown away and every run reseeds the RNG."""
    for side in sides:
        model = VQVAE(side.config)
        quantizer = (side.make() if side.make is not None else model.quantizer).to(device).train()
        z_e = torch.randn(2, quantizer.code_dim, 7, 7, device=device, requires_grad=True)
        out = quantizer(z_e)
        (out.z_q.sum() + out.loss).backward()
        quantizer.encode_indices(z_e)


def run(side: Side, seed: int, steps: int, train_loader, test_loader, device, variance: float) -> dict:
    torch.manual_seed(seed)  # as Chapter 10's run: the initial weights
    model = VQVAE(side.config)
    if side.make is not None:
        torch.manual_seed(seed)
        model.quantizer = side.make()  # swapped in: a benchmark, never a cached checkpoint
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    torch.manual_seed(seed)  # as load_or_fit: the global RNG and the batch order
    train_loader.generator.manual_seed(seed)
    batches = itertools.islice(itertools.chain.from_iterable(itertools.repeat(train_loader)), steps)
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for x, _ in batches:
        loss = model.loss(x.to(device))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    seconds = time.perf_counter() - start
    model.eval()
    test = evaluate(model, test_loader)
    with torch.no_grad():
        codes = torch.cat([model.encode(x.to(device)).cpu() for x, _ in test_loader])
    per_stage = codes.unbind(1) if codes.dim() == 4 else (codes,)  # residual VQ: one grid per stage
    use = statistics.mean(perplexity(c, model.num_codes).item() for c in per_stage) / model.num_codes
    return {"nmse": test["mse"] / variance, "use": use, "step_ms": 1000 * seconds / steps, "seconds": seconds}


# --- the report --------------------------------------------------------------------------------------

def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(values: list[float], fmt: str) -> str:
    m, sd = mean_sd(values)
    return f"{m:{fmt}} ± {sd:{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=468, help="Adam steps per run (468: one epoch)")
    parser.add_argument("--only", nargs="+", choices=list(PAIRS), default=list(PAIRS), help="a subset of the pairs")
    args = parser.parse_args()
    device = get_device()
    train_loader, test_loader = make_loaders("fashion_mnist", BATCH_SIZE, None, None, seed=0)
    variance = torch.cat([x for x, _ in test_loader]).var().item()
    print(f"device={device.type} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"vector-quantize-pytorch={importlib.metadata.version('vector-quantize-pytorch')}")
    print(f"vqvae_lib from {Path(vqvae_lib.__file__).parent}")
    print(f"Fashion-MNIST {len(train_loader.dataset):,} train / {len(test_loader.dataset):,} test images; "
          f"{args.steps} Adam steps at lr {LR}, batch {BATCH_SIZE}; seeds {args.seeds}; fp32\n")
    warm_up([side for pair in args.only for side in PAIRS[pair][1]], device)
    results = {}  # (pair, side index) -> list of per-seed rows
    for pair in args.only:
        title, sides = PAIRS[pair]
        for seed in args.seeds:
            for i, side in enumerate(sides):
                r = run(side, seed, args.steps, train_loader, test_loader, device, variance)
                results.setdefault((pair, i), []).append(r)
                print(f"  {title}, {side.label}, seed {seed}: NMSE {r['nmse']:.4f}  use {r['use']:.3f}  "
                      f"{r['step_ms']:.1f} ms/step ({r['seconds']:.0f} s)", flush=True)

    print(f"\nmean ± sd over seeds {args.seeds}")
    print(f"{'method':44s} {'test NMSE':>17s} {'perplexity / K':>15s} {'ms / step':>13s}")
    for pair in args.only:
        title, sides = PAIRS[pair]
        print(title)
        for i, side in enumerate(sides):
            rows = results[pair, i]
            print(f"  {side.label:42s} {cell([r['nmse'] for r in rows], '.4f'):>17s} "
                  f"{cell([r['use'] for r in rows], '.3f'):>15s} {cell([r['step_ms'] for r in rows], '.1f'):>13s}")

    print(f"\nours / vqp (ratios of the means over seeds)")
    print(f"{'pair':38s} {'NMSE ratio':>10s} {'time ratio':>10s}  {'ours no worse on NMSE':>22s}  {'ours faster':>12s}")
    for pair in args.only:
        title = PAIRS[pair][0]
        ours, vqp = results[pair, 0], results[pair, 1]
        (n_ours, sd_ours), (n_vqp, sd_vqp) = mean_sd([r["nmse"] for r in ours]), mean_sd([r["nmse"] for r in vqp])
        t_ours, t_vqp = statistics.mean(r["step_ms"] for r in ours), statistics.mean(r["step_ms"] for r in vqp)
        no_worse = n_ours <= n_vqp + max(sd_ours, sd_vqp)
        faster_seeds = sum(a["step_ms"] < b["step_ms"] for a, b in zip(ours, vqp))
        print(f"{title:38s} {n_ours / n_vqp:10.3f} {t_ours / t_vqp:10.3f}  {'yes' if no_worse else 'no':>22s}  "
              f"{('yes' if t_ours < t_vqp else 'no') + f' ({faster_seeds}/{len(ours)})':>12s}")
    print("\nno worse: ours' mean NMSE <= vqp's mean + the larger sd; faster: ours' mean ms/step < vqp's "
          "(seeds in which ours' run was faster)")


if __name__ == "__main__":
    main()
