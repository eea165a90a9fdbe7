#!/usr/bin/env bash
# Runs every benchmark on a Release build and prints the tables recorded in
# docs/BENCHMARKS.md. Usage: bench/run.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for b in bench_nn bench_model bench_maze3d bench_dnd bench_predict3d; do
  echo
  echo "## $b"
  if [ "$b" = bench_nn ]; then "$B/bench/$b" --threads 1; else "$B/bench/$b"; fi
done
# The kernel selection's effect: the layer table again on OpenBLAS's SSE3
# fallback, the core Debian's 0.3.21 picks on CPUs newer than its table
# (a machine that sets OPENBLAS_CORETYPE itself keeps its choice).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  echo
  echo "## bench_nn on the fallback core (OPENBLAS_CORETYPE=Prescott)"
  OPENBLAS_CORETYPE=Prescott "$B/bench/bench_nn" --threads 1
fi
