#!/usr/bin/env bash
# Evaluates a rotating-agent model with the paper's protocol (memorize frames
# 0-32 of an 80-frame rotate episode, predict 33-79 from the actions alone) on
# 100 held-out episodes (seeds never used in training: the trainer's seeds are
# mixes of (seed 1, step, index), the evaluator's of (seed 1000, episode)),
# once on procedural looks and once with the bundled texture set, and writes
# the figures and JSON summaries quoted in its model card.
# Usage: models/evaluate_maze3d_rotate.sh [model.gtm] [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/maze3d_rotate.gtm}
OUT=${2:-models/maze3d_rotate_eval}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
mkdir -p "$OUT/procedural" "$OUT/textures"
./build/tools/gtmsm eval --model "$MODEL" --env maze3d --scenario rotate --episodes 100 --seed 1000 \
  --memorize 33 --predict 47 --strips 3 --out "$OUT/procedural" --json | tee "$OUT/procedural/summary.json"
./build/tools/gtmsm eval --model "$MODEL" --env maze3d --scenario rotate --textures data/textures \
  --episodes 100 --seed 1000 --memorize 33 --predict 47 --strips 3 --out "$OUT/textures" --json \
  | tee "$OUT/textures/summary.json"
