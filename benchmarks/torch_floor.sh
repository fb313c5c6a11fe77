#!/usr/bin/env bash
# The declared floor (pyproject.toml: torch>=2.4, torchvision>=0.19, torchaudio>=2.4) is true only if the unit tests pass
# there. This builds a throw-away venv with that torch from PyPI (about 2.5 GB of CUDA wheels; it runs
# on the CPU) and runs tests/ in it against this checkout. Run by hand after touching torch APIs:
#   bash benchmarks/torch_floor.sh            (venv in /tmp/vqvae-torch-floor, reused if present)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FLOOR_VENV:-/tmp/vqvae-torch-floor}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "torch==2.4.1" "torchvision==0.19.1" "torchaudio==2.4.1" "numpy<2" "matplotlib>=3.7" "tqdm>=4.66" \
    "pytest>=7" "pyyaml>=6" "mpmath>=1.3"
fi
"$venv/bin/python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
# The unit tests only: the chapters need the book's Jupyter stack, which the floor does not change.
PYTHONPATH=. "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" tests/ --ignore=tests/test_notebooks.py
