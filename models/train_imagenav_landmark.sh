#!/usr/bin/env bash
# The landmark model of appendix D.1 (image navigation with obstacles),
# models/imagenav_landmark.gtm (card: models/imagenav_landmark.md): the
# shipped 2-D model (models/imagenav.gtm: its VAE, displacements and wall
# gate) gains landmark inference. --init copies every tensor of the same
# name, --freeze keeps the VAE and the transition as they are, and only the
# landmark part (its gains open for an identical frame at the start) learns,
# on episodes with 8 random obstacle cells, a move felt to fail a target for
# the inferred state (--disp-weight 1). K and delta at the model's values from
# the start (no curriculum: the geometry is learned already). About 7 minutes
# on 2 cores; checkpoints every 2 minutes into runs/imagenav_landmark, and
# after an interruption the same command with --resume continues exactly:
#   models/train_imagenav_landmark.sh --resume
# Evaluate with models/evaluate_imagenav_landmark.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
exec ./build/tools/gtmsm train --out runs/imagenav_landmark --init models/imagenav.gtm \
  --worlds data/worlds/train --photo-frac 0.5 --obstacles 8 --landmarks --landmark-k 4 --landmark-hidden 16 \
  --disp-weight 1 --steps 4000 --anneal 4000 --lr 3e-4 --lr-final 1e-4 --batch 16 --memorize 256 --predict 32 \
  --freeze vae,transition --wallfree 0 --curriculum 0 --still 1 --aux 0.5 --ssm-lr-mult 1 --seed 2 --threads 2 --ckpt-every 120 \
  --log-every 100 --model-out runs/imagenav_landmark/imagenav_landmark.gtm "$@"
