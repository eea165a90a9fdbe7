#!/usr/bin/env bash
# Installs every Debian package the project needs (build, tests, fuzzing, load
# balancer, browser tests, benchmarks). Idempotent: packages already present are
# skipped, so a second run costs a dpkg query and nothing else.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config git ca-certificates
  libmicrohttpd-dev libjansson-dev libopenblas-dev libsqlite3-dev libpng-dev zlib1g-dev
  # tests, sanitizers, fuzzing
  clang libclang-rt-14-dev python3 python3-skimage-lib curl sqlite3
  # service, deployment, benchmarks
  haproxy wrk
  # gtmsmd tests: parse proto/openapi.yaml
  python3-yaml
  # the PostgreSQL store backend (libpq) and its tests' throwaway servers (tests/lib/pglib.py
  # runs Debian's server binaries itself; the package's default cluster is not used)
  libpq-dev postgresql-15
  # container deployment test: podman (as root, runc), the base image made with debootstrap
  podman runc debootstrap
  # web viewer test (tests/browser): Debian's Chromium, driven by playwright-core from npm.
  # Node.js >= 20 with npm is the machine's own (its nodejs package provides npm; Debian's
  # npm package conflicts with it, so it is not listed here)
  chromium
)

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
  echo "setup: all ${#PACKAGES[@]} packages present"
fi
