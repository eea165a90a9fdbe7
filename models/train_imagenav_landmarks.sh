#!/usr/bin/env bash
# The command for the landmark model of appendix D.1 (image navigation with
# obstacles; not trained yet): the 2-D recipe of train_imagenav.sh with 8
# random obstacle cells per episode, landmark inference (--landmarks), the
# wall gate regressed on whether each move went through (--disp-weight 1) and
# a transition wide enough for failed moves (--trans-std 0.1; docs/MODEL.md
# says why). Checkpoints every 2 minutes into runs/imagenav_landmarks; after
# an interruption the same command with --resume continues exactly:
#   models/train_imagenav_landmarks.sh --resume
# Evaluate with: gtmsm eval --model runs/imagenav_landmarks/imagenav_landmarks.gtm
#   --env imagenav --obstacles 8 --images data/worlds/test --json
# On a fresh clone, --resume starts from the committed checkpoint
# models/checkpoints/imagenav_landmarks.bin (copied into runs/ first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --resume "* && ! -e runs/imagenav_landmarks/checkpoint.bin && -e models/checkpoints/imagenav_landmarks.bin ]]; then
  mkdir -p runs/imagenav_landmarks
  cp models/checkpoints/imagenav_landmarks.bin runs/imagenav_landmarks/checkpoint.bin
  cp models/imagenav_landmarks_train.csv runs/imagenav_landmarks/train.csv
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
exec ./build/tools/gtmsm train --out runs/imagenav_landmarks --worlds data/worlds/train --photo-frac 0.5 \
  --obstacles 8 --landmarks --landmark-k 4 --landmark-hidden 16 --disp-weight 1 --trans-std 0.1 \
  --steps 15000 --anneal 15000 --lr 1e-3 --lr-final 1e-4 --batch 16 --memorize 256 --predict 32 \
  --wallfree 1500 --curriculum 4000 --k-start 24 --delta-start 1 --still 1 --aux 0.5 \
  --ssm-lr-mult 5 --b-lr-after 0.1 --seed 1 --threads 2 --ckpt-every 120 --log-every 100 \
  --model-out runs/imagenav_landmarks/imagenav_landmarks.gtm "$@"
