"""Time of one checkpoint run key (``vqvae_lib.checkpoint.run_key``), with and without its remembered parses.

Every ``load_or_fit`` computes a key, and the key hashes the syntax tree of every library module the model's
code imports. Until session 19 each key parsed and dumped those files again; the parses are now remembered by
the file's text. This script measures a key of Chapter 04's VQ-VAE and of Chapter 06's Gated PixelCNN three
ways:

- ``cold``: the remembered parses cleared before every key (what every key cost before);
- ``first``: the first key of a process (what a notebook's first ``load_or_fit`` pays);
- ``warm``: every later key (the files unchanged).

Run by hand on a quiet machine: ``python benchmarks/run_key.py [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vqvae_lib import checkpoint
from vqvae_lib.data import make_loaders
from vqvae_lib.prior import GatedPixelCNN, PriorConfig
from vqvae_lib.vqvae import VQVAE, VQVAEConfig


def clear() -> None:
    checkpoint.code_fingerprint.cache_clear()
    checkpoint._imports_in.cache_clear()


def seconds(model, loader, repeats: int, cold: bool) -> list[float]:
    times = []
    for _ in range(repeats):
        if cold:
            clear()
        start = time.perf_counter()
        checkpoint.run_key(model, loader, epochs=1, lr=1e-3)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as under pytest's workers
    train, _ = make_loaders("fashion_mnist", 128, 1024, 256, seed=0)
    models = {"Chapter 04's VQ-VAE": VQVAE(VQVAEConfig(num_codes=512, code_dim=64, hidden=64, res_hidden=32)),
              "Chapter 06's prior": GatedPixelCNN(PriorConfig(num_codes=512, channels=32, num_layers=8))}
    print(f"{'model':22s} {'cold (ms)':>14s} {'first (ms)':>11s} {'warm (ms)':>14s} {'cold / warm':>11s}")
    for name, model in models.items():
        cold = seconds(model, train, args.repeats, cold=True)
        clear()
        first = seconds(model, train, 1, cold=False)[0]
        warm = seconds(model, train, args.repeats, cold=False)
        c, w = statistics.median(cold), statistics.median(warm)
        print(f"{name:22s} {1e3 * c:8.1f} ± {1e3 * statistics.stdev(cold):4.1f} {1e3 * first:11.1f} "
              f"{1e3 * w:8.1f} ± {1e3 * statistics.stdev(warm):4.1f} {c / w:11.1f}")
    print(f"medians of {args.repeats} keys, one thread; the warm key still reads every file and hashes the weights")


if __name__ == "__main__":
    main()
