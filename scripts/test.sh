#!/usr/bin/env bash
# Sets up, builds and runs every test: the Release build with -Werror (all
# ctest labels), then the unit tests again under AddressSanitizer and
# UndefinedBehaviorSanitizer. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGTMSM_WERROR=ON
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure -j"$JOBS"
# The unit tests once more on OpenBLAS's SSE3 fallback kernels, so both the
# selected and the fallback path stay correct (never where the machine sets
# its own OPENBLAS_CORETYPE: that choice is kept, see core/nn/blas_core.h).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  OPENBLAS_CORETYPE=Prescott ctest --test-dir build --output-on-failure -j"$JOBS" -L unit
fi

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGTMSM_WERROR=ON \
  -DGTMSM_SANITIZE=address,undefined
cmake --build build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" -L unit

# libFuzzer: the daemon's NDJSON/JSON request parsing and PNG decoding, 20 s per target
./tests/fuzz/run.sh build-fuzz 20
