#!/usr/bin/env bash
# The command that trains models/maze3d_rotate.gtm: the paper's rotating agent
# (section 4.2.1): windows of 49 consecutive frames (33 memorized + 16
# predicted) of 80-step rotate episodes over procedural rooms and textures,
# rotation transition (eq. 5), periodic DND keys, the learned view-combining
# prior, a convolutional VAE with latent 64, K = 4. B (the displacement per
# action, which fixes how far one turn moves s3) learns fast for 500 updates
# and then slowly: at 5x the learning rate Adam's steps of ~5e-3 rad kept the
# turn jittering by more than a full circle allows (40 turns must add 2 pi).
# Checkpoints every 5 minutes into runs/maze3d_rotate; after an interruption the same command with
# --resume continues exactly where the checkpoint left off:
#   models/train_maze3d_rotate.sh --resume
# On a fresh clone, --resume starts from the committed checkpoint
# models/checkpoints/maze3d_rotate.bin (copied into runs/ first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --resume "* && ! -e runs/maze3d_rotate/checkpoint.bin && -e models/checkpoints/maze3d_rotate.bin ]]; then
  mkdir -p runs/maze3d_rotate
  cp models/checkpoints/maze3d_rotate.bin runs/maze3d_rotate/checkpoint.bin
  cp models/maze3d_rotate_train.csv runs/maze3d_rotate/train.csv
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
exec ./build/tools/gtmsm train --env maze3d --scenario rotate --size 32 --episode 80 \
  --memorize 33 --predict 16 --vae conv --channels 32 --latent 64 \
  --transition rot3d --keymap periodic --prior mlp --prior-hidden 256 --k 4 --delta 1e-3 \
  --curriculum 1500 --k-start 4 --delta-start 0.1 --still 0 --wallfree 0 --aux 0.5 \
  --ssm-lr-mult 5 --b-lr-steps 500 --b-lr-after 0.05 --steps 2000 --anneal 2000 --lr 1e-3 --lr-final 1e-4 \
  --batch 8 \
  --seed 1 --threads 2 --ckpt-every 240 --log-every 50 \
  --out runs/maze3d_rotate --model-out runs/maze3d_rotate/maze3d_rotate.gtm "$@"
