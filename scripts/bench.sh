#!/usr/bin/env bash
# Runs the benchmarks: bash scripts/bench.sh [proxy|claim|redirect|swarm|demand|claim-profile|pool-core]... (none = all).
# Each prints a table, a Markdown summary to paste and its goals, and writes
# bench/results/<name>.json. A bench that cannot start our program, or whose harness fails,
# exits non-zero; a missed goal is reported, not an error.
# The original tmpnb and tmpnb-redirector are measured in the same run when BENCH_TMPNB_DIR and
# BENCH_TMPNB_REDIRECTOR_DIR name checkouts of them (see bench/README.md); their Python packages
# are installed here from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(proxy claim redirect swarm demand claim-profile pool-core)
for name in "${benches[@]}"; do
  case "$name" in
    proxy | claim | redirect | swarm | demand | claim-profile | pool-core) ;;
    *) printf 'bench: unknown benchmark %s (proxy, claim, redirect, swarm, demand, claim-profile, pool-core)\n' "$name" >&2; exit 2 ;;
  esac
done

bash scripts/ensure.sh deps docker bench-tools images
npm run -s build

python=${BENCH_PYTHON:-/usr/bin/python3}
if [ -n "${BENCH_TMPNB_DIR:-}${BENCH_TMPNB_REDIRECTOR_DIR:-}" ] && ! "$python" -c 'import tornado, docker, pycurl, pytz' 2>/dev/null; then
  printf 'bench: installing the original tmpnb'"'"'s Python packages from Debian\n'
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-tornado python3-docker python3-pycurl python3-tz >/dev/null
fi

failed=()
for name in "${benches[@]}"; do
  printf '\n===== bench:%s =====\n' "$name"
  # every step inside a bench has its own time limit; this is the last resort (60 min a bench)
  if ! timeout -k 30 3600 node --import tsx "bench/$name.ts"; then failed+=("$name"); continue; fi
  if [ "$name" = claim ]; then node --import tsx bench/plot.ts; fi
done

printf '\n===== goals =====\n'
for name in "${benches[@]}"; do
  case " ${failed[*]:-} " in *" $name "*) printf 'bench:%s  harness FAILED (see above)\n' "$name"; continue ;; esac
  if ! node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const m = r.machine ?? {};
    console.log(`bench:${r.bench}  ${r.date}, load ${m.loadavg1mAtStart} -> ${m.loadavg1mAtEnd} on ${m.cpus} CPUs`);
    if (!r.goals || r.goals.length === 0) { console.log(`bench:${r.bench}  no goal judged`); process.exit(1); }
    for (const g of r.goals) console.log(`bench:${r.bench}  [${g.judged === false ? " -- " : g.met ? "MET " : "MISS"}${g.close ? "?" : ""}] ${g.name}: ${g.detail}`);
  ' "bench/results/$name.json"; then failed+=("$name"); fi
done
printf '([MET ?] / [MISS?]: decided by less than the spread between rounds; read the rounds. [ -- ]: peer not measured.)\n'

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nbench: harness failed for: %s\n' "${failed[*]}" >&2
  exit 1
fi
