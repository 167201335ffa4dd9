#!/usr/bin/env bash
# Builds the locally made test images (nothing can be pulled from a registry here).
#
#   test/images/build.sh [tiny|jupyter|shiny|all]      (default: all)
#
#   nbpool/tiny:latest     FROM scratch: static tiny-notebook (tiny/server.c) + busybox.
#                          Rebuilt only when missing or when its label nbpool.source-hash
#                          differs from sha256(tiny/server.c + tiny/Dockerfile). ~2 s.
#   nbpool/jupyter:latest  Debian bookworm + jupyter-notebook (jupyter/build.sh).
#                          Built only when missing. ~1-2 min, needs root and Debian's mirror.
#   nbpool/shiny:latest    Debian bookworm + r-cran-shiny + a tiny app (shiny/build.sh).
#                          Rebuilt only when missing or when its label nbpool.source-hash
#                          differs from sha256 of the files in shiny/. ~2 min, needs root.
#
# Env: DOCKER_HOST (honoured by the docker client), NBPOOL_SKIP_JUPYTER=1 (skip Jupyter),
#      NBPOOL_REBUILD=1 (rebuild even if up to date), NBPOOL_TINY_IMAGE,
#      NBPOOL_JUPYTER_IMAGE, NBPOOL_SHINY_IMAGE (image names), NBPOOL_BUSYBOX (static busybox to copy,
#      default /bin/busybox), TMPDIR (work dirs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TINY_IMAGE="${NBPOOL_TINY_IMAGE:-nbpool/tiny:latest}"
JUPYTER_IMAGE="${NBPOOL_JUPYTER_IMAGE:-nbpool/jupyter:latest}"
SHINY_IMAGE="${NBPOOL_SHINY_IMAGE:-nbpool/shiny:latest}"
BUSYBOX="${NBPOOL_BUSYBOX:-/bin/busybox}"
WHAT="${1:-all}"

log() { echo "images: $*" >&2; }
die() { echo "images: $*" >&2; exit 1; }

case "$WHAT" in
  tiny | jupyter | shiny | all) ;;
  -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown target '$WHAT' (use tiny, jupyter, shiny or all)" ;;
esac

APT_UPDATED=0
apt_install() {
  [ "$(id -u)" = 0 ] || die "missing host package(s) $*; run as root or: sudo apt-get install -y $*"
  command -v apt-get >/dev/null 2>&1 || die "missing host package(s) $* and no apt-get to install them"
  log "installing host packages: $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    if [ "$APT_UPDATED" = 0 ]; then
      APT_UPDATED=1
      apt-get update >/dev/null 2>&1 || die "apt-get update failed"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
      die "apt-get install $* failed"
  fi
}

check_docker() {
  command -v docker >/dev/null 2>&1 || die "docker client not installed (apt-get install docker.io)"
  if ! docker version >/dev/null 2>&1; then
    if [ -n "${DOCKER_HOST:-}" ]; then
      die "docker engine not reachable at DOCKER_HOST=$DOCKER_HOST; start dockerd"
    fi
    die "docker engine not reachable; start dockerd"
  fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Prints true when the file is a dynamically linked executable.
is_dynamic() { LC_ALL=C ldd "$1" 2>&1 | grep -q '=>'; }

build_tiny() {
  local src="$HERE/tiny"
  [ -f "$src/server.c" ] && [ -f "$src/Dockerfile" ] || die "missing $src/server.c or $src/Dockerfile"
  local hash current old_id new_id
  hash=$(cat "$src/server.c" "$src/Dockerfile" | sha256sum | cut -d' ' -f1)
  current=$(docker image inspect -f '{{index .Config.Labels "nbpool.source-hash"}}' "$TINY_IMAGE" 2>/dev/null || true)
  if [ "$current" = "$hash" ] && [ "${NBPOOL_REBUILD:-0}" != 1 ]; then
    log "$TINY_IMAGE up to date (source hash ${hash:0:12})"
    return 0
  fi

  command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(find /usr/lib -name libc.a -print -quit 2>/dev/null)" ] ||
    apt_install libc6-dev
  if [ "$BUSYBOX" = /bin/busybox ] && { [ ! -x "$BUSYBOX" ] || is_dynamic "$BUSYBOX"; }; then
    apt_install busybox-static
  fi
  [ -x "$BUSYBOX" ] || die "busybox not found at $BUSYBOX"
  is_dynamic "$BUSYBOX" && die "$BUSYBOX is dynamically linked; install busybox-static"

  old_id=$(docker image inspect -f '{{.Id}}' "$TINY_IMAGE" 2>/dev/null || true)
  log "building $TINY_IMAGE ..."
  local ctx
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-tiny.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx'" EXIT
  gcc -O2 -static -pthread -s -o "$ctx/tiny-notebook" "$src/server.c" 2>"$ctx/gcc.log" ||
    { cat "$ctx/gcc.log" >&2; die "compiling tiny/server.c failed"; }
  cp "$BUSYBOX" "$ctx/busybox"
  cp "$src/Dockerfile" "$ctx/Dockerfile"
  if ! DOCKER_BUILDKIT=0 docker build --label "nbpool.source-hash=$hash" -t "$TINY_IMAGE" "$ctx" \
    >"$ctx/build.log" 2>&1; then
    tail -n 30 "$ctx/build.log" >&2
    die "docker build of $TINY_IMAGE failed"
  fi
  rm -rf "$ctx"
  trap - EXIT
  new_id=$(docker image inspect -f '{{.Id}}' "$TINY_IMAGE")
  # Drop the previous build if nothing uses it any more (fails harmlessly when in use).
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  log "built $TINY_IMAGE (source hash ${hash:0:12}, $(docker image inspect -f '{{.Size}}' "$TINY_IMAGE" |
    awk '{ printf "%.1f MB", $1 / 1000000 }'))"
}

build_jupyter() {
  if [ "${NBPOOL_SKIP_JUPYTER:-0}" = 1 ]; then
    log "skipping $JUPYTER_IMAGE (NBPOOL_SKIP_JUPYTER=1)"
    return 0
  fi
  if image_exists "$JUPYTER_IMAGE" && [ "${NBPOOL_REBUILD:-0}" != 1 ]; then
    log "$JUPYTER_IMAGE present, not rebuilding"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "building $JUPYTER_IMAGE needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  log "building $JUPYTER_IMAGE (debootstrap + apt, about 1-2 minutes) ..."
  NBPOOL_JUPYTER_IMAGE="$JUPYTER_IMAGE" bash "$HERE/jupyter/build.sh"
}

build_shiny() {
  local hash current
  hash=$(cat "$HERE"/shiny/* "$HERE/debian-image.sh" | sha256sum | cut -d' ' -f1)
  current=$(docker image inspect -f '{{index .Config.Labels "nbpool.source-hash"}}' "$SHINY_IMAGE" 2>/dev/null || true)
  if [ "$current" = "$hash" ] && [ "${NBPOOL_REBUILD:-0}" != 1 ]; then
    log "$SHINY_IMAGE up to date (source hash ${hash:0:12})"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "building $SHINY_IMAGE needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  log "building $SHINY_IMAGE (debootstrap + apt, about 2 minutes) ..."
  NBPOOL_SHINY_IMAGE="$SHINY_IMAGE" NBPOOL_SHINY_LABEL="nbpool.source-hash=$hash" bash "$HERE/shiny/build.sh"
}

check_docker
case "$WHAT" in
  tiny) build_tiny ;;
  jupyter) build_jupyter ;;
  shiny) build_shiny ;;
  all) build_tiny; build_jupyter; build_shiny ;;
esac
