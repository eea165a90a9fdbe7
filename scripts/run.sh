#!/usr/bin/env bash
# Sets up, builds and runs the main job: gtmsmd serving the shipped models
# (models/*.gtm: imagenav, maze3d_rotate) on 127.0.0.1:8080, with its SQLite
# file in data/.
# Flags and GTMSM_* variables pass through: scripts/run.sh --listen :9000
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh serve # build and serve only: no browser, container or fuzzing tools
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
mkdir -p data
exec ./build/server/gtmsmd "$@"
