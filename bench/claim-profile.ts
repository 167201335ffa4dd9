/**
 * bench:claim-profile (issue 17): where the time of a claim goes, before and after a change, in
 * one run. Each peer is a build of `nbpool up` ("after": this checkout or BENCH_NBPOOL_ROOT;
 * "before": the checkout BENCH_BEFORE_ROOT names, built), started with `--cpu-prof`, pool of
 * BENCH_POOL tiny containers. Once the pool is full: BENCH_SEQ sequential claims (GET /spawn/ to
 * the 302, then the container's page through the route), then BENCH_BURST claims at once; claim
 * latency (request to 302) is measured in the same run. SIGTERM makes node write the profile; the
 * samples inside the claims' time windows (marked with this process's monotonic clock, which is
 * the profile's) are put in categories by their stacks (lib/cpu-profile.ts). Peers alternate over
 * BENCH_ROUNDS (2) rounds. Writes bench/results/claim-profile.json; profiles stay in the temp dir.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attribute, CATEGORIES, totalMs, type Attribution, type Category, type CpuProfile, type Window } from './lib/cpu-profile.js';
import { forEachLimited, keepAliveAgent } from './lib/http.js';
import { buildAt, nbpoolBin, repoRoot } from './lib/peers.js';
import { sleep } from './lib/procs.js';
import { startStack, waitWarm, type Stack } from './lib/stack.js';
import { describeLoad, goalOverRounds, median, noteLoad, percentile, printGoals, printTable, round, withLoad, writeResults, type Goal, type LoadSpan } from './lib/stats.js';
import { claimOnce, verifyLanding } from './lib/visitors.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const poolSize = Number(process.env.BENCH_POOL ?? 24);
const sequentialClaims = Number(process.env.BENCH_SEQ ?? 20);
const burstClaims = Math.min(Number(process.env.BENCH_BURST ?? 20), poolSize);
/** Sampling interval, µs: a claim takes a few ms, node's default 1 ms would see a handful of samples. */
const sampleIntervalUs = Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 200);
const beforeRoot = process.env.BENCH_BEFORE_ROOT;
const afterRoot = process.env.BENCH_NBPOOL_ROOT ?? repoRoot;
const runId = `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

type Phase = 'sequential claim' | 'first page' | 'burst';

interface PeerRun {
  peer: string;
  round: number;
  root: string;
  profile: string;
  sequentialClaimMs: number[];
  burstClaimMs: number[];
  /** Wall-clock length of each phase's windows together, ms. */
  windowMs: Record<Phase, number>;
  /** CPU ms per claim by category, per phase (idle included, so it adds up to the window). */
  perClaimMs: Record<Phase, Attribution>;
  load: LoadSpan;
  /** The windows themselves (monotonic µs), to read the profile again. */
  windows: Record<Phase, Window[]>;
}

/**
 * SIGTERM, then waits for the exit: node writes the profile as it exits, after the graceful
 * shutdown, which may outlast the 5 s Proc.stop allows before SIGKILL. Then removes the containers.
 */
async function stopForProfile(stack: Stack): Promise<void> {
  const { child } = stack.procs[0]!;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(30_000)]);
  }
  await stack.stop();
}

async function profileRun(peer: string, root: string, r: number): Promise<PeerRun> {
  const dir = mkdtempSync(join(tmpdir(), `nbpool-claim-profile-${peer}-`));
  const build = buildAt(root, ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${sampleIntervalUs}`]);
  const maxContainers = poolSize + sequentialClaims + burstClaims + 10;
  const stack = await startStack(`${runId}-${peer}-${r}`, poolSize, maxContainers, [], build);
  const agent = keepAliveAgent(burstClaims + 8);
  const windows: Record<Phase, Window[]> = { 'sequential claim': [], 'first page': [], burst: [] };
  const sequentialClaimMs: number[] = [];
  let burstClaimMs: number[] = [];
  let measured: { load: LoadSpan } | undefined;
  try {
    const startedAt = Date.now();
    await waitWarm(stack, poolSize, 300_000);
    say(`  ${peer} round ${r + 1}: pool of ${poolSize} full ${round((Date.now() - startedAt) / 1000, 1)} s after it listened`);
    await claimOnce(stack.url, agent); // first request through each hop (connections, JIT)
    await waitWarm(stack, poolSize);
    const sequential = await withLoad(async () => {
      for (let i = 0; i < sequentialClaims; i++) {
        const t0 = nowUs();
        const c = await claimOnce(stack.url, agent);
        const t2 = nowUs();
        const t1 = t0 + Math.round(c.claimMs * 1000);
        windows['sequential claim'].push({ startUs: t0, endUs: t1 });
        windows['first page'].push({ startUs: t1, endUs: t2 });
        sequentialClaimMs.push(c.claimMs);
      }
    });
    await waitWarm(stack, poolSize);
    const t0 = nowUs();
    const burst = await withLoad(() => Promise.all(Array.from({ length: burstClaims }, () => claimOnce(stack.url, agent, false))));
    windows.burst.push({ startUs: t0, endUs: nowUs() });
    burstClaimMs = burst.value.map((c) => c.claimMs);
    await forEachLimited(burst.value.length, 8, (i) => verifyLanding(stack.url, burst.value[i]!.location, agent));
    measured = { load: { loadavg1mStart: sequential.load.loadavg1mStart, loadavg1mEnd: burst.load.loadavg1mEnd, cpuBusyPct: round((sequential.load.cpuBusyPct + burst.load.cpuBusyPct) / 2, 0) } };
  } finally {
    agent.destroy();
    await stopForProfile(stack);
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`${peer}: no .cpuprofile written in ${dir} (did nbpool up exit on SIGTERM?)`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const perClaim = (phase: Phase, claims: number): Attribution => {
    const a = attribute(profile, windows[phase]);
    for (const c of CATEGORIES) a[c] = a[c] / claims;
    return a;
  };
  const windowMs = (phase: Phase) => windows[phase].reduce((s, w) => s + (w.endUs - w.startUs) / 1000, 0);
  const run: PeerRun = {
    peer,
    round: r + 1,
    root,
    profile: join(dir, file),
    sequentialClaimMs: sequentialClaimMs.map((x) => round(x, 3)),
    burstClaimMs: burstClaimMs.map((x) => round(x, 3)),
    windowMs: { 'sequential claim': round(windowMs('sequential claim'), 1), 'first page': round(windowMs('first page'), 1), burst: round(windowMs('burst'), 1) },
    perClaimMs: { 'sequential claim': perClaim('sequential claim', sequentialClaims), 'first page': perClaim('first page', sequentialClaims), burst: perClaim('burst', burstClaims) },
    load: measured!.load,
    windows,
  };
  say(`  ${peer} round ${r + 1}: sequential claim p50 ${round(percentile(sequentialClaimMs, 50), 2)} p99 ${round(percentile(sequentialClaimMs, 99), 2)} ms; ${burstClaims} at once p50 ${round(percentile(burstClaimMs, 50), 1)} p99 ${round(percentile(burstClaimMs, 99), 1)} ms; CPU per claim (not idle) ${round(totalMs(run.perClaimMs['sequential claim']), 2)} ms sequential, ${round(totalMs(run.perClaimMs.burst), 2)} ms in the burst (${describeLoad(run.load)}); profile ${run.profile}`);
  return run;
}

