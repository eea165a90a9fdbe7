#!/usr/bin/env bash
# The web viewer in headless Chromium: a real gtmsmd (real port, real SQLite
# file in a temporary folder) serving a 2-D (imagenav) and a 3-D (maze3d)
# model, and two scripts driving Debian's /usr/bin/chromium through
# playwright-core. tests/browser/viewer.mjs, the 2-D mode: load the page, pick
# the model and a demo world, memorize, drive with the arrow keys and a
# button, check that predicted frames appear and change and that a PSNR is
# shown, check that errors are shown. tests/browser/viewer_maze3d.mjs, the
# first-person mode: pick the maze3d model, memorize, turn with the keys and a
# button, check the predicted and true frames, the PSNR and the heading dial,
# errors, and the way back to the 2-D mode. With models/imagenav_landmark.gtm,
# viewer.mjs once more on it with 8 obstacles: drawn, never entered, and the
# learned path (the stored states) within 0.25 cells rms of the true one.
# The screenshots are test artifacts:
#   $GTMSM_BIN/artifacts/browser/viewer.png, viewer_maze3d.png, viewer_landmark.png
#
# Environment: GTMSM_BIN (build dir, default build), GTMSM_SRC (source dir,
# default .), GTMSM_VIEWER_MODEL (a 2-D .gtm to serve; default: a tiny model
# trained here in a second), GTMSM_VIEWER_MAZE3D_MODEL (a maze3d .gtm; default
# models/maze3d_rotate.gtm when it exists, else a tiny untrained one trained
# here in a second), GTMSM_VIEWER_ARGS and GTMSM_VIEWER_MAZE3D_ARGS (extra
# arguments of the two scripts, e.g. "--world photo --photo 13 --steps 256"),
# GTMSM_VIEWER_SCREENSHOT and GTMSM_VIEWER_MAZE3D_SCREENSHOT (where to save
# the screenshots instead). playwright-core comes from the committed
# package-lock.json (npm ci into tests/browser/node_modules, once).
set -euo pipefail

SRC=$(cd "${GTMSM_SRC:-.}" && pwd)
BIN=$(cd "${GTMSM_BIN:-build}" && pwd)
HERE="$SRC/tests/browser"
GTMSMD="$BIN/server/gtmsmd"
GTMSM="$BIN/tools/gtmsm"
ART="$BIN/artifacts/browser"
SHOT="${GTMSM_VIEWER_SCREENSHOT:-$ART/viewer.png}"
SHOT3D="${GTMSM_VIEWER_MAZE3D_SCREENSHOT:-$ART/viewer_maze3d.png}"
CHROMIUM=/usr/bin/chromium

fail() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$GTMSMD" ] || fail "no $GTMSMD: build first (cmake --build $BIN)"
[ -x "$CHROMIUM" ] || fail "no $CHROMIUM: install Debian's chromium (scripts/setup.sh)"
command -v node >/dev/null || fail "no node: install Node.js >= 20 with npm (scripts/setup.sh)"
command -v npm >/dev/null || fail "no npm: install npm"

