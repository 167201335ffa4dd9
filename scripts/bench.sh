#!/usr/bin/env bash
# Runs the benchmarks: bash scripts/bench.sh [proxy|claim|redirect|demand]... (none = all).
# Each prints a table and its goals (MET/MISS) and writes bench/results/<name>.json.
# Exits non-zero only when a harness fails; a missed goal is reported, not an error.
set -euo pipefail
cd "$(dirname "$0")/.."

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(proxy claim redirect demand)
for name in "${benches[@]}"; do
  case "$name" in
    proxy | claim | redirect | demand) ;;
    *) printf 'bench: unknown benchmark %s (proxy, claim, redirect, demand)\n' "$name" >&2; exit 2 ;;
  esac
done

bash scripts/ensure.sh deps docker bench-tools images
npm run -s build

failed=()
for name in "${benches[@]}"; do
  printf '\n===== bench:%s =====\n' "$name"
  # every step inside a bench has its own time limit; this is the last resort (30 min a bench)
  if ! timeout -k 30 1800 node --import tsx "bench/$name.ts"; then failed+=("$name"); fi
done

printf '\n===== goals =====\n'
for name in "${benches[@]}"; do
  case " ${failed[*]:-} " in *" $name "*) printf 'bench:%s  harness FAILED (see above)\n' "$name"; continue ;; esac
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (!r.goals || r.goals.length === 0) console.log(`bench:${r.bench}  goals not judged (program not available yet)`);
    for (const g of r.goals ?? []) console.log(`bench:${r.bench}  [${g.met ? "MET " : "MISS"}] ${g.name}: ${g.detail}`);
  ' "bench/results/$name.json"
done

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nbench: harness failed for: %s\n' "${failed[*]}" >&2
  exit 1
fi