/** Median over rounds of one figure, "m (r1 / r2)". */
function overRounds(values: number[], digits: number): string {
  return values.length > 1 ? `${round(median(values), digits)} (${values.map((v) => round(v, digits)).join(' / ')})` : String(round(values[0]!, digits));
}

function main(): Promise<void> {
  return (async () => {
    const loadAtStart = noteLoad('at the start');
    const peers: [string, string][] = [['after', afterRoot]];
    if (beforeRoot) peers.unshift(['before', beforeRoot]);
    else say('BENCH_BEFORE_ROOT is not set: only this build is profiled (no before/after comparison)');
    say(`after = ${nbpoolBin}${beforeRoot ? `; before = ${join(beforeRoot, 'bin', 'nbpool.js')}` : ''}; pool ${poolSize}, ${sequentialClaims} sequential claims, ${burstClaims} at once, sampling every ${sampleIntervalUs} µs`);
    const runs: PeerRun[] = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? peers : [...peers].reverse();
      for (const [peer, root] of order) runs.push(await profileRun(peer, root, r));
    }
    const names = peers.map(([p]) => p);
    const of = (peer: string) => runs.filter((x) => x.peer === peer);
    const cell = (peer: string, f: (x: PeerRun) => number, digits = 3) => overRounds(of(peer).map(f), digits);
    const share = (a: Attribution, c: Category) => (100 * a[c]) / totalMs(a);

    const phases: Phase[] = ['sequential claim', 'burst', 'first page'];
    for (const phase of phases) {
      printTable(
        `CPU ms per claim by category, ${phase} windows (median over rounds, rounds in parentheses); % of non-idle CPU`,
        ['category', ...names.map((n) => `${n} ms`), ...names.map((n) => `${n} %`)],
        [
          ...CATEGORIES.map((c) => [c, ...names.map((n) => cell(n, (x) => x.perClaimMs[phase][c])), ...names.map((n) => cell(n, (x) => c === 'idle' ? NaN : share(x.perClaimMs[phase], c), 1))]),
          ['CPU, not idle', ...names.map((n) => cell(n, (x) => totalMs(x.perClaimMs[phase]))), ...names.map(() => '100')],
        ],
      );
    }
    printTable('Claim latency, request to 302 (median over rounds, rounds in parentheses)', ['', ...names], [
      ['sequential p50, ms', ...names.map((n) => cell(n, (x) => percentile(x.sequentialClaimMs, 50), 2))],
      ['sequential p99, ms', ...names.map((n) => cell(n, (x) => percentile(x.sequentialClaimMs, 99), 2))],
      [`${burstClaims} at once p50, ms`, ...names.map((n) => cell(n, (x) => percentile(x.burstClaimMs, 50), 1))],
      [`${burstClaims} at once p99, ms`, ...names.map((n) => cell(n, (x) => percentile(x.burstClaimMs, 99), 1))],
    ]);
    const goals: Goal[] = [];
    if (beforeRoot) {
      // per round, the two peers' runs side by side
      const ratio = (phase: Phase) => of('after').map((a, i) => totalMs(a.perClaimMs[phase]) / totalMs(of('before')[i]!.perClaimMs[phase]));
      goals.push(goalOverRounds('after: CPU per sequential claim < before\'s (same round)', ratio('sequential claim'), '<', 1, 'x', `after ${cell('after', (x) => totalMs(x.perClaimMs['sequential claim']), 2)} ms, before ${cell('before', (x) => totalMs(x.perClaimMs['sequential claim']), 2)} ms`));
      goals.push(goalOverRounds(`after: CPU per claim in ${burstClaims} at once < before's (same round)`, ratio('burst'), '<', 1, 'x', `after ${cell('after', (x) => totalMs(x.perClaimMs.burst), 2)} ms, before ${cell('before', (x) => totalMs(x.perClaimMs.burst), 2)} ms`));
    } else {
      goals.push({ name: 'after: CPU per claim < before\'s', met: false, judged: false, detail: 'not judged: BENCH_BEFORE_ROOT names no build to compare with' });
    }
    printGoals(goals);
    writeResults('claim-profile', {
      bench: 'claim-profile',
      date: new Date().toISOString(),
      config: { rounds, poolSize, sequentialClaims, burstClaims, sampleIntervalUs, before: beforeRoot ?? null, after: afterRoot },
      note: 'perClaimMs: CPU ms of the nbpool up process per claim by category inside the phase\'s windows, idle included (so a phase adds up to its wall-clock window per claim). Profiles are not kept in the repository.',
      goals,
      runs,
    }, loadAtStart);
  })();
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:claim-profile failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
