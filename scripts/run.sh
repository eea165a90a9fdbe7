#!/usr/bin/env bash
# Sets up, builds and runs the main job. Until the daemon (gtmsmd) lands this
# builds the CLI, prints its version and generates a sample episode preview.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
./build/tools/gtmsm --version
mkdir -p data
./build/tools/gtmsm gen --env imagenav --seed 1 --steps 64 --preview data/preview.png > data/episode.ndjson
echo "wrote data/episode.ndjson and data/preview.png"
