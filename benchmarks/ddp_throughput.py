"""Training throughput of the command line in 1 process against 2 DDP processes (run by hand).

    flock /tmp/vqvae-cpu.lock python benchmarks/ddp_throughput.py [--steps 150] [--nproc 2]

Trains the book's VQ-VAE (Chapter 04's trunk: 64 hidden channels, residual width 32, K = 512,
D = 64, EMA with restarts) on Fashion-MNIST at global batch 128 for ``--steps`` Adam steps, first
with ``python -m vqvae_lib`` (one process, PyTorch's default threads), then with
``torchrun --nproc_per_node=N`` (torchrun gives each rank OMP_NUM_THREADS=1). Prints each run's steps
per second, from the saved history (training only, no evaluation), and the ratio N-process / 1-process.

Baseline: the single process. On a 2-core CPU the two runs use the same two cores, so the ratio
measures what DDP's communication and the per-rank overheads cost, not a speed-up; on N GPUs it would
be the scaling efficiency times N.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

CONFIG = ["--set", "quantizer=ema", "--set", "restart_after=20", "--batch-size", "128"]


def run(command: list[str], checkpoint: Path) -> float:
    subprocess.run(command, check=True, env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    history = torch.load(checkpoint, weights_only=True)["history"]
    return len(history["train"]) / history["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        common = ["vqvae", *CONFIG, "--steps", str(args.steps), "--checkpoint-dir", folder]
        one = run([sys.executable, "-m", "vqvae_lib", *common, "--name", "one"], Path(folder) / "one.pt")
        many = run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}", "-m",
                    "vqvae_lib", *common, "--name", "many"], Path(folder) / "many.pt")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads by default, {args.steps} steps, batch 128")
    print(f"1 process:             {one:6.2f} steps/s")
    print(f"{args.nproc} processes (torchrun): {many:6.2f} steps/s")
    print(f"ratio {args.nproc}-process / 1-process: {many / one:.2f}")


if __name__ == "__main__":
    main()
