#!/usr/bin/env bash
# Builds nbpool/jupyter:latest: Debian bookworm (debootstrap minbase) with the
# Debian packages jupyter-notebook and python3-ipykernel, imported into Docker.
# Needs root (debootstrap, chroot, mount) and a reachable Debian mirror.
# Takes about 2 minutes; the image is about 500 MB.
#
# Env: NBPOOL_JUPYTER_IMAGE (default nbpool/jupyter:latest), DEBIAN_MIRROR
# (default: first non-security mirror in /etc/apt/sources.list.d/*.sources, then
# /etc/apt/sources.list, then http://deb.debian.org/debian), DOCKER_HOST is
# honoured by the docker client, TMPDIR for the work directory.
set -euo pipefail

IMAGE="${NBPOOL_JUPYTER_IMAGE:-nbpool/jupyter:latest}"
SUITE="${NBPOOL_JUPYTER_SUITE:-bookworm}"

die() { echo "images: jupyter: $*" >&2; exit 1; }
log() { echo "images: jupyter: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed (apt-get install debootstrap)"
command -v docker >/dev/null 2>&1 || die "docker client not installed"
docker version >/dev/null 2>&1 || die "docker engine not reachable; start dockerd"

find_mirror() {
  local m=""
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  shopt -s nullglob
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    m=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  shopt -u nullglob
  if [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file):/ && $i !~ /security/) { print $i; exit } }' /etc/apt/sources.list)
    if [ -n "$m" ]; then echo "$m"; return; fi
  fi
  echo "http://deb.debian.org/debian"
}
MIRROR=$(find_mirror)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-jupyter.XXXXXX")
ROOTFS="$WORK/rootfs"

cleanup() {
  local rc=$?
  set +e
  # Unmount anything still mounted below the work dir (deepest first).
  local m
  for m in $(awk -v w="$WORK" 'index($2, w"/") == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  if awk -v w="$WORK" 'index($2, w"/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "images: jupyter: mounts remain under $WORK; not removing it" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "debootstrap $SUITE (minbase) from $MIRROR into $ROOTFS"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mount -t proc proc "$ROOTFS/proc"
# Keep package scripts from starting services inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"

log "apt-get install jupyter-notebook python3-ipykernel (in chroot)"
DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$ROOTFS" \
  apt-get install -y --no-install-recommends jupyter-notebook python3-ipykernel >"$WORK/apt.log" 2>&1 ||
  { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install in chroot failed"; }

umount "$ROOTFS/proc"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
: >"$ROOTFS/etc/resolv.conf"
mkdir -p "$ROOTFS/root"

log "docker import -> $IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'WORKDIR /root' \
  -c 'EXPOSE 8888' \
  -c 'CMD ["jupyter-notebook","--ip=0.0.0.0","--port=8888","--allow-root","--no-browser"]' \
  -m "nbpool jupyter ($SUITE, Debian packages)" \
  - "$IMAGE" >/dev/null
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1000000 }'))"
