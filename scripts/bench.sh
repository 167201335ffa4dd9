#!/usr/bin/env bash
# Runs the benchmarks: bash scripts/bench.sh [proxy|claim|redirect]... (none = all).
# Exits non-zero only when a harness fails; a missed goal is printed (MISS), not an error.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure.sh deps docker bench-tools images
npm run -s build

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(proxy claim redirect)
failed=()
for name in "${benches[@]}"; do
  case "$name" in
    proxy | claim | redirect) ;;
    *) printf 'bench: unknown benchmark %s (proxy, claim, redirect)\n' "$name" >&2; exit 2 ;;
  esac
  printf '\n===== bench:%s =====\n' "$name"
  if ! node --import tsx "bench/$name.ts"; then failed+=("$name"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf '\nbench: harness failed for: %s\n' "${failed[*]}" >&2
  exit 1
fi
