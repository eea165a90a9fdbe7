#!/usr/bin/env bash
# Evaluates a walking-agent model with the paper's protocol (section 4.2.2,
# appendix C) on held-out episodes (seeds never used in training: the
# trainer's are mixes of (seed 1, step, index), the evaluator's of (seed 1000,
# episode)) and writes the figures and JSON summaries quoted in its model card:
#   walk        memorize 150 steps, predict 150, single rooms, procedural looks
#   walk_tex    the same with the bundled texture set (looks never trained on)
#   multiroom   the same model, memorize 150, predict 300, several rooms
# Usage: models/evaluate_maze3d_walk.sh [model.gtm] [out-dir] [episodes]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/maze3d_walk.gtm}
OUT=${2:-models/maze3d_walk_eval}
EPISODES=${3:-100}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
mkdir -p "$OUT/walk" "$OUT/walk_tex" "$OUT/multiroom"
EVAL=(./build/tools/gtmsm eval --model "$MODEL" --env maze3d --episodes "$EPISODES" --seed 1000 --memorize 150
      --strips 3 --json)
"${EVAL[@]}" --scenario walk --predict 150 --out "$OUT/walk" | tee "$OUT/walk/summary.json"
"${EVAL[@]}" --scenario walk --predict 150 --textures data/textures --out "$OUT/walk_tex" \
  | tee "$OUT/walk_tex/summary.json"
"${EVAL[@]}" --scenario multiroom --predict 300 --out "$OUT/multiroom" | tee "$OUT/multiroom/summary.json"
