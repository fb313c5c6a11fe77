#!/usr/bin/env bash
# The full re-check of the stored outputs as issue 13 asks for it: a fresh clone of this repository's
# HEAD, the README's setup (with this machine's local torch wheels), an empty checkpoint cache, and
# `VQVAE_FAST=0 pytest`, optionally beside a CPU-bound busy loop. Run by hand; it takes about 50
# minutes on a quiet 2-core machine and several times that beside the busy loop.
#   bash benchmarks/full_recheck.sh [--busy] [WORKDIR]     (default WORKDIR: /tmp/vqvae-recheck)
# Prints setup and pytest times; pytest's verbose log, with per-cell durations, is WORKDIR/pytest.txt.
set -uo pipefail
busy=0
if [ "${1:-}" = "--busy" ]; then busy=1; shift; fi
work=${1:-/tmp/vqvae-recheck}
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && git clone -q "$repo" "$work/repo" || exit 1
cd "$work/repo" || exit 1
echo "re-checking $(git log --oneline -1)"
start=$(date +%s)
python3 -m venv .venv && . .venv/bin/activate && pip install -q --upgrade pip \
  && pip install -q torch==2.14.1 torchvision==0.29.1 && pip install -q -e ".[book,dev]" || exit 1
echo "setup $(( $(date +%s) - start )) s"
VQVAE_CHECKPOINTS="$work/checkpoints"
export VQVAE_CHECKPOINTS
mkdir -p "$VQVAE_CHECKPOINTS"
burner=""
if [ "$busy" = 1 ]; then
  python3 -c 'while True: pass' &
  burner=$!
  echo "busy loop beside it: pid $burner"
fi
tests_start=$(date +%s)
VQVAE_FAST=0 pytest -p no:cacheprovider --durations=0 -rA -v > "$work/pytest.txt" 2>&1
rc=$?
[ -n "$burner" ] && kill "$burner"
echo "VQVAE_FAST=0 pytest: rc=$rc in $(( $(date +%s) - tests_start )) s; $(tail -1 "$work/pytest.txt")"
exit $rc
