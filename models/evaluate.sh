#!/usr/bin/env bash
# Evaluates a model on the held-out photo worlds with the paper's test protocol
# (256 memorized, 256 predicted) and writes the figures and the JSON summary
# quoted in its model card. Usage: models/evaluate.sh [model.gtm] [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/imagenav.gtm}
OUT=${2:-models/imagenav_eval}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
mkdir -p "$OUT"
./build/tools/gtmsm eval --model "$MODEL" --env imagenav --images data/worlds/test \
  --episodes 100 --seed 1000 --memorize 256 --predict 256 --strips 3 --out "$OUT" --json \
  | tee "$OUT/summary.json"
