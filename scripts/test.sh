#!/usr/bin/env bash
# The one test command (npm test, and CI's .ci/run): sets up what the tests need, then type-checks,
# lints and runs every test against the real Docker engine, Redis and Chromium.
# Pass test files to run only those: npm test -- test/proxy/api.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure.sh deps docker redis chromium images jupyter shiny compose node-image redis-image
echo "test: type-check (tsc --noEmit) ..." >&2
npm run -s typecheck
echo "test: lint (eslint) ..." >&2
npm run -s lint
mkdir -p test-artifacts
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort); fi
# What the programs keep between runs (generated tokens, claim journals) goes to a directory of
# this run, not into the checkout's .nbpool/.
NBPOOL_STATE_DIR=$(mktemp -d -t nbpool-test-state.XXXXXX)
export NBPOOL_STATE_DIR
trap 'rm -rf "$NBPOOL_STATE_DIR"' EXIT
echo "test: running ${#files[@]} test files ..." >&2
node --import tsx --test --test-reporter=spec "${files[@]}"
