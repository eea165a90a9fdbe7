#!/usr/bin/env bash
# podman with the project's containers.conf (see containers.conf.in next to
# this file): writes it with this machine's hard open-file limit, exports
# CONTAINERS_CONF and runs podman with the given arguments. Use it as you
# would use podman:   docker/podman/podman.sh ps -a
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v podman >/dev/null || {
  echo "podman.sh: podman is not installed (scripts/setup.sh installs podman, runc, debootstrap)" >&2
  exit 127
}
dir=${GTMSM_PODMAN_DIR:-${TMPDIR:-/tmp}/gtmsm-podman-$(id -u)}
mkdir -p "$dir"
conf="$dir/containers.conf"
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
sed "s/@NOFILE@/$nofile/g" "$here/containers.conf.in" > "$conf.tmp.$$"
mv -f "$conf.tmp.$$" "$conf"
export CONTAINERS_CONF="$conf"
exec podman "$@"
