#!/usr/bin/env bash
# Builds the images with whichever engine this machine has:
#   gtmsmd   docker/Dockerfile          -> ${GTMSM_IMAGE:-gtmsm/gtmsmd:latest}
#   haproxy  deploy/haproxy/Dockerfile  -> ${GTMSM_HAPROXY_IMAGE:-gtmsm/haproxy:latest}
# each also tagged with the project's version (CMakeLists.txt: gtmsm/gtmsmd:0.1.0),
# the tag the manifests of deploy/ pin (never :latest there).
#
# Usage: docker/build.sh [gtmsmd] [haproxy]      (no argument: both)
#
# A running Docker engine is used as is (`docker build`, base image from the
# registry). Otherwise podman (as root): docker/podman/make-base-image.sh makes
# debian:bookworm-slim with debootstrap once (cached in podman's storage), and
# the build runs with host networking (apt in the build reaches the host's
# Debian mirror) and never pulls. GTMSM_ENGINE=docker|podman forces a choice.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
GTMSM_IMAGE=${GTMSM_IMAGE:-gtmsm/gtmsmd:latest}
GTMSM_HAPROXY_IMAGE=${GTMSM_HAPROXY_IMAGE:-gtmsm/haproxy:latest}
VERSION=$(sed -n 's/^project(gtmsm VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")

engine=${GTMSM_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  else
    echo "build.sh: neither a running Docker engine nor podman (scripts/setup.sh installs podman)" >&2
    exit 127
  fi
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gtmsmd haproxy)

build() {  # tag dockerfile context
  local t0=$SECONDS pinned="${1%:*}:$VERSION"
  echo "build.sh: $engine: $1 and $pinned from ${2#"$root"/}"
  case $engine in
    docker) docker build -f "$2" -t "$1" -t "$pinned" "$3" ;;
    podman) "$here/podman/podman.sh" build --network host --pull=never --format docker --layers \
              -f "$2" -t "$1" -t "$pinned" "$3" ;;
    *) echo "build.sh: unknown engine '$engine'" >&2; exit 2 ;;
  esac
  echo "build.sh: $1 built in $((SECONDS - t0)) s"
}

[ "$engine" = podman ] && "$here/podman/make-base-image.sh"
for t in "${targets[@]}"; do
  case $t in
    gtmsmd) build "$GTMSM_IMAGE" "$here/Dockerfile" "$root" ;;
    haproxy) build "$GTMSM_HAPROXY_IMAGE" "$root/deploy/haproxy/Dockerfile" "$root/deploy/haproxy" ;;
    *) echo "build.sh: unknown image '$t' (gtmsmd, haproxy)" >&2; exit 2 ;;
  esac
done
