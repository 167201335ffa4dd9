/** The demand core alone: targets from the claim rate, room sharing, stale warm containers, stats. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_DEMAND_POLICY, DemandCore, poissonQuantile, type DemandPoolSpec } from '../../orchestrator/demand.js';

const auto = (name: string, min = 1, max = 30, hitRate = 0.95): DemandPoolSpec => ({ name, size: min, auto: { min, max, hitRate } });
const MIN = 60_000;

/** `count` visitors of `pool` evenly over `spanMs` ending at `end`, all served warm. */
function arrive(core: DemandCore, pool: string, count: number, end: number, spanMs: number): void {
  for (let i = 0; i < count; i++) core.arrival(pool, end - spanMs + ((i + 1) * spanMs) / count, true);
}

test('poissonQuantile: exact for small means, normal approximation for large', () => {
  assert.equal(poissonQuantile(0, 0.95), 0);
  assert.equal(poissonQuantile(1, 0.95), 3); // P(N<=2) = 0.920, P(N<=3) = 0.981
  assert.equal(poissonQuantile(4.5, 0.95), 8);
  assert.equal(poissonQuantile(4.5, 0.5), 4);
  assert.equal(poissonQuantile(1000, 0.95), Math.ceil(1000 + 1.6449 * Math.sqrt(1000)));
});

test('the target follows the claim rate: min when quiet, up in a burst, remembered for a while, back to min', () => {
  const core = new DemandCore([auto('nb', 1, 30)]);
  core.started('nb', 3000, 0);
  let now = 3_600_000;
  arrive(core, 'nb', 6, now, 60 * MIN); // a quiet hour
  assert.equal(core.targets(now, 0, 200).get('nb'), 1);
  arrive(core, 'nb', 60, (now += MIN), MIN); // a lecture: 1 claim/s, 3 s starts -> Poisson(4.5) at 95%
  assert.equal(core.targets(now, 60, 200).get('nb'), 8);
  now += 10 * MIN; // ten minutes later the class is still expected, a little less
  const later = core.targets(now, 60, 200).get('nb')!;
  assert.ok(later >= 4 && later < 8, `target ten minutes after: ${later}`);
  now += 120 * MIN;
  assert.equal(core.targets(now, 0, 200).get('nb'), 1, 'back to min after a quiet two hours');
  // A higher target hit rate asks for more.
  const strict = new DemandCore([auto('nb', 1, 30, 0.999)]);
  strict.started('nb', 3000, 0);
  arrive(strict, 'nb', 60, MIN, MIN);
  assert.ok(strict.targets(MIN, 0, 200).get('nb')! > 8);
});

test('slow starts raise the target; the moving average follows start times', () => {
  const core = new DemandCore([auto('nb', 0, 100)]);
  arrive(core, 'nb', 60, MIN, MIN);
  core.started('nb', 1000, 0);
  const fast = core.targets(MIN, 0, 1000).get('nb')!;
  for (let i = 0; i < 30; i++) core.started('nb', 10_000, 0);
  const slow = core.targets(MIN, 0, 1000).get('nb')!;
  assert.ok(slow > 3 * fast, `fast ${fast}, slow ${slow}`);
  assert.ok(Math.abs(core.stats('nb', MIN)!.start_ms - 10_000) < 50);
});

test('room: pool + in use under 95% of capacity, min kept, max held, pools share by demand', () => {
  const core = new DemandCore([auto('busy', 1, 50), auto('calm', 2, 50), { name: 'fixed', size: 3 }]);
  core.started('busy', 5000, 0);
  core.started('calm', 5000, 0);
  arrive(core, 'busy', 120, MIN, MIN); // 2/s
  arrive(core, 'calm', 30, MIN, MIN); // 0.5/s
  const free = core.targets(MIN, 0, 1000);
  assert.equal(free.get('fixed'), 3);
  assert.ok(free.get('busy')! > free.get('calm')!);
  // Capacity 100, 80 in use: 95 - 80 - 3 (fixed) = 12 warm for the auto pools; mins first, the rest by demand.
  const tight = core.targets(MIN, 80, 100);
  assert.equal(tight.get('busy')! + tight.get('calm')!, 12);
  const busyAbove = free.get('busy')! - 1;
  const calmAbove = free.get('calm')! - 2;
  assert.ok(Math.abs((tight.get('busy')! - 1) / 9 - busyAbove / (busyAbove + calmAbove)) < 0.12, `shares ${[...tight]}`);
  // No room at all: mins only.
  const full = core.targets(MIN, 100, 100);
  assert.deepEqual([full.get('busy'), full.get('calm')], [1, 2]);
  // max holds however high the demand.
  const capped = new DemandCore([auto('nb', 1, 5)]);
  arrive(capped, 'nb', 600, MIN, MIN);
  assert.equal(capped.targets(MIN, 0, 1000).get('nb'), 5);
});

test('stale warm containers: oldest first, a few at a time, not while the pool is starting', () => {
  const core = new DemandCore([auto('nb')], { ...DEFAULT_DEMAND_POLICY, replaceBatch: 2 });
  const warm = [
    { id: 'a', pool: 'nb', createdAt: 0 },
    { id: 'b', pool: 'nb', createdAt: 1000 },
    { id: 'c', pool: 'nb', createdAt: 500 },
    { id: 'fresh', pool: 'nb', createdAt: 9000 },
  ];
  assert.deepEqual(core.staleWarm(10_000, warm, new Map(), 5000), ['a', 'c']);
  assert.deepEqual(core.staleWarm(10_000, warm, new Map([['nb', 1]]), 5000), []);
  assert.deepEqual(core.staleWarm(10_000, warm, new Map(), 0), [], '0 disables');
});

test('stats: hit rate and waits over the last 10 minutes, target and rate', () => {
  const core = new DemandCore([auto('nb', 2, 30)]);
  assert.deepEqual(core.stats('nb', 0), {
    target: 2, auto: true, claim_rate_per_min: 0, start_ms: 5000, claims_10m: 0, warm_hits_10m: 0, waits_10m: 0, hit_rate_10m: null, wait_p50_ms: null, wait_max_ms: null,
  });
  for (let i = 0; i < 8; i++) core.arrival('nb', 1000 + i, true);
  core.arrival('nb', 2000, false);
  core.arrival('nb', 2001, false);
  core.waited('nb', 3000, 1000);
  core.waited('nb', 4000, 2000);
  const s = core.stats('nb', 5000)!;
  assert.deepEqual([s.claims_10m, s.warm_hits_10m, s.hit_rate_10m, s.waits_10m, s.wait_p50_ms, s.wait_max_ms], [10, 8, 0.8, 2, 1000, 2000]);
  assert.ok(s.claim_rate_per_min > 0);
  const old = core.stats('nb', 5000 + 11 * MIN)!;
  assert.deepEqual([old.claims_10m, old.waits_10m, old.hit_rate_10m], [0, 0, null]);
  assert.equal(core.stats('nope', 0), undefined);
});
