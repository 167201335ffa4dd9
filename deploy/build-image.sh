#!/usr/bin/env bash
# Builds the nbpool image (deploy/Dockerfile; one image for proxy, orchestrator and redirector)
# from this checkout, on the Node base image made here (deploy/build-node-image.sh) unless
# BASE_IMAGE names another one (e.g. node:20-slim where a registry can be reached).
# Compiles the sources (npm run build) first; needs npm dependencies installed (npm ci): the build
# copies node_modules and prunes the dev ones.
# Env: NBPOOL_IMAGE (default nbpool/nbpool:latest), BASE_IMAGE, DOCKER_HOST. Prints the image name.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scratch-image.sh
. "$HERE/scratch-image.sh"
cd "$HERE/.."

image="${NBPOOL_IMAGE:-nbpool/nbpool:latest}"
[ -d node_modules/typescript ] || die "npm dependencies missing; run npm ci first"
require_docker
log "compiling (npm run build) ..."
npm run -s build >&2 || die "npm run build failed"
base="${BASE_IMAGE:-$(bash "$HERE/build-node-image.sh")}"
log "building $image on $base ..."
log_file=$(mktemp "${TMPDIR:-/tmp}/nbpool-build.XXXXXX")
if ! DOCKER_BUILDKIT=0 docker build -f deploy/Dockerfile --build-arg "BASE_IMAGE=$base" -t "$image" . >"$log_file" 2>&1; then
  tail -n 30 "$log_file" >&2
  rm -f "$log_file"
  die "docker build of $image failed"
fi
rm -f "$log_file"
log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1000000 }'))"
echo "$image"
