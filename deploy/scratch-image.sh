# Shared by deploy/build-*-image.sh (sourced, not run): FROM-scratch images made of programs already
# installed on this host plus the shared libraries they load, because no registry can be reached
# here. An image is rebuilt only when its label nbpool.source-hash changes. Honours DOCKER_HOST
# (through the docker client).
#
#   root=$(new_rootfs)                      a staging root with /tmp, /etc/passwd, CA certs ...
#   add_program "$root" HOST_PATH [PATH]    the file (at PATH in the image, default the same path),
#                                           its `ldd` libraries and the dynamic loader
#   scratch_image IMAGE HASH "$root" TAIL   builds FROM scratch + COPY root + TAIL (Dockerfile lines)

log() { echo "deploy: $*" >&2; }
die() { echo "deploy: $*" >&2; exit 1; }

require_docker() {
  command -v docker >/dev/null 2>&1 || die "docker client not installed (apt-get install docker.io)"
  docker version >/dev/null 2>&1 || die "no Docker engine answers${DOCKER_HOST:+ at DOCKER_HOST=$DOCKER_HOST}; start dockerd"
}

# True when IMAGE exists with label nbpool.source-hash=HASH (and NBPOOL_REBUILD is not 1).
image_current() {
  [ "${NBPOOL_REBUILD:-0}" != 1 ] &&
    [ "$(docker image inspect -f '{{index .Config.Labels "nbpool.source-hash"}}' "$1" 2>/dev/null)" = "$2" ]
}

# Copies a host file to a path under ROOT, following symlinks (the image gets real files).
copy_into() { mkdir -p "$1$(dirname "$3")" && cp -L "$2" "$1$3"; }

new_rootfs() {
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-rootfs.XXXXXX")
  mkdir -p "$root/tmp" "$root/etc"
  chmod 1777 "$root/tmp"
  # Trust store for TLS clients, and the few files glibc and programs look up by name.
  if [ -d /etc/ssl/certs ]; then mkdir -p "$root/etc/ssl" && cp -rL /etc/ssl/certs "$root/etc/ssl/"; fi
  printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  echo "$root"
}

add_program() {
  local root=$1 file=$2 target=${3:-$2} lib
  [ -f "$file" ] || die "$file not found on this host"
  copy_into "$root" "$file" "$target"
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
  for lib in $(LC_ALL=C ldd "$file" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    copy_into "$root" "$lib" "$lib"
  done
}

scratch_image() {
  local image=$1 hash=$2 root=$3 tail=$4 ctx
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-image.XXXXXX")
  mv "$root" "$ctx/rootfs"
  printf 'FROM scratch\nCOPY rootfs/ /\n%s\n' "$tail" >"$ctx/Dockerfile"
  log "building $image ..."
  if ! DOCKER_BUILDKIT=0 docker build --label "nbpool.source-hash=$hash" -t "$image" "$ctx" >"$ctx/build.log" 2>&1; then
    tail -n 30 "$ctx/build.log" >&2
    rm -rf "$ctx"
    die "docker build of $image failed"
  fi
  rm -rf "$ctx"
  log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1000000 }'))"
}
