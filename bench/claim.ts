/**
 * bench:claim (issues 8 and 17). In one run, alternated over rounds: the floor (an empty node:http
 * server asked by the same client: sequential requests, then a burst on new and on kept
 * connections, what no stack can beat on this machine); cold `docker run` of the tiny
 * image until it answers and the engine's own create+start of as many containers as a burst (8 at
 * a time); `nbpool up`; and the original tmpnb behind configurable-http-proxy when BENCH_TMPNB_DIR
 * names a checkout (lib/tmpnb.ts). For each stack, started afresh every round: pool fill (timed from
 * the engine's first create for it), sequential claims and a plain request through the same hops
 * between them, 60 claims at once and 60 plain requests at once (which burst goes first alternates
 * over rounds, since the second reuses the first's connections), and for nbpool the time until
 * the pool is full again after the burst. Then once, for nbpool: 300 visitors on a pool of 20.
 * Every figure carries the machine's load over it.
 * Env: BENCH_ROUNDS (3), BENCH_COLD (4 a round), BENCH_POOL (64), BENCH_SEQ (50), BENCH_VISITORS
 * (300; 0 skips), BENCH_TMPNB_DIR.
 */
import { randomBytes } from 'node:crypto';
import { coldDockerRun, engine, engineStartSeconds, removeLabelled, TINY_IMAGE } from './lib/docker-bench.js';
import { forEachLimited, httpRequest, keepAliveAgent } from './lib/http.js';
import { freePort, startProc, waitListening } from './lib/procs.js';
import { nodeStats, ourStackExists, startStack, waitWarm, type Stack } from './lib/stack.js';
import {
  describeLoad, goalOverRounds, loadMark, loadSince, median, noteLoad, percentile, printGoals, printTable, round, spreadPct, withLoad, writeResults,
  type Goal, type LoadSpan,
} from './lib/stats.js';
import { startTmpnb, tmpnbCheckout } from './lib/tmpnb.js';
import { claimOnce, controlRequest, verifyLanding, visitor, type VisitorOutcome } from './lib/visitors.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const coldPerRound = Number(process.env.BENCH_COLD ?? 4);
const poolSize = Number(process.env.BENCH_POOL ?? 64);
const sequentialClaims = Number(process.env.BENCH_SEQ ?? 50);
const burstClaims = Math.min(60, poolSize);
const visitors = Number(process.env.BENCH_VISITORS ?? 300);
const visitorPool = 20;
const visitorMax = 400;
const runId = `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const coldLabel = `nbpool.bench=${runId}`;

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

const pct = (xs: readonly number[], p: number) => round(percentile(xs, p), 2);
const ms3 = (xs: readonly number[]) => xs.map((x) => round(x, 3));

interface EngineRound {
  round: number;
  /**
   * What the client and the machine allow at best: an empty node:http server in a process of its
   * own, asked as the stacks are (same client, same agent settings), answering without any work.
   */
  floor: { sequentialP50Ms: number; burstNewP99Ms: number; burstReusedP99Ms: number; load: LoadSpan };
  cold: { runsMs: number[]; p50Ms: number; load: LoadSpan };
  engine: { containers: number; parallel: number; seconds: number; perSecond: number; load: LoadSpan };
}

interface PeerRound {
  round: number;
  /** Where this stack ran in the round's order (0 = first). */
  position: number;
  kind: string;
  poolSize: number;
  fill: { seconds: number; perSecond: number; load: LoadSpan };
  sequential: { claimMs: number[]; firstPageMs: number[]; controlMs: number[]; load: LoadSpan };
  burst: { order: 'plain requests first' | 'claims first'; claimMs: number[]; controlMs: number[]; claimLoad: LoadSpan; controlLoad: LoadSpan };
  /** nbpool only: from the burst's first claim until the pool was full again. */
  refill?: { seconds: number; load: LoadSpan };
}

/** An empty HTTP server: answers every request at once with a few bytes. */
const EMPTY_SERVER = "require('node:http').createServer((q, s) => s.end('{}')).listen(Number(process.argv[1]), '127.0.0.1')";

async function floorOf(): Promise<EngineRound['floor']> {
  const port = await freePort();
  const server = startProc('empty node:http server', process.execPath, ['-e', EMPTY_SERVER, String(port)]);
  const agent = keepAliveAgent(128);
  const get = async () => {
    const t0 = process.hrtime.bigint();
    await httpRequest(`http://127.0.0.1:${port}/`, { agent });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  try {
    await waitListening(server, port);
    const measured = await withLoad(async () => {
      await get();
      const sequential: number[] = [];
      for (let i = 0; i < sequentialClaims; i++) sequential.push(await get());
      const burstNew = await Promise.all(Array.from({ length: burstClaims }, get));
      const burstReused = await Promise.all(Array.from({ length: burstClaims }, get));
      return { sequential, burstNew, burstReused };
    });
    const { sequential, burstNew, burstReused } = measured.value;
    return { sequentialP50Ms: pct(sequential, 50), burstNewP99Ms: pct(burstNew, 99), burstReusedP99Ms: pct(burstReused, 99), load: measured.load };
  } finally {
    agent.destroy();
    await server.stop();
  }
}

