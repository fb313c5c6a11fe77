"""Training speed of the book's VQ-VAE beside a busy-loop process, for several OpenMP wait policies.

PyTorch's CPU kernels run on GNU OpenMP threads that spin while they wait for each other. On a
2-core machine shared with another CPU-bound process, the spinning thread burns the time slice its
partner needs. This script times 15 s of training steps (batch 128, Adam) in a fresh process for each
setting, first on a quiet machine and then beside one ``while True: pass`` process. Baseline: the
default policy on the quiet machine. Run by hand on an otherwise idle machine:

    python benchmarks/omp_contention.py
    python benchmarks/omp_contention.py --calibrate   (only the quiet GOMP_SPINCOUNT=20000 speed: one number)

``--calibrate`` is the machine's speed that ``full_recheck.sh`` records beside each sitting's chapter times, so
that times from machines of different speeds can be compared (the sessions that wrote this book drew machines
from 6 to 20 steps/s).
"""

import os
import subprocess
import sys
import time

STEP = """
import time, torch
from vqvae_lib.vqvae import VQVAE, VQVAEConfig
torch.manual_seed(0)
model = VQVAE(VQVAEConfig())
opt = torch.optim.Adam(model.parameters(), 2e-4)
x = torch.rand(128, 1, 28, 28)
for _ in range(3):
    opt.zero_grad(); model.loss(x)["loss"].backward(); opt.step()
start, n = time.time(), 0
while time.time() - start < 15:
    opt.zero_grad(); model.loss(x)["loss"].backward(); opt.step(); n += 1
print(n / (time.time() - start))
"""
SETTINGS = {"default": {}, "GOMP_SPINCOUNT=20000": {"GOMP_SPINCOUNT": "20000"},
            "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


def steps_per_second(extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", STEP], env={**env, **extra_env}, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main():
    quiet = {name: steps_per_second(env) for name, env in SETTINGS.items()}
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1)
        busy = {name: steps_per_second(env) for name, env in SETTINGS.items()}
    finally:
        burner.kill()
    base = quiet["default"]
    print(f"{'setting':26s} {'quiet steps/s':>14s} {'beside a busy loop':>20s}  (ratios to default, quiet)")
    for name in SETTINGS:
        print(f"{name:26s} {quiet[name]:8.2f} ({quiet[name] / base:4.2f}) {busy[name]:12.2f} ({busy[name] / base:4.2f})")


if __name__ == "__main__":
    if sys.argv[1:] == ["--calibrate"]:
        print(f"{steps_per_second(SETTINGS['GOMP_SPINCOUNT=20000']):.2f}")
    elif sys.argv[1:]:
        sys.exit("usage: python benchmarks/omp_contention.py [--calibrate]")
    else:
        main()
