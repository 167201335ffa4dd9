# Sourced by jupyter/build.sh and shiny/build.sh: builds a Docker image from Debian packages
# without pulling anything (debootstrap minbase, apt-get install inside the chroot, docker import).
# Needs root (debootstrap, chroot, mount) and a reachable Debian mirror.
#
#   build_debian_image NAME IMAGE "PACKAGES" [docker import -c change]...
#
# Before the import, the function customize_rootfs (if the caller defines it) is called with the
# root directory, to add the app's own files.
# Env: DEBIAN_MIRROR (default: first non-security mirror in /etc/apt/sources.list.d/*.sources,
# then /etc/apt/sources.list, then http://deb.debian.org/debian), NBPOOL_DEBIAN_SUITE (default
# bookworm), DOCKER_HOST is honoured by the docker client, TMPDIR for the work directory.

find_debian_mirror() {
  local m="" f
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  shopt -s nullglob
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

build_debian_image() {
  local name="$1" image="$2" packages="$3"
  shift 3
  local suite="${NBPOOL_DEBIAN_SUITE:-bookworm}"
  die() { echo "images: $name: $*" >&2; exit 1; }
  log() { echo "images: $name: $*" >&2; }

  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed (apt-get install debootstrap)"
  command -v docker >/dev/null 2>&1 || die "docker client not installed"
  docker version >/dev/null 2>&1 || die "docker engine not reachable; start dockerd"

  local mirror
  mirror=$(find_debian_mirror)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-$name.XXXXXX")
  local rootfs="$WORK/rootfs"
  trap cleanup_debian_work EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  log "debootstrap $suite (minbase) from $mirror into $rootfs"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount -t proc proc "$rootfs/proc"
  # Keep package scripts from starting services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"

  log "apt-get install $packages (in chroot)"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$rootfs" \
    apt-get install -y --no-install-recommends $packages >"$WORK/apt.log" 2>&1 ||
    { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install in chroot failed"; }

  umount "$rootfs/proc"
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/root/.cache
  : >"$rootfs/etc/resolv.conf"
  mkdir -p "$rootfs/root"
  if declare -F customize_rootfs >/dev/null; then customize_rootfs "$rootfs"; fi

  local changes=() c
  for c in "$@"; do changes+=(-c "$c"); done
  log "docker import -> $image"
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    "${changes[@]}" \
    -m "nbpool $name ($suite, Debian packages)" \
    - "$image" >/dev/null
  log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1000000 }'))"
}

cleanup_debian_work() {
  local rc=$? m
  set +e
  # Unmount anything still mounted below the work dir (deepest first).
  for m in $(awk -v w="$WORK" 'index($2, w"/") == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  if awk -v w="$WORK" 'index($2, w"/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "images: mounts remain under $WORK; not removing it" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
  exit "$rc"
}
