#!/usr/bin/env bash
# The one run command (npm start): sets up Docker and the default Jupyter image when missing, then
# runs `nbpool up` with any options given after `--` (npm start -- --pool-size 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure.sh deps docker jupyter
# Run through its own first line, so with the node flags every nbpool program runs with.
exec bin/nbpool.js up "$@"
