#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into BUILD (default build-fuzz) and
# runs each for SECONDS (default 20) on a scratch copy of its seed corpus
# (tests/fuzz/corpus is never written). Exits non-zero on any finding; crash
# inputs are left in BUILD/fuzz-findings.
#   tests/fuzz/run.sh [BUILD] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-20}
CC=clang cmake -S . -B "$BUILD" -DGTMSM_FUZZ=ON -DGTMSM_SANITIZE=address,undefined \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_ndjson fuzz_json fuzz_png
mkdir -p "$BUILD/fuzz-findings"
for t in fuzz_ndjson fuzz_json fuzz_png; do
  work=$(mktemp -d)
  cp -r tests/fuzz/corpus/$t/. "$work/"
  echo "== $t: ${SECONDS_EACH}s"
  status=0
  "$BUILD/server/fuzz/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-findings/$t-" "$work" \
    >"$BUILD/fuzz-findings/$t.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" \
    "$BUILD/fuzz-findings/$t.log" || true
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then echo "$t: finding (exit $status), see $BUILD/fuzz-findings/$t.log"; exit 1; fi
done
echo "fuzz: no findings"
