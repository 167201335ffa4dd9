/**
 * bench:pool-core (issue 17): what a claim costs the pool state machine (orchestrator/pool.ts, no
 * I/O) as the node holds more visitors. For each count of claimed containers (100, 1,000, 5,000,
 * BENCH_CLAIMED to change), in rounds of alternating order: a core with pools of 64 and 8 warm
 * containers and that many claimed; then BENCH_CLAIMS claims, each followed by what the
 * orchestrator does after one (the trim plan, the start plan, the replacements started, created
 * and admitted) and by one culled claimed container, so the count holds. Time per claim, after a
 * warm-up of the same work. Goal: the cost does not grow with the claimed count (the largest
 * within 2x of the smallest, same round: a bigger map misses the CPU's caches more; a scan over
 * every container made it 22x). BENCH_BEFORE_ROOT: a checkout whose orchestrator/pool.ts is
 * measured too, alternated with ours, for the ratio in the same run.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ours from '../orchestrator/pool.js';
import { goalOverRounds, median, noteLoad, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const claims = Number(process.env.BENCH_CLAIMS ?? 20000);
const counts = (process.env.BENCH_CLAIMED ?? '100,1000,5000').split(',').map(Number);

type PoolModule = typeof ours;
const beforeRoot = process.env.BENCH_BEFORE_ROOT;
const before: PoolModule | undefined = beforeRoot ? ((await import(pathToFileURL(join(beforeRoot, 'orchestrator/pool.ts')).href)) as PoolModule) : undefined;

/** Microseconds per claim and its follow-up work, with `claimed` containers already handed out. */
function measure({ PoolCore, DEFAULT_LIMITS }: PoolModule, claimed: number): number {
  const core = new PoolCore([{ name: 'default', size: 64 }, { name: 'b', size: 8 }], { ...DEFAULT_LIMITS, maxContainers: claimed + 1000, maxParallelStarts: 1000 });
  let next = 0;
  const held: string[] = [];
  let oldest = 0;
  for (let i = 0; i < claimed; i++) {
    const id = `c${next++}`;
    core.adopt({ id, pool: i % 10 ? 'default' : 'b', state: 'claimed', createdAt: i });
    held.push(id);
  }
  const start = (pool: string, now: number) => {
    const id = `c${next++}`;
    core.starting(pool, id, now);
    core.created(id);
    core.admitted(id);
  };
  for (let i = 0; i < 64; i++) start('default', 0);
  for (let i = 0; i < 8; i++) start('b', 0);
  const claimOnce = (step: number) => {
    const now = step * 1000;
    const c = core.claim(step % 10 ? 'default' : 'b', now);
    if (c) held.push(c.id);
    for (const id of core.trimPlan()) core.removing(id);
    for (const [pool, count] of core.startPlan(now + 500)) for (let i = 0; i < count; i++) start(pool, now);
    const culled = held[oldest++]!; // (an index, not shift(): that would cost by the count itself)
    core.removing(culled);
    core.removed(culled);
  };
  for (let step = 0; step < claims / 4; step++) claimOnce(step); // warm-up: the JIT, the sets' sizes
  const t0 = process.hrtime.bigint();
  for (let step = 0; step < claims; step++) claimOnce(step);
  return Number(process.hrtime.bigint() - t0) / 1000 / claims;
}

const loadAtStart = noteLoad('at the start');
const peers: [string, PoolModule][] = before ? [['ours', ours], ['before', before]] : [['ours', ours]];
for (const [, module] of peers) measure(module, counts[0]!); // the JIT, before any round counts
const perRound: Record<string, Record<number, number[]>> = Object.fromEntries(peers.map(([name]) => [name, Object.fromEntries(counts.map((n) => [n, []]))]));
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? counts : [...counts].reverse();
  for (const n of order) {
    for (const [name, module] of r % 2 === 0 ? peers : [...peers].reverse()) perRound[name]![n]!.push(round(measure(module, n), 2));
  }
  for (const [name] of peers) process.stdout.write(`round ${r + 1}, ${name}: ${counts.map((n) => `${n} claimed ${perRound[name]![n]![r]} µs`).join(', ')}\n`);
}
const cell = (xs: number[]) => `${round(median(xs), 2)} (${xs.join(' / ')})`;
printTable(
  'Pool core: µs per claim and the planning after it, median (rounds)',
  ['claimed containers', ...peers.map(([name]) => name)],
  counts.map((n) => [n, ...peers.map(([name]) => cell(perRound[name]![n]!))]),
);
const smallest = Math.min(...counts);
const largest = Math.max(...counts);
const mine = perRound.ours!;
const goals: Goal[] = [
  goalOverRounds(
    `a claim costs about the same with ${largest} claimed containers as with ${smallest} (within 2x, same round)`,
    mine[largest]!.map((v, i) => v / mine[smallest]![i]!),
    '<=',
    2,
    'x',
    `${largest}: ${round(median(mine[largest]!), 2)} µs, ${smallest}: ${round(median(mine[smallest]!), 2)} µs`,
  ),
];
if (before) {
  const theirs = perRound.before!;
  goals.push(goalOverRounds(`with ${largest} claimed: ours < before's (same round)`, mine[largest]!.map((v, i) => v / theirs[largest]![i]!), '<', 1, 'x', `before (${beforeRoot}) ${round(median(theirs[largest]!), 2)} µs`));
}
printGoals(goals);
writeResults('pool-core', { bench: 'pool-core', date: new Date().toISOString(), settings: { rounds, claims, counts, beforeRoot }, microsecondsPerClaim: perRound, goals }, loadAtStart);
