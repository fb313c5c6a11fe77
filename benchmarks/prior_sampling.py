"""Time of ancestral sampling from the Gated PixelCNN prior (run by hand).

    python benchmarks/prior_sampling.py

Compares, on the same untrained model (64 channels, 8 layers, K = 512; 64 samples,
4 for the 32 x 32 grid), for the book's
7 x 7 grid, CIFAR-10's 8 x 8 and the paper's ImageNet 32 x 32:

- ours:     vqvae_lib.prior.GatedPixelCNN.sample: codes looked up in an embedding table, and at row i
            the network runs on rows <= i only;
- baseline: the loop of a popular PyTorch sampler: at every one of the H*W steps, a fresh one-hot
            tensor (n, K, H, W) of the whole grid is built and the network runs on the whole grid.

Both draw from the same conditionals (checked: equal samples under the same seed), so the ratio
ours/baseline is a pure cost ratio.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqvae_lib.prior import GatedPixelCNN, PriorConfig  # noqa: E402

K, REPEATS = 512, 3
GRIDS = {"7 x 7 (Fashion-MNIST)": ((7, 7), 64), "8 x 8 (CIFAR-10)": ((8, 8), 64), "32 x 32 (ImageNet)": ((32, 32), 4)}


def forward_one_hot(model: GatedPixelCNN, one_hot: torch.Tensor) -> torch.Tensor:
    """The same network, fed a one-hot grid (n, K, H, W) through a 1x1 product with the embedding."""
    x = torch.einsum("nkhw,kc->nchw", one_hot, model.embedding.weight)
    v, h = x, x
    for layer in model.layers:
        v, h = layer(v, h)
    return model.head(h)


@torch.no_grad()
def baseline_sample(model: GatedPixelCNN, n: int, shape, generator) -> torch.Tensor:
    height, width = shape
    codes = torch.zeros(n, height, width, dtype=torch.long)
    for i in range(height):
        for j in range(width):
            one_hot = F.one_hot(codes, K).permute(0, 3, 1, 2).float()  # re-allocated at every step
            probs = torch.softmax(forward_one_hot(model, one_hot)[:, :, i, j], dim=1)
            codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return codes


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    model = GatedPixelCNN(PriorConfig(num_codes=K, channels=64, num_layers=8)).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K = {K}")
    print(f"{'grid':24s} {'n':>3s} {'ours s':>8s} {'baseline s':>11s} {'ours/baseline':>14s}")
    for name, (shape, n) in GRIDS.items():
        small = (min(shape[0], 4), min(shape[1], 4))
        same = torch.equal(model.sample(4, small, generator=torch.Generator().manual_seed(1)),
                           baseline_sample(model, 4, small, torch.Generator().manual_seed(1)))
        repeats = 1 if shape[0] > 8 else REPEATS
        ours = median_seconds(lambda: model.sample(n, shape, generator=torch.Generator().manual_seed(0)), repeats)
        base = median_seconds(lambda: baseline_sample(model, n, shape, torch.Generator().manual_seed(0)), repeats)
        print(f"{name:24s} {n:3d} {ours:8.2f} {base:11.2f} {ours / base:14.2f}   same samples: {same}", flush=True)


if __name__ == "__main__":
    main()