async function engineRound(r: number): Promise<EngineRound> {
  const floor = await floorOf();
  say(`  floor, an empty node:http server: sequential p50 ${floor.sequentialP50Ms} ms; ${burstClaims} at once p99 ${floor.burstNewP99Ms} ms on new connections, ${floor.burstReusedP99Ms} ms on kept ones (${describeLoad(floor.load)})`);
  const cold = await withLoad(async () => {
    const runs: number[] = [];
    for (let i = 0; i < coldPerRound; i++) runs.push(await coldDockerRun(coldLabel, r * coldPerRound + i));
    return runs;
  });
  await removeLabelled(coldLabel);
  const start = await withLoad(() => engineStartSeconds(coldLabel, burstClaims, 8));
  await removeLabelled(coldLabel);
  const result: EngineRound = {
    round: r + 1,
    floor,
    cold: { runsMs: cold.value.map((x) => round(x, 1)), p50Ms: round(median(cold.value), 1), load: cold.load },
    engine: { containers: burstClaims, parallel: 8, seconds: round(start.value, 3), perSecond: round(burstClaims / start.value, 2), load: start.load },
  };
  say(`  cold docker run ${result.cold.runsMs.join(' ')} ms (${describeLoad(cold.load)})`);
  say(`  engine: ${burstClaims} create+start, 8 at a time, ${result.engine.seconds} s = ${result.engine.perSecond}/s (${describeLoad(start.load)})`);
  return result;
}

async function burstOf<T>(make: () => Promise<T>): Promise<{ value: T[]; load: LoadSpan }> {
  return withLoad(() => Promise.all(Array.from({ length: burstClaims }, make)));
}

