#!/usr/bin/env bash
# Evaluates the landmark model (and, beside it, the shipped actions-only model
# as the baseline) on the held-out photo worlds with the paper's protocol (256
# memorized, 256 predicted, 100 episodes, seed 1000) at 0, 3 and 8 obstacle
# cells, then beyond the paper: random start cells, and obstacles the
# prediction phase's explorer walks into; and 8 obstacles on procedural worlds
# (no --images). Writes OUT/<case>/ (summary.json,
# psnr.csv/png, strips, maps) and OUT/summary.md, the table of the model card.
# Usage: models/evaluate_imagenav_landmark.sh [model.gtm] [out-dir] [baseline.gtm]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/imagenav_landmark.gtm}
OUT=${2:-models/imagenav_landmark_eval}
BASE=${3:-models/imagenav.gtm}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
mkdir -p "$OUT"
cases=("obstacles_0:--obstacles 0" "obstacles_3:--obstacles 3" "obstacles_8:--obstacles 8"
       "random_start_0:--obstacles 0 --random-start" "random_start_8:--obstacles 8 --random-start"
       "in_prediction_8:--obstacles 8 --obstacles-in-prediction" "procedural_8:--obstacles 8")
for c in "${cases[@]}"; do
  name=${c%%:*} flags=${c#*:}
  for who in model baseline; do
    m=$MODEL dir=$OUT/$name
    if [[ $who == baseline ]]; then m=$BASE dir=$OUT/baseline/$name; fi
    mkdir -p "$dir"
    echo "== $who $name ($flags)" >&2
    worlds=(--images data/worlds/test)
    [[ $name == procedural_* ]] && worlds=() # procedural worlds from the episodes' seeds
    # shellcheck disable=SC2086
    ./build/tools/gtmsm eval --model "$m" --env imagenav "${worlds[@]}" --episodes 100 --seed 1000 \
      --memorize 256 --predict 256 --strips 3 $flags --out "$dir" --json >"$dir/summary.json"
  done
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = ["obstacles_0", "obstacles_3", "obstacles_8", "random_start_0", "random_start_8", "in_prediction_8",
        "procedural_8"]
def load(p):
    with open(p) as f:
        return json.load(f)
lines = ["| case | model all | baseline all | model visited | oracle visited | baseline visited | model position final | baseline position final |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    m, b = load(os.path.join(out, r, "summary.json")), load(os.path.join(out, "baseline", r, "summary.json"))
    pm, pb = m["psnr"], b["psnr"]
    lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f | %.3f |" % (
        r, pm["model"]["all"], pb["model"]["all"], pm["model"]["visited"], pm["oracle"]["visited"],
        pb["model"]["visited"], m["position_error"]["final"], b["position_error"]["final"]))
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
