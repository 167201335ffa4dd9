#!/usr/bin/env bash
# Builds nbpool/jupyter:latest: Debian bookworm (debootstrap minbase) with the
# Debian packages jupyter-notebook and python3-ipykernel, imported into Docker.
# Needs root and a reachable Debian mirror (see ../debian-image.sh for the env it reads).
# Takes about 2 minutes; the image is about 500 MB.
#
# Env: NBPOOL_JUPYTER_IMAGE (default nbpool/jupyter:latest).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../debian-image.sh
. "$HERE/../debian-image.sh"

build_debian_image jupyter "${NBPOOL_JUPYTER_IMAGE:-nbpool/jupyter:latest}" \
  "jupyter-notebook python3-ipykernel" \
  'WORKDIR /root' \
  'EXPOSE 8888' \
  'CMD ["jupyter-notebook","--ip=0.0.0.0","--port=8888","--allow-root","--no-browser"]'
