"""Codebook quality at equal budget: our quantisers against vector-quantize-pytorch (run by hand).

    pip install vector-quantize-pytorch
    python benchmarks/quality.py [--steps 1500]

Trains the paper's small net (64 hidden channels, residual width 32, code_dim 64, 512 codes, batch
128, Adam 2e-4) on Fashion-MNIST, once per quantiser, in one process. The runs are identical except
for the quantiser: same seed for the encoder and decoder, same batches in the same order, same number
of steps. Prints the test-set normalised MSE (MSE of the decoder's mean image / variance of the test
pixels) and the test-set perplexity of the codes.

Baseline: vector-quantize-pytorch's VectorQuantize with its defaults, what a practitioner reaches for.
Targets (Chapter 05's issue): our best configuration's NMSE <= the baseline's, perplexity >= K/2.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqvae_lib.data import make_loaders  # noqa: E402
from vqvae_lib.quantizers.base import QuantizerOutput, perplexity
from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA# noqa: E402
from vqvae_lib.runtime import get_device  # noqa: E402
from vqvae_lib.train import evaluate  # noqa: E402
from vqvae_lib.vqvae import VQVAE, VQVAEConfig  # noqa: E402

K, D, BETA = 512, 64, 0.25


class VectorQuantizePytorch(nn.Module):
    """vector-quantize-pytorch's VectorQuantize behind vqvae_lib's quantiser API."""

    def __init__(self, **kwargs):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.num_codes = K
        self.vq = VectorQuantize(dim=D, codebook_size=K, accept_image_fmap=True, **kwargs)

    @property
    def codebook(self) -> torch.Tensor:
        return self.vq.codebook

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        z_q, indices, loss = self.vq(z_e)
        return QuantizerOutput(z_q=z_q, loss=loss.sum(), indices=indices, perplexity=perplexity(indices, K))


QUANTIZERS = {
    "ours: VQ (paper loss)": lambda: VectorQuantizer(K, D, BETA),
    "ours: EMA": lambda: VectorQuantizerEMA(K, D, BETA),
    "ours: EMA + restarts (best in Chapter 05)": lambda: VectorQuantizerEMA(K, D, BETA, restart_after=20),
    "vqp: defaults": lambda: VectorQuantizePytorch(),
    "vqp: kmeans_init + threshold_ema_dead_code=2": lambda: VectorQuantizePytorch(kmeans_init=True,
                                                                                  threshold_ema_dead_code=2),
}


def run(name: str, steps: int, train_loader, test_loader, device, variance: float) -> dict:
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=K, code_dim=D, hidden=64, res_hidden=32))
    torch.manual_seed(0)
    model.quantizer = QUANTIZERS[name]()  # swapped in: a benchmark, never a cached checkpoint
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    train_loader.generator.manual_seed(0)
    batches = itertools.chain.from_iterable(itertools.repeat(train_loader))
    start = time.perf_counter()
    model.train()
    for x, _ in itertools.islice(batches, steps):
        loss = model.loss(x.to(device))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    test = evaluate(model, test_loader)
    with torch.no_grad():
        codes = torch.cat([model.encode(x.to(device)).flatten() for x, _ in test_loader])
    return {"nmse": test["mse"] / variance, "perplexity": perplexity(codes, K).item(),
            "used": int(codes.unique().numel()), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    device = get_device()
    train_loader, test_loader = make_loaders("fashion_mnist", batch_size=128, seed=0)
    variance = torch.cat([x for x, _ in test_loader]).var().item()
    print(f"device={device.type} steps={args.steps} K={K} D={D}; test set: {len(test_loader.dataset)} images")
    print(f"{'quantiser':46s} {'NMSE':>7s} {'perplexity':>10s} {'used':>5s} {'train s':>8s}")
    results = {}
    for name in QUANTIZERS:
        r = results[name] = run(name, args.steps, train_loader, test_loader, device, variance)
        print(f"{name:46s} {r['nmse']:7.4f} {r['perplexity']:10.1f} {r['used']:5d} {r['seconds']:8.0f}", flush=True)
    best, baseline = results["ours: EMA + restarts (best in Chapter 05)"], results["vqp: defaults"]
    print(f"\nbest/baseline NMSE ratio {best['nmse'] / baseline['nmse']:.3f} (target <= 1); "
          f"best perplexity {best['perplexity']:.0f} (target >= {K // 2})")


if __name__ == "__main__":
    main()
