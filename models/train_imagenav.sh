#!/usr/bin/env bash
# The command that trained models/imagenav.gtm (the trainer's defaults, spelled
# out). About 25 minutes on 2 cores; checkpoints every 2 minutes into
# runs/imagenav; after an interruption, the same command with --resume
# continues exactly where the checkpoint left off:
#   models/train_imagenav.sh --resume
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gtmsm >/dev/null
exec ./build/tools/gtmsm train --out runs/imagenav --worlds data/worlds/train --photo-frac 0.5 \
  --steps 15000 --anneal 15000 --lr 1e-3 --lr-final 1e-4 --batch 16 --memorize 256 --predict 32 \
  --wallfree 1500 --curriculum 4000 --k-start 24 --delta-start 1 --still 1 --aux 0.5 \
  --ssm-lr-mult 5 --b-lr-after 0.1 --seed 1 --threads 2 --ckpt-every 120 --log-every 100 \
  --model-out runs/imagenav/imagenav.gtm "$@"
