#!/usr/bin/env bash
# deploy/compose.yaml for machines with podman and no Docker engine (as root):
# three gtmsmd containers (gtmsm-1..3, each with its own volume) and HAProxy
# (gtmsm-lb), with host networking on loopback: HAProxy on 127.0.0.1:8080,
# the replicas on 127.0.0.1:8081-8083 (GTMSM_LB_PORT moves them all).
#
#   deploy/podman-up.sh          build the images if missing, start (or restart) everything
#   deploy/podman-up.sh down     stop and remove the containers (the volumes stay)
#   deploy/podman-up.sh purge    ... and remove the volumes too (every session is lost)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PODMAN="$root/docker/podman/podman.sh"
IMAGE=${GTMSM_IMAGE:-gtmsm/gtmsmd:latest}
HAPROXY_IMAGE=${GTMSM_HAPROXY_IMAGE:-gtmsm/haproxy:latest}
LB_PORT=${GTMSM_LB_PORT:-8080}
NAMES=(gtmsm-1 gtmsm-2 gtmsm-3)

down() { "$PODMAN" rm -f -t 40 gtmsm-lb "${NAMES[@]}" >/dev/null 2>&1 || true; }

case "${1:-up}" in
  down) down; echo "podman-up: stopped (volumes ${NAMES[*]} kept)"; exit 0 ;;
  purge) down; "$PODMAN" volume rm -f "${NAMES[@]}" >/dev/null 2>&1 || true; echo "podman-up: removed"; exit 0 ;;
  up) ;;
  *) echo "usage: $0 [up|down|purge]" >&2; exit 2 ;;
esac

missing=()
"$PODMAN" image exists "$IMAGE" || missing+=(gtmsmd)
"$PODMAN" image exists "$HAPROXY_IMAGE" || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] || GTMSM_ENGINE=podman "$root/docker/build.sh" "${missing[@]}"

down
lb_env=(-e "GTMSM_LB_BIND=127.0.0.1:$LB_PORT" -e "GTMSM_LB_STATS=127.0.0.1:$((LB_PORT + 324))")
for i in 1 2 3; do
  name=gtmsm-$i port=$((LB_PORT + i))
  "$PODMAN" volume exists "$name" || "$PODMAN" volume create "$name" >/dev/null
  # Without systemd podman cannot schedule the image's HEALTHCHECK and says so on
  # every start (`podman healthcheck run gtmsm-1` still runs it; HAProxy checks anyway).
  "$PODMAN" run -d --name "$name" --network host -v "$name:/var/lib/gtmsm" \
    -e "GTMSM_LISTEN=127.0.0.1:$port" -e "GTMSM_SERVED_BY=$name" "$IMAGE" \
    2> >(grep -v 'unable to get systemd connection' >&2) >/dev/null
  lb_env+=(-e "GTMSM_REPLICA_$i=127.0.0.1:$port")
done
"$PODMAN" run -d --name gtmsm-lb --network host "${lb_env[@]}" "$HAPROXY_IMAGE" >/dev/null

for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$LB_PORT/v2/health/ready" && break
  sleep 0.2
done
if curl -fs -o /dev/null "http://127.0.0.1:$LB_PORT/v2/health/ready"; then
  echo "podman-up: ready on http://127.0.0.1:$LB_PORT (replicas on $((LB_PORT + 1))-$((LB_PORT + 3)), HAProxy stats on $((LB_PORT + 324)))"
else
  echo "podman-up: not ready; see: docker/podman/podman.sh logs gtmsm-1 (or gtmsm-lb)" >&2
  exit 1
fi
