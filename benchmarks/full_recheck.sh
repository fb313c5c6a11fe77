#!/usr/bin/env bash
# The full re-check of the stored outputs: a fresh clone of this repository's HEAD, the README's setup
# (with this machine's local torch wheels), an empty checkpoint cache, and `VQVAE_FAST=0 pytest -n 0 -m ""`,
# optionally beside a CPU-bound busy loop. Run by hand.
#
#   bash benchmarks/full_recheck.sh [--busy] [WORKDIR]
#       everything in one go: about 50-90 minutes on a quiet 2-core machine (benchmarks/README.md).
#   bash benchmarks/full_recheck.sh --chapters 01_vae,02_discrete_latents [WORKDIR]
#   bash benchmarks/full_recheck.sh --chapters 03_vector_quantization,04_vqvae [WORKDIR]   (a later sitting)
#       the chapters named, in that order, each under strict nbval in the full profile. The first call
#       clones and sets up WORKDIR with an empty checkpoint cache; later calls reuse the clone, the venv
#       and the cache, so the re-check can be split across sittings (run the chapters in book order:
#       a chapter loads the models of the ones before it, and retrains them if they were not run).
#       Each chapter's time and result is appended to WORKDIR/chapters.tsv, with the machine's speed measured
#       at the start of the sitting (omp_contention.py --calibrate). --fresh starts over.
#   bash benchmarks/full_recheck.sh --chapters solutions/01_vae,solutions/02_discrete_latents [WORKDIR]
#       a name with a folder is a notebook path without its extension: the solutions pages, after their chapters.
#
# Default WORKDIR: /tmp/vqvae-recheck. pytest's verbose logs, with per-cell durations, are in WORKDIR.
set -uo pipefail
busy=0 chapters="" fresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --busy) busy=1; shift ;;
    --fresh) fresh=1; shift ;;
    --chapters) chapters=${2:?--chapters needs a comma-separated list, e.g. 01_vae,02_discrete_latents}; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
work=${1:-/tmp/vqvae-recheck}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$chapters" ] || [ "$fresh" = 1 ] || [ ! -x "$work/repo/.venv/bin/pytest" ]; then
  rm -rf "$work" && git clone -q "$repo" "$work/repo" || exit 1
  cd "$work/repo" || exit 1
  start=$(date +%s)
  python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip \
    && .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 && .venv/bin/pip install -q -e ".[book,dev]" || exit 1
  echo "setup $(( $(date +%s) - start )) s"
  mkdir -p "$work/checkpoints"
fi
cd "$work/repo" || exit 1
# shellcheck disable=SC1091
. .venv/bin/activate
echo "re-checking $(git log --oneline -1)"
# this machine's speed (the book's VQ-VAE, batch 128, quiet): times from machines of different speeds compare
speed=$(python "$repo/benchmarks/omp_contention.py" --calibrate) || speed="?"
echo "this machine: $speed steps/s (omp_contention.py --calibrate)"
VQVAE_CHECKPOINTS="$work/checkpoints"
export VQVAE_CHECKPOINTS
burner=""
if [ "$busy" = 1 ]; then
  python3 -c 'while True: pass' &
  burner=$!
  echo "busy loop beside it: pid $burner"
fi
rc=0
if [ -z "$chapters" ]; then
  tests_start=$(date +%s)
  VQVAE_FAST=0 pytest -n 0 -m "" -p no:cacheprovider --durations=0 -rA -v > "$work/pytest.txt" 2>&1
  rc=$?
  echo "VQVAE_FAST=0 pytest: rc=$rc in $(( $(date +%s) - tests_start )) s; $(tail -1 "$work/pytest.txt")"
else
  for chapter in ${chapters//,/ }; do
    case "$chapter" in */*) notebook="$chapter.ipynb" ;; *) notebook="chapters/$chapter.ipynb" ;; esac
    if [ ! -f "$notebook" ]; then
      echo "no notebook $notebook in $(git log --oneline -1)" >&2; rc=2; break
    fi
    start=$(date +%s)
    log="$work/pytest-${chapter//\//-}.txt"
    VQVAE_FAST=0 pytest -n 0 -m "" -p no:cacheprovider --durations=0 -rA -v "$notebook" > "$log" 2>&1
    status=$?
    seconds=$(( $(date +%s) - start ))
    result=$(tail -1 "$log")
    printf '%s\t%s\t%s s\t%s\t%s\t%s steps/s\n' "$(date -u +%FT%TZ)" "$chapter" "$seconds" "rc=$status" "$result" "$speed" \
      >> "$work/chapters.tsv"
    echo "$chapter: rc=$status in $seconds s; $result"
    [ "$status" = 0 ] || rc=$status
  done
fi
[ -n "$burner" ] && kill "$burner"
exit $rc
