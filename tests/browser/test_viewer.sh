#!/usr/bin/env bash
# The web viewer in headless Chromium: a real gtmsmd (real port, real SQLite
# file in a temporary folder) serving a model, and tests/browser/viewer.mjs
# driving Debian's /usr/bin/chromium through playwright-core: load the page,
# pick the model and a demo world, memorize, drive with the arrow keys and a
# button, check that predicted frames appear and change and that a PSNR is
# shown, check that errors are shown. The screenshot is a test artifact:
#   $GTMSM_BIN/artifacts/browser/viewer.png
#
# Environment: GTMSM_BIN (build dir, default build), GTMSM_SRC (source dir,
# default .), GTMSM_VIEWER_MODEL (a .gtm to serve; default: a tiny model
# trained here in a second), GTMSM_VIEWER_ARGS (extra viewer.mjs arguments,
# e.g. "--world photo --photo 13 --steps 256"), GTMSM_VIEWER_SCREENSHOT (where
# to save the screenshot instead). playwright-core comes from the committed
# package-lock.json (npm ci into tests/browser/node_modules, once).
set -euo pipefail

SRC=$(cd "${GTMSM_SRC:-.}" && pwd)
BIN=$(cd "${GTMSM_BIN:-build}" && pwd)
HERE="$SRC/tests/browser"
GTMSMD="$BIN/server/gtmsmd"
GTMSM="$BIN/tools/gtmsm"
ART="$BIN/artifacts/browser"
SHOT="${GTMSM_VIEWER_SCREENSHOT:-$ART/viewer.png}"
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
echo "gtmsmd on port $port serving $model"

rc=0
# shellcheck disable=SC2086 # GTMSM_VIEWER_ARGS is a list of arguments
timeout 120 node "$HERE/viewer.mjs" --url "http://127.0.0.1:$port/" --model "$model" \
  --screenshot "$SHOT" ${GTMSM_VIEWER_ARGS:-} || rc=$?

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=""
cp "$tmp/gtmsmd.log" "$ART/gtmsmd.log"
[ "$code" -eq 0 ] || { echo "FAIL: gtmsmd exited $code on SIGTERM" >&2; rc=1; }
grep -q '"route":"web_index","status":200' "$tmp/gtmsmd.log" || { echo "FAIL: no GET / in the access log" >&2; rc=1; }
grep -q '"route":"demo_episode","status":200' "$tmp/gtmsmd.log" || { echo "FAIL: no demo episode in the access log" >&2; rc=1; }
if grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$tmp/gtmsmd.log"; then
  grep -E -A20 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$tmp/gtmsmd.log" >&2
  echo "FAIL: sanitizer report from gtmsmd" >&2
  rc=1
fi
[ "$rc" -eq 0 ] && echo "test_viewer: ok (screenshot $SHOT)" || echo "test_viewer: FAILED (daemon log $ART/gtmsmd.log)" >&2
exit "$rc"
