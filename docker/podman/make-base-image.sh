#!/usr/bin/env bash
# Makes docker.io/library/debian:bookworm-slim in local podman storage without
# any registry: debootstrap --variant=minbase bookworm, then `podman import`.
# docker/Dockerfile and deploy/haproxy/Dockerfile say FROM debian:bookworm-slim;
# with a Docker engine and a registry that is the official image, here it is
# this one. Cached: when the image exists already, nothing is done (--force
# rebuilds it).
#
# Its apt sources point at the mirror this machine uses (read from the host's
# /etc/apt/sources.list*; GTMSM_DEBIAN_MIRROR and GTMSM_DEBIAN_SECURITY
# override), and it inherits the host's Acquire::Check-Valid-Until=false when
# the host sets it (a snapshot mirror), so `apt-get update` inside a build with
# host networking (`podman build --network host`) reaches the same archive.
#
# Usage: docker/podman/make-base-image.sh [--force]        (as root)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PODMAN="$here/podman.sh"
IMAGE=${GTMSM_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}
SUITE=bookworm

force=0
[ "${1:-}" = "--force" ] && force=1

[ "$(id -u)" -eq 0 ] || { echo "make-base-image: run as root (debootstrap, rootful podman)" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  echo "make-base-image: debootstrap is not installed (scripts/setup.sh installs it)" >&2
  exit 127
}

lockdir=${GTMSM_PODMAN_DIR:-${TMPDIR:-/tmp}/gtmsm-podman-$(id -u)}
mkdir -p "$lockdir"
exec 9>"$lockdir/base-image.lock"
flock 9   # two builds at once wait for one debootstrap

if [ $force -eq 0 ] && "$PODMAN" image exists "$IMAGE"; then
  echo "make-base-image: $IMAGE present ($("$PODMAN" image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-12)), reusing it"
  exit 0
fi

# The host's Debian mirror: the first URI of a source that serves $SUITE
# (deb822 .sources or one-line .list), then the one serving $SUITE-security.
host_uri() {  # $1 = suite
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$1" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); uri = a[2] }
          if ($i ~ /^Types:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
          if ($i ~ /^Suites:/) { n = split($i, a, /[ \t]+/); for (j = 2; j <= n; j++) if (a[j] == s) ok = 1 }
        }
        if (ok && deb && uri != "") { print uri; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$1" '$1 == "deb" { u = ($2 ~ /^\[/) ? 3 : 2; if ($(u + 1) == s) { print $u; exit } }' "$f"
  done
}
MIRROR=${GTMSM_DEBIAN_MIRROR:-$(host_uri "$SUITE" | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${GTMSM_DEBIAN_SECURITY:-$(host_uri "$SUITE-security" | head -n1)}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}

work=$(mktemp -d /var/tmp/gtmsm-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "make-base-image: debootstrap --variant=minbase $SUITE from $MIRROR"
start=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  echo "make-base-image: debootstrap failed" >&2
  exit 1
}

# apt sources as in the official image (deb822), on the host's mirror.
rm -f "$rootfs/etc/apt/sources.list"
cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
if apt-config dump 2>/dev/null | grep -qi '^Acquire::Check-Valid-Until "false"'; then
  # The host's mirror is a snapshot whose Release files have expired.
  echo 'Acquire::Check-Valid-Until "false";' > "$rootfs/etc/apt/apt.conf.d/99gtmsm-host-mirror"
fi

# What the official -slim image does: no docs, man pages or locales from
# later installs; no apt caches in layers.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
       "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
: > "$rootfs/etc/hostname"

echo "make-base-image: importing as $IMAGE"
tar --numeric-owner -C "$rootfs" -c . |
  "$PODMAN" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$IMAGE" > /dev/null
echo "make-base-image: $IMAGE made in $(( $(date +%s) - start )) s ($("$PODMAN" image inspect -f '{{.Size}}' "$IMAGE") bytes)"
