"""Wall time of every chapter in one profile, against its budget (run by hand).

    python benchmarks/time_chapters.py --profile fast     # what CI runs
    python benchmarks/time_chapters.py --profile full     # what produced the stored outputs

Each chapter is executed from a fresh kernel into a temporary copy (the stored notebooks are not
touched) with an empty checkpoint cache, so nothing is loaded instead of trained. The baseline is
the budget each issue set for the chapter; the ratio column is measured / budget.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = {  # per-chapter budgets in seconds (issue 12: Section 6.8 <= 600 s, Chapter 07 <= 1,500 s full)
    "full": {"00_preface": 60, "01_vae": 360, "02_discrete_latents": 480, "03_vector_quantization": 240,
             "04_vqvae": 480, "05_training_vqvae_well": 600,
             "06_prior": 900, "07_bits_per_dim": 1500},
    "fast": {"00_preface": 30, "01_vae": 60, "02_discrete_latents": 60, "03_vector_quantization": 45,
             "04_vqvae": 45, "05_training_vqvae_well": 60,
             "06_prior": 120, "07_bits_per_dim": 90},
}


def run(notebook: Path) -> float:
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("fast", "full"), default="fast")
    parser.add_argument("chapters", nargs="*", help="chapter stems, e.g. 01_vae (default: all)")
    args = parser.parse_args()
    os.environ["VQVAE_FAST"] = "1" if args.profile == "fast" else "0"
    os.environ["VQVAE_CHECKPOINTS"] = tempfile.mkdtemp(prefix="vqvae-bench-")
    # Book order (the _toc.yml's), not file-name order: 07_learning_rates runs before 07_bits_per_dim,
    # whose seed-0 runs it trains.
    listed = re.findall(r"(?:root|file):\s*(chapters/[0-9][0-9]_\w+)(?:\.ipynb)?", (ROOT / "_toc.yml").read_text())
    notebooks = [ROOT / f"{stem}.ipynb" for stem in listed]
    if args.chapters:
        notebooks = [nb for nb in notebooks if nb.stem in args.chapters]
    total = 0.0
    print(f"{'chapter':20s} {'profile':>7s} {'seconds':>8s} {'budget':>7s} {'ratio':>6s}")
    for nb in notebooks:
        seconds = run(nb)
        total += seconds
        budget = BUDGET_S[args.profile].get(nb.stem)
        ratio = f"{seconds / budget:6.2f}" if budget else "     -"
        print(f"{nb.stem:20s} {args.profile:>7s} {seconds:8.1f} {budget or '-':>7} {ratio}", flush=True)
    print(f"{'all chapters':20s} {args.profile:>7s} {total:8.1f}")


if __name__ == "__main__":
    sys.exit(main())
