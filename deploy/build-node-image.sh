#!/usr/bin/env bash
# Builds the Node base image nbpool/node:<major> FROM scratch out of this host's node binary, its
# shared libraries and npm (no registry needed). Skipped when present and built from the same node
# and npm versions and recipe. Prints the image name on stdout.
# Env: NBPOOL_NODE_IMAGE (image name, default nbpool/node:<major>), NBPOOL_REBUILD=1, DOCKER_HOST.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scratch-image.sh
. "$HERE/scratch-image.sh"

node_bin=$(command -v node) || die "node not found on PATH"
node_bin=$(readlink -f "$node_bin")
version=$("$node_bin" -p process.versions.node)
image="${NBPOOL_NODE_IMAGE:-nbpool/node:${version%%.*}}"
# npm comes along so Dockerfiles can `RUN ["npm", ...]` as with the official node images.
npm_cli=$(readlink -f "$(command -v npm)") || die "npm not found on PATH"
npm_dir=$(dirname "$(dirname "$npm_cli")")
[ -f "$npm_dir/lib/cli.js" ] || die "npm's lib/cli.js not found under $npm_dir"
npm_version=$("$node_bin" -p "require('$npm_dir/package.json').version")
hash="node-$version/npm-$npm_version/$(cat "$HERE/scratch-image.sh" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

require_docker
if image_current "$image" "$hash"; then
  log "$image up to date (node $version)"
  echo "$image"
  exit 0
fi
# In the image node is /usr/local/bin/node and npm /usr/local/lib/node_modules/npm, as in the
# official images; /usr/local/bin/npm is a launcher run by node itself (there is no shell).
root=$(new_rootfs)
add_program "$root" "$node_bin" /usr/local/bin/node
mkdir -p "$root/usr/local/lib/node_modules" "$root/root"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
printf '#!/usr/local/bin/node\nrequire("/usr/local/lib/node_modules/npm/lib/cli.js")(process);\n' >"$root/usr/local/bin/npm"
chmod 755 "$root/usr/local/bin/npm"
scratch_image "$image" "$hash" "$root" "LABEL nbpool.node-version=$version nbpool.npm-version=$npm_version
ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/root NODE_VERSION=$version
CMD [\"node\"]"
echo "$image"
