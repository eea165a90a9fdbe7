#!/usr/bin/env bash
# Installs the Debian packages the project needs. Idempotent: packages already
# present are skipped, so a second run costs a dpkg query and nothing else.
#   scripts/setup.sh         everything: build, tests, fuzzing, load balancer,
#                            browser tests, benchmarks (scripts/test.sh)
#   scripts/setup.sh serve   what building and serving gtmsmd needs, no more
#                            (scripts/run.sh): no compilers for fuzzing, no
#                            Chromium, no podman
set -euo pipefail

profile=${1:-all}
case "$profile" in
  all | serve) ;;
  *) echo "usage: scripts/setup.sh [all|serve]" >&2; exit 2 ;;
esac

SERVE_PACKAGES=(
  # build gtmsmd and gtmsm
  build-essential cmake pkg-config ca-certificates
  libmicrohttpd-dev libjansson-dev libopenblas-dev libsqlite3-dev libpng-dev zlib1g-dev libdeflate-dev
  # gtmsmd's PostgreSQL store backend (--store postgresql://...)
  libpq-dev
  # the quick start's readiness check (README: curl .../v2/health/ready)
  curl
)

PACKAGES=(
  "${SERVE_PACKAGES[@]}" git
  # tests, sanitizers, fuzzing
  clang libclang-rt-14-dev python3 python3-skimage-lib curl sqlite3
  # service, deployment, benchmarks
  haproxy wrk
  # gtmsmd tests: parse proto/openapi.yaml
  python3-yaml
  # the PostgreSQL store's tests: throwaway servers (tests/lib/pglib.py runs Debian's server
  # binaries itself; the package's default cluster is not used)
  postgresql-15
  # the Python client's package test: an offline pip install into a venv, numpy arrays, mypy
  python3-venv python3-setuptools python3-numpy mypy
  # container deployment test: podman (as root, runc), the base image made with debootstrap
  podman runc debootstrap
  # web viewer test (tests/browser): Debian's Chromium, driven by playwright-core from npm.
  # Node.js >= 20 with npm is the machine's own (its nodejs package provides npm; Debian's
  # npm package conflicts with it, so it is not listed here)
  chromium
)

[ "$profile" = serve ] && PACKAGES=("${SERVE_PACKAGES[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Installing postgresql-15 creates the cluster 15/main and, where services
  # run, starts it: the tests start their own servers, so the one installed
  # here is stopped and set to start by hand only. A cluster that was there
  # before this run is not ours and is left alone.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && [ -d /etc/postgresql/15/main ]; then
    $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
    echo manual | $SUDO tee /etc/postgresql/15/main/start.conf >/dev/null
  fi
else
  echo "setup: all ${#PACKAGES[@]} packages present ($profile)"
fi
