#!/usr/bin/env bash
# Peak resident memory (RSS) of executing chapters, one fresh kernel each (issue 13, item 6).
#   bash benchmarks/memory.sh fast                      # every chapter, fast profile, in order, one cache
#   bash benchmarks/memory.sh full 06_prior 07_bits_per_dim   # named chapters, full profile
# GNU time's %M is the largest RSS of nbconvert and the processes it waited for, the kernel
# included: the peak of one process, not a sum. Nothing is written into chapters/.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:?usage: memory.sh fast|full [chapter ...]}
shift
chapters=("$@")
if [ ${#chapters[@]} -eq 0 ]; then
  mapfile -t chapters < <(ls chapters/*.ipynb | xargs -n1 basename | sed 's/\.ipynb$//')
fi
export VQVAE_FAST=$([ "$profile" = fast ] && echo 1 || echo 0)
out=$(mktemp -d)
printf '%-26s %10s %8s\n' chapter "peak MiB" seconds
for ch in "${chapters[@]}"; do
  /usr/bin/time -f "%M %e" -o "$out/$ch.time" \
    jupyter nbconvert --to notebook --execute "chapters/$ch.ipynb" --output "$out/$ch.ipynb" \
    --ExecutePreprocessor.timeout=3600 >/dev/null 2>&1
  read -r kib seconds < "$out/$ch.time"
  printf '%-26s %10.0f %8.0f\n' "$ch" "$((kib / 1024))" "$seconds"
done