# playwright-core, exactly as locked; npm ci only when node_modules differs
want=$(node -p "require('$HERE/package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('$HERE/node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [ "$want" != "$have" ]; then
  echo "npm ci: playwright-core $want"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in $HERE failed"
fi

tmp=$(mktemp -d /tmp/gtmsm-viewer.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/models" "$ART"

if [ -n "${GTMSM_VIEWER_MODEL:-}" ]; then
  model=$(basename "$GTMSM_VIEWER_MODEL" .gtm)
  cp "$GTMSM_VIEWER_MODEL" "$tmp/models/$model.gtm"
else
  model=tiny
  "$GTMSM" train --out "$tmp/run" --steps 2 --batch 2 --memorize 24 --predict 8 --hidden 16 --latent 4 \
    --gate-hidden 8 --seed 1 --model-out "$tmp/models/tiny.gtm" >/dev/null 2>&1 || fail "training the tiny model"
fi
maze_src="${GTMSM_VIEWER_MAZE3D_MODEL:-}"
[ -z "$maze_src" ] && [ -f "$SRC/models/maze3d_rotate.gtm" ] && maze_src="$SRC/models/maze3d_rotate.gtm"
if [ -n "$maze_src" ]; then
  maze=$(basename "$maze_src" .gtm)
  cp "$maze_src" "$tmp/models/$maze.gtm"
else
  # the architecture of models/train_maze3d_rotate.sh, small and untrained
  maze=maze3d_test
  "$GTMSM" train --env maze3d --scenario rotate --episode 80 --memorize 33 --predict 16 --vae conv \
    --latent 64 --channels 8 --transition rot3d --keymap periodic --prior mlp --prior-hidden 32 --k 4 \
    --still 0 --wallfree 0 --curriculum 0 --batch 1 --threads 1 --steps 2 --out "$tmp/run-maze3d" \
    --model-out "$tmp/models/maze3d_test.gtm" >/dev/null 2>&1 || fail "training the maze3d model"
fi
[ "$maze" != "$model" ] || fail "the 2-D and the maze3d model have the same name ($model)"
landmark=""
if [ -f "$SRC/models/imagenav_landmark.gtm" ] && [ "$model" != imagenav_landmark ]; then
  landmark=imagenav_landmark
  cp "$SRC/models/imagenav_landmark.gtm" "$tmp/models/"
fi

"$GTMSMD" --models "$tmp/models" --db "$tmp/viewer.db" --listen 127.0.0.1:0 --threads 4 \
  --demo-worlds "$SRC/data/worlds/test" 2>"$tmp/gtmsmd.log" &
pid=$!
port=""
for _ in $(seq 1 200); do
  port=$(grep -o '"event":"listening".*"port":[0-9]*' "$tmp/gtmsmd.log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/gtmsmd.log" >&2; fail "gtmsmd exited"; }
  sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/gtmsmd.log" >&2; fail "gtmsmd did not start"; }
echo "gtmsmd on port $port serving $model and $maze"

rc=0
# shellcheck disable=SC2086 # GTMSM_VIEWER_ARGS is a list of arguments
timeout 300 node "$HERE/viewer.mjs" --url "http://127.0.0.1:$port/" --model "$model" \
  --screenshot "$SHOT" ${GTMSM_VIEWER_ARGS:-} || rc=$?
# the landmark model with obstacles: drawn, and its stored states follow the true path
if [ -n "$landmark" ]; then
  timeout 300 node "$HERE/viewer.mjs" --url "http://127.0.0.1:$port/" --model "$landmark" --steps 256 \
    --obstacles 8 --world photo --photo 3 --seed 5 --max-fit-rms 0.25 --no-error-check \
    --screenshot "$ART/viewer_landmark.png" || rc=$?
fi
# shellcheck disable=SC2086 # GTMSM_VIEWER_MAZE3D_ARGS is a list of arguments
timeout 600 node "$HERE/viewer_maze3d.mjs" --url "http://127.0.0.1:$port/" --model "$maze" --model2d "$model" \
  --screenshot "$SHOT3D" ${GTMSM_VIEWER_MAZE3D_ARGS:-} || rc=$?

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=""
cp "$tmp/gtmsmd.log" "$ART/gtmsmd.log"
[ "$code" -eq 0 ] || { echo "FAIL: gtmsmd exited $code on SIGTERM" >&2; rc=1; }
grep -q '"route":"web_index","status":200' "$tmp/gtmsmd.log" || { echo "FAIL: no GET / in the access log" >&2; rc=1; }
grep -q '"route":"demo_episode","status":200' "$tmp/gtmsmd.log" || { echo "FAIL: no demo episode in the access log" >&2; rc=1; }
grep -q '"route":"demo_step","status":200' "$tmp/gtmsmd.log" || { echo "FAIL: no demo step in the access log" >&2; rc=1; }
if grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$tmp/gtmsmd.log"; then
  grep -E -A20 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$tmp/gtmsmd.log" >&2
  echo "FAIL: sanitizer report from gtmsmd" >&2
  rc=1
fi
[ "$rc" -eq 0 ] && echo "test_viewer: ok (screenshots $SHOT, $SHOT3D)" || echo "test_viewer: FAILED (daemon log $ART/gtmsmd.log)" >&2
exit "$rc"