async function peerRound(start: () => Promise<Stack>, r: number, position: number): Promise<PeerRound> {
  const fillMark = loadMark();
  const stack = await start();
  const agent = keepAliveAgent(128);
  try {
    const filledAt = await waitWarm(stack, stack.poolSize, 600_000);
    const fillLoad = loadSince(fillMark);
    const fillStartedAt = stack.fillStartedAt();
    if (fillStartedAt === undefined) throw new Error(`${stack.name}: the engine reported no container created for it`);
    const fillSeconds = (filledAt - fillStartedAt) / 1000;
    say(`  ${stack.name}: pool of ${stack.poolSize} filled in ${fillSeconds.toFixed(1)} s from its first create (${describeLoad(fillLoad)})`);

    await claimOnce(stack.url, agent); // first request through each hop (connections, JIT)
    await controlRequest(stack.url, agent);
    if (stack.refills) await waitWarm(stack, stack.poolSize);
    const sequential = await withLoad(async () => {
      const claims: { claimMs: number; firstPageMs: number }[] = [];
      const control: number[] = [];
      for (let i = 0; i < sequentialClaims; i++) {
        // which of the pair goes first alternates, so neither always follows the other's work
        if (i % 2 === 1) control.push(await controlRequest(stack.url, agent));
        claims.push(await claimOnce(stack.url, agent));
        if (i % 2 === 0) control.push(await controlRequest(stack.url, agent));
      }
      return { claims, control };
    });
    const seqClaims = sequential.value.claims.map((c) => c.claimMs);
    say(`  ${stack.name}: ${sequentialClaims} sequential claims p50 ${pct(seqClaims, 50)} p99 ${pct(seqClaims, 99)} ms, first page p50 ${pct(sequential.value.claims.map((c) => c.firstPageMs), 50)} ms; plain GET /api/stats between them p50 ${pct(sequential.value.control, 50)} p99 ${pct(sequential.value.control, 99)} ms (${describeLoad(sequential.load)})`);

    if (stack.refills) await waitWarm(stack, stack.poolSize);
    const claimsFirst = r % 2 === 1;
    let refill: PeerRound['refill'];
    const claimBurst = async () => {
      const refillMark = loadMark();
      const burstStartedAt = Date.now();
      const burst = await burstOf(() => claimOnce(stack.url, agent, false));
      if (stack.refills) {
        const fullAt = await waitWarm(stack, stack.poolSize);
        refill = { seconds: round((fullAt - burstStartedAt) / 1000, 3), load: loadSince(refillMark) };
      }
      return burst;
    };
    const controlBurst = () => burstOf(() => controlRequest(stack.url, agent));
    let claims: Awaited<ReturnType<typeof claimBurst>>;
    let control: Awaited<ReturnType<typeof controlBurst>>;
    if (claimsFirst) {
      claims = await claimBurst();
      control = await controlBurst();
    } else {
      control = await controlBurst();
      claims = await claimBurst();
    }
    await forEachLimited(claims.value.length, 16, (i) => verifyLanding(stack.url, claims.value[i]!.location, agent));
    const ids = new Set(claims.value.map((b) => /\/user\/([^/]+)/.exec(b.location)![1]));
    if (ids.size !== claims.value.length) throw new Error(`${stack.name}: ${claims.value.length} claims at once got only ${ids.size} distinct containers`);
    const burstMs = claims.value.map((b) => b.claimMs);
    say(`  ${stack.name}: ${burstClaims} claims at once p50 ${pct(burstMs, 50)} p99 ${pct(burstMs, 99)} ms, all routes live and distinct (${describeLoad(claims.load)}); ${burstClaims} plain requests at once p99 ${pct(control.value, 99)} ms (${claimsFirst ? 'after' : 'before'} the claims)`);
    if (refill) say(`  ${stack.name}: pool full again ${refill.seconds} s after the burst began (${describeLoad(refill.load)})`);
    return {
      round: r + 1,
      position,
      kind: stack.kind,
      poolSize: stack.poolSize,
      fill: { seconds: round(fillSeconds, 3), perSecond: round(stack.poolSize / fillSeconds, 2), load: fillLoad },
      sequential: { claimMs: ms3(seqClaims), firstPageMs: ms3(sequential.value.claims.map((c) => c.firstPageMs)), controlMs: ms3(sequential.value.control), load: sequential.load },
      burst: { order: claimsFirst ? 'claims first' : 'plain requests first', claimMs: ms3(burstMs), controlMs: ms3(control.value), claimLoad: claims.load, controlLoad: control.load },
      refill,
    };
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

async function visitorsPhase() {
  const instance = `${runId}-visitors`;
  const stack = await startStack(instance, visitorPool, visitorMax, ['--queue-size', String(visitors + 100)]);
  const agent = keepAliveAgent(visitors + 16);
  try {
    await waitWarm(stack, visitorPool);
    const t0 = Date.now();
    const { value: outcomes, load } = await withLoad(() => Promise.all(Array.from({ length: visitors }, (): Promise<VisitorOutcome> => visitor(stack.url, agent, 240_000))));
    const seconds = (Date.now() - t0) / 1000;
    const landed = outcomes.filter((o) => o.landed);
    const errors = outcomes.filter((o) => !o.landed);
    const waits = landed.map((o) => o.waitMs / 1000);
    const curve = [10, 25, 50, 75, 90, 95, 99, 100].map((p) => ({ p, seconds: round(percentile(waits, p), 2) }));
    say(`  ${landed.length}/${visitors} landed in ${seconds.toFixed(1)} s (${outcomes.filter((o) => o.queued).length} waited in line), ${errors.length} errors (${describeLoad(load)})`);
    const errorKinds = new Map<string, number>();
    for (const e of errors) errorKinds.set(e.error ?? '?', (errorKinds.get(e.error ?? '?') ?? 0) + 1);
    for (const [k, n] of errorKinds) say(`    ${n} x ${k}`);
    return { visitors, pool: visitorPool, maxContainers: visitorMax, landed: landed.length, errors: errors.length, queued: outcomes.filter((o) => o.queued).length, seconds: round(seconds, 1), curve, errorKinds: Object.fromEntries(errorKinds), stats: await nodeStats(stack), load };
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

/** Median over rounds of a figure, with the rounds: "1.2 (1.1 / 1.2 / 1.9)". */
function overRounds(values: number[], digits = 2): string {
  const r = values.map((v) => round(v, digits));
  return `${round(median(values), digits)} (${r.join(' / ')})`;
}

type PeerName = 'nbpool' | 'tmpnb';

function judge(engines: EngineRound[], peers: Record<PeerName, PeerRound[]>, crowd: Awaited<ReturnType<typeof visitorsPhase>> | undefined, tmpnbSkip: string | undefined): Goal[] {
  const ours = peers.nbpool;
  const tmpnb = peers.tmpnb;
  const seqP50 = ours.map((p) => percentile(p.sequential.claimMs, 50));
  const seqP99 = ours.map((p) => percentile(p.sequential.claimMs, 99));
  const burstP99 = ours.map((p) => percentile(p.burst.claimMs, 99));
  const tmpnbBurst = tmpnb.length ? `tmpnb + CHP (which refills nothing) ${overRounds(tmpnb.map((p) => percentile(p.burst.claimMs, 99)))} ms` : 'tmpnb not measured';
  const notJudged = (name: string): Goal => ({ name, met: false, judged: false, detail: `not judged: ${tmpnbSkip}` });
  const goals: Goal[] = [
    goalOverRounds('sequential claim p50 < 1 ms', seqP50, '<', 1, ' ms', `plain request through the same hops ${overRounds(ours.map((p) => percentile(p.sequential.controlMs, 50)))} ms; an empty node:http server ${overRounds(engines.map((e) => e.floor.sequentialP50Ms))} ms`),
    tmpnb.length
      ? goalOverRounds('sequential claim p99 <= 0.5x tmpnb + CHP\'s (same round)', seqP99.map((v, i) => v / percentile(tmpnb[i]!.sequential.claimMs, 99)), '<=', 0.5, 'x', `nbpool ${overRounds(seqP99)} ms, tmpnb ${overRounds(tmpnb.map((p) => percentile(p.sequential.claimMs, 99)))} ms`)
      : notJudged('sequential claim p99 <= 0.5x tmpnb + CHP\'s'),
    goalOverRounds(`${burstClaims} claims at once while the pool refills: p99 < 20 ms`, burstP99, '<', 20, ' ms', `${tmpnbBurst}; an empty node:http server ${overRounds(engines.map((e) => e.floor.burstNewP99Ms), 1)} ms on new connections, ${overRounds(engines.map((e) => e.floor.burstReusedP99Ms), 1)} ms on kept ones`),
    goalOverRounds(`pool full again after the burst within 1.1x the engine's time to start ${burstClaims}`, ours.map((p, i) => p.refill!.seconds / engines[i]!.engine.seconds), '<=', 1.1, 'x', `nbpool ${overRounds(ours.map((p) => p.refill!.seconds))} s, engine ${overRounds(engines.map((e) => e.engine.seconds))} s`),
    goalOverRounds('pooled first page >= 100x faster than cold docker run', ours.map((p, i) => engines[i]!.cold.p50Ms / percentile(p.sequential.firstPageMs, 50)), '>=', 100, 'x', `first page ${overRounds(ours.map((p) => percentile(p.sequential.firstPageMs, 50)))} ms, cold ${overRounds(engines.map((e) => e.cold.p50Ms), 0)} ms`),
    goalOverRounds('pool fill rate >= 0.9x the engine\'s start rate', ours.map((p, i) => p.fill.perSecond / engines[i]!.engine.perSecond), '>=', 0.9, 'x', `nbpool ${overRounds(ours.map((p) => p.fill.perSecond))}/s, engine ${overRounds(engines.map((e) => e.engine.perSecond))}/s`),
  ];
  if (crowd) goals.push({ name: `all ${visitors} visitors on a pool of ${visitorPool} land, no error`, met: crowd.landed === visitors && crowd.errors === 0, detail: `${crowd.landed} landed, ${crowd.errors} errors; wait p50 ${crowd.curve[2]!.seconds} s, max ${crowd.curve[7]!.seconds} s` });
  return goals;
}

/** The figures as a Markdown table (median over rounds, then each round), ready for the README. */
function markdownSummary(engines: EngineRound[], peers: Record<PeerName, PeerRound[]>, goals: Goal[], load: string): string {
  const cell = (rs: PeerRound[], f: (p: PeerRound) => number, digits = 2) => (rs.length ? overRounds(rs.map(f), digits) : 'not measured');
  const rows: [string, (p: PeerRound) => number, number][] = [
    ['sequential claim p50, ms', (p) => percentile(p.sequential.claimMs, 50), 2],
    ['sequential claim p99, ms', (p) => percentile(p.sequential.claimMs, 99), 2],
    ['plain request via the same hops p50, ms', (p) => percentile(p.sequential.controlMs, 50), 2],
    [`${burstClaims} claims at once p50, ms`, (p) => percentile(p.burst.claimMs, 50), 1],
    [`${burstClaims} claims at once p99, ms`, (p) => percentile(p.burst.claimMs, 99), 1],
    [`${burstClaims} plain requests at once p99, ms`, (p) => percentile(p.burst.controlMs, 99), 1],
    ['first page through the pool p50, ms', (p) => percentile(p.sequential.firstPageMs, 50), 2],
    ['pool fill, containers/s', (p) => p.fill.perSecond, 2],
  ];
  const lines = [
    `| median (round 1 / 2 / ...) | nbpool up | tmpnb + CHP 5.3 |`,
    `|---|---|---|`,
    ...rows.map(([label, f, d]) => `| ${label} | ${cell(peers.nbpool, f, d)} | ${cell(peers.tmpnb, f, d)} |`),
    `| pool full again after the burst, s | ${cell(peers.nbpool, (p) => p.refill!.seconds)} | never (replaces only when it culls) |`,
    `| floor: an empty node:http server, sequential p50 / ${burstClaims} at once p99 on new connections / on kept ones, ms | ${overRounds(engines.map((e) => e.floor.sequentialP50Ms))} / ${overRounds(engines.map((e) => e.floor.burstNewP99Ms), 1)} / ${overRounds(engines.map((e) => e.floor.burstReusedP99Ms), 1)} | |`,
    `| cold \`docker run\` to first page, ms | ${overRounds(engines.map((e) => e.cold.p50Ms), 0)} | |`,
    `| engine: create+start ${burstClaims}, 8 at a time, s | ${overRounds(engines.map((e) => e.engine.seconds))} | |`,
    '',
    ...goals.map((g) => `- ${g.judged === false ? 'not judged' : g.met ? '**met**' : '**missed**'}${g.close ? ' (close)' : ''}: ${g.name}: ${g.detail}`),
    '',
    `Machine: ${load}.`,
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (!ourStackExists()) throw new Error('nbpool is not built (npm run build) or `nbpool up` is not available: nothing to measure');
  await engine.getImage(TINY_IMAGE).inspect();
  const tmpnb = tmpnbCheckout();
  const tmpnbSkip = 'skip' in tmpnb ? tmpnb.skip : undefined;
  if (tmpnbSkip) say(`tmpnb + CHP not measured: ${tmpnbSkip}`);
  const started = Date.now();
  const loadAtStart = noteLoad('at the start');
  const tmpnbPool = 1 + sequentialClaims + burstClaims; // it does not refill: one container per claim
  const nbpoolMax = poolSize + tmpnbPool + 8; // room for every claim of a round and a full pool after it
  const engines: EngineRound[] = [];
  const peers: Record<PeerName, PeerRound[]> = { nbpool: [], tmpnb: [] };
  const steps: { name: string; run: (r: number, position: number) => Promise<void> }[] = [
    { name: 'cold docker run + engine', run: async (r) => void engines.push(await engineRound(r)) },
    { name: 'nbpool up', run: async (r, position) => void peers.nbpool.push(await peerRound(() => startStack(`${runId}-r${r}`, poolSize, nbpoolMax), r, position)) },
  ];
  if ('dir' in tmpnb) steps.push({ name: 'tmpnb + CHP', run: async (r, position) => void peers.tmpnb.push(await peerRound(() => startTmpnb(tmpnb.dir, `${runId}r${r}`, tmpnbPool), r, position)) });
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? steps : [...steps].reverse();
      say(`\nround ${r + 1} of ${rounds}: ${order.map((s) => s.name).join(', then ')} (nbpool pool ${poolSize}, tmpnb pool ${tmpnbPool})`);
      for (const [position, step] of order.entries()) await step.run(r, position);
    }
    let crowd: Awaited<ReturnType<typeof visitorsPhase>> | undefined;
    if (visitors > 0) {
      say(`\n${visitors} visitors at once on a pool of ${visitorPool}, --max-containers ${visitorMax}`);
      crowd = await visitorsPhase();
    }
    const goals = judge(engines, peers, crowd, tmpnbSkip);
    const rows = (name: string, rs: PeerRound[]) => rs.length === 0 ? [] : [
      [`${name}: sequential claim p50 / p99, ms`, overRounds(rs.map((p) => percentile(p.sequential.claimMs, 50))), overRounds(rs.map((p) => percentile(p.sequential.claimMs, 99)))],
      [`${name}: ${burstClaims} at once p50 / p99, ms`, overRounds(rs.map((p) => percentile(p.burst.claimMs, 50)), 1), overRounds(rs.map((p) => percentile(p.burst.claimMs, 99)), 1)],
      [`${name}: plain request p50 / ${burstClaims} at once p99, ms`, overRounds(rs.map((p) => percentile(p.sequential.controlMs, 50))), overRounds(rs.map((p) => percentile(p.burst.controlMs, 99)), 1)],
      [`${name}: first page p50, ms / fill /s`, overRounds(rs.map((p) => percentile(p.sequential.firstPageMs, 50))), overRounds(rs.map((p) => p.fill.perSecond))],
    ];
    printTable('Claim bench: median over rounds (each round)', ['measure', 'a', 'b'], [
      ...rows('nbpool', peers.nbpool),
      ...rows('tmpnb', peers.tmpnb),
      ['nbpool: refill after the burst, s', overRounds(peers.nbpool.map((p) => p.refill!.seconds)), ''],
      ['cold docker run p50, ms / engine start 60, s', overRounds(engines.map((e) => e.cold.p50Ms), 0), overRounds(engines.map((e) => e.engine.seconds))],
    ]);
    printGoals(goals);
    const busy = [...peers.nbpool, ...peers.tmpnb].map((p) => p.sequential.load.cpuBusyPct);
    const loadLine = `2-core machine, load average ${loadAtStart.loadavg1m} at the start and ${noteLoad('now').loadavg1m} at the end; CPUs ${Math.min(...busy)}-${Math.max(...busy)}% busy during the sequential claims (spread of nbpool's sequential p50 over rounds ${spreadPct(peers.nbpool.map((p) => percentile(p.sequential.claimMs, 50)))}%)`;
    say('\n----- paste into README (bench:claim) -----');
    say(markdownSummary(engines, peers, goals, loadLine));
    say('-----');
    writeResults('claim', {
      bench: 'claim',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings: { rounds, coldPerRound, poolSize, tmpnbPool, sequentialClaims, burstClaims, visitors },
      tmpnb: tmpnbSkip ? { measured: false, why: tmpnbSkip } : { measured: true, what: 'jupyter/tmpnb orchestrate.py (BENCH_TMPNB_DIR) on Debian tornado 6 + docker-py 5 via bench/lib/run-original.py, behind configurable-http-proxy 5.3' },
      control: 'plain request: GET /api/stats through the same proxy to the orchestrator (or tmpnb), no claim: what the hops alone cost on the machine at that moment',
      engine: engines,
      peers,
      visitors: crowd,
      goals,
    }, loadAtStart);
  } finally {
    await removeLabelled(coldLabel);
  }
}

await main();
