#!/usr/bin/env bash
# Builds nbpool/shiny:latest: Debian bookworm (debootstrap minbase) with the Debian package
# r-cran-shiny and a tiny app (app.R: a slider and an output), imported into Docker.
# Needs root and a reachable Debian mirror (see ../debian-image.sh for the env it reads).
#
# Env: NBPOOL_SHINY_IMAGE (default nbpool/shiny:latest).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../debian-image.sh
. "$HERE/../debian-image.sh"

customize_rootfs() {
  mkdir -p "$1/srv/app"
  cp "$HERE/app.R" "$1/srv/app/app.R"
  cp "$HERE/shiny-app" "$1/usr/local/bin/shiny-app"
  chmod 755 "$1/usr/local/bin/shiny-app"
}

# build.sh passes the source hash label it checks next time (NBPOOL_SHINY_LABEL=key=value).
build_debian_image shiny "${NBPOOL_SHINY_IMAGE:-nbpool/shiny:latest}" "r-cran-shiny" \
  "LABEL ${NBPOOL_SHINY_LABEL:-nbpool.source-hash=unknown}" \
  'WORKDIR /srv/app' \
  'EXPOSE 8888' \
  'CMD ["/usr/local/bin/shiny-app"]'
