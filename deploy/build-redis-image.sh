#!/usr/bin/env bash
# Builds nbpool/redis:latest FROM scratch out of this host's Debian redis-server and its shared
# libraries (no registry needed), for docker-compose's `redis` profile. Skipped when present and
# built from the same redis-server. Prints the image name on stdout.
# Env: NBPOOL_REDIS_IMAGE (image name), NBPOOL_REBUILD=1, DOCKER_HOST.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scratch-image.sh
. "$HERE/scratch-image.sh"

image="${NBPOOL_REDIS_IMAGE:-nbpool/redis:latest}"
server=$(command -v redis-server) || die "redis-server not found; install it (Debian: apt-get install redis-server)"
# Debian's redis-server is a link to redis-check-rdb, which acts by the name it is run as.
version=$("$server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
server=$(readlink -f "$server")
hash="redis-$version/$(cat "$server" "$HERE/scratch-image.sh" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

require_docker
if image_current "$image" "$hash"; then
  log "$image up to date (redis $version)"
  echo "$image"
  exit 0
fi
root=$(new_rootfs)
add_program "$root" "$server" /usr/bin/redis-server
mkdir -p "$root/data"
scratch_image "$image" "$hash" "$root" "LABEL nbpool.redis-version=$version
VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD [\"redis-server\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--dir\", \"/data\", \"--appendonly\", \"yes\"]"
echo "$image"
