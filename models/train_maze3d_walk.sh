#!/usr/bin/env bash
# The command that trains models/maze3d_walk.gtm: the paper's walking agent
# (section 4.2.2): windows of 182 consecutive frames (150 memorized + 32
# predicted) of 200-step walk episodes over procedural rooms, the walking
# transition with momentum (Delta_t = beta * tanh(sigmoid(alpha) * Delta_{t-1}
# + B a_t)), periodic DND keys, the learned view-combining prior, a
# convolutional VAE with latent 64, K = 4. Schedule and why:
# - the transition learns from the regression of Delta on what the agent felt
#   (--disp-weight 1000: Adam scales each parameter's step, so the weight only
#   decides how much the regression outweighs the noisy retrieval gradient on
#   B, alpha, beta; at 1000 it dominates);
# - B, alpha, beta learn fast for 500 updates and then at 1/20 (the rotate
#   lesson: Adam's steps at 5x the learning rate jitter the per-step
#   displacement, and 150 steps multiply every error);
# - the memorized part grows from 48 to 150 steps over the first 1200 updates:
#   the early updates, when the VAE is still learning to draw, cost a third
#   less, and the prior meets long memories once its keys are right.
# Checkpoints every 4 minutes into runs/maze3d_walk; after an interruption the same command with
# --resume continues exactly where the checkpoint left off:
#   models/train_maze3d_walk.sh --resume
# On a fresh clone, --resume starts from the committed checkpoint
# models/checkpoints/maze3d_walk.bin (copied into runs/ first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --resume "* && ! -e runs/maze3d_walk/checkpoint.bin && -e models/checkpoints/maze3d_walk.bin ]]; then
  mkdir -p runs/maze3d_walk
  cp models/checkpoints/maze3d_walk.bin runs/maze3d_walk/checkpoint.bin
  cp models/maze3d_walk_train.csv runs/maze3d_walk/train.csv
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
exec ./build/tools/gtmsm train --env maze3d --scenario walk --size 32 --episode 200 \
  --memorize 150 --memorize-start 48 --predict 32 --vae conv --channels 32 --latent 64 \
  --transition walk3d --keymap periodic --prior mlp --prior-hidden 256 --k 4 --delta 1e-3 \
  --curriculum 1200 --k-start 4 --delta-start 0.1 --still 0 --wallfree 0 --aux 0.5 --disp-weight 1000 \
  --ssm-lr-mult 5 --b-lr-steps 500 --b-lr-after 0.05 --steps 2500 --anneal 2500 --lr 1e-3 --lr-final 1e-4 \
  --batch 8 \
  --seed 1 --threads 2 --ckpt-every 240 --log-every 25 \
  --out runs/maze3d_walk --model-out runs/maze3d_walk/maze3d_walk.gtm "$@"
