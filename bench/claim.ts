/**
 * bench:claim (issue 8). Side by side in one run: cold `docker run` of the tiny image until it
 * answers, the engine's own start rate through its API (8 at a time), and through our proxy +
 * orchestrator (when built): pool fill rate, sequential claims, 60 claims at once, first page
 * through a pooled container, and 300 visitors on a pool of 20 (--max-containers 400).
 * Env: BENCH_COLD (10 cold runs), BENCH_POOL (64), BENCH_SEQ (50), BENCH_VISITORS (300).
 */
import { randomBytes } from 'node:crypto';
import { coldDockerRun, engine, engineStartRate, removeLabelled, TINY_IMAGE } from './lib/docker-bench.js';
import { forEachLimited, keepAliveAgent } from './lib/http.js';
import { nodeStats, ourStackExists, startStack, waitWarm, type Stack } from './lib/stack.js';
import { median, percentile, noteLoad, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';
import { claimOnce, controlRequest, verifyLanding, visitor, type VisitorOutcome } from './lib/visitors.js';

const coldRuns = Number(process.env.BENCH_COLD ?? 10);
const poolSize = Number(process.env.BENCH_POOL ?? 64);
const sequentialClaims = Number(process.env.BENCH_SEQ ?? 50);
const burstClaims = Math.min(60, poolSize);
const visitors = Number(process.env.BENCH_VISITORS ?? 300);
const visitorPool = 20;
const visitorMax = 400;
const runId = `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const coldLabel = `nbpool.bench=${runId}`;
const instances = [`${runId}-claims`, `${runId}-visitors`];

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

const pct = (xs: number[], p: number) => round(percentile(xs, p), 2);

async function cleanup(): Promise<void> {
  let n = await removeLabelled(coldLabel);
  for (const i of instances) n += await removeLabelled(`nbpool.instance=${i}`);
  if (n) say(`removed ${n} containers (8 at a time)`);
}

async function claimsPhase(stack: Stack) {
  const agent = keepAliveAgent(128);
  try {
    // fill rate: from the orchestrator's first answer until the whole pool is warm
    const fillMs = await waitWarm(stack, poolSize);
    const fillRate = poolSize / (fillMs / 1000);
    say(`  pool of ${poolSize} filled in ${(fillMs / 1000).toFixed(1)} s: ${fillRate.toFixed(2)} containers/s`);

    await claimOnce(stack.url, agent); // first request through each hop (connections, JIT)
    await waitWarm(stack, poolSize);
    const sequential: { claimMs: number; firstPageMs: number }[] = [];
    const controlSequential: number[] = [];
    for (let i = 0; i < sequentialClaims; i++) {
      sequential.push(await claimOnce(stack.url, agent));
      controlSequential.push(await controlRequest(stack.url, agent));
    }
    say(`  ${sequentialClaims} sequential claims: claim p50 ${pct(sequential.map((s) => s.claimMs), 50)} ms p99 ${pct(sequential.map((s) => s.claimMs), 99)} ms; first page p50 ${pct(sequential.map((s) => s.firstPageMs), 50)} ms`);
    say(`  control, GET /api/stats through the proxy between claims: p50 ${pct(controlSequential, 50)} ms p99 ${pct(controlSequential, 99)} ms`);

    await waitWarm(stack, poolSize);
    // the control burst also opens the connections the claim burst then reuses
    const controlBurst = await Promise.all(Array.from({ length: burstClaims }, () => controlRequest(stack.url, agent)));
    say(`  control, ${burstClaims} GET /api/stats at once through the proxy: p50 ${pct(controlBurst, 50)} ms p99 ${pct(controlBurst, 99)} ms`);
    const burst = await Promise.all(Array.from({ length: burstClaims }, () => claimOnce(stack.url, agent, false)));
    await forEachLimited(burst.length, 16, (i) => verifyLanding(stack.url, burst[i]!.location, agent));
    const ids = new Set(burst.map((b) => /\/user\/([^/]+)/.exec(b.location)![1]));
    if (ids.size !== burst.length) throw new Error(`${burst.length} claims at once got only ${ids.size} distinct containers`);
    say(`  ${burstClaims} claims at once: p50 ${pct(burst.map((b) => b.claimMs), 50)} ms p99 ${pct(burst.map((b) => b.claimMs), 99)} ms (all routes live, all distinct)`);
    return { fillMs, fillRate, sequential, controlSequential, burst: burst.map((b) => b.claimMs), controlBurst };
  } finally {
    agent.destroy();
  }
}

async function visitorsPhase(stack: Stack) {
  const agent = keepAliveAgent(visitors + 16);
  try {
    await waitWarm(stack, visitorPool);
    const t0 = Date.now();
    const outcomes: VisitorOutcome[] = await Promise.all(Array.from({ length: visitors }, () => visitor(stack.url, agent, 240_000)));
    const seconds = (Date.now() - t0) / 1000;
    const landed = outcomes.filter((o) => o.landed);
    const errors = outcomes.filter((o) => !o.landed);
    const waits = landed.map((o) => o.waitMs / 1000);
    const curve = [10, 25, 50, 75, 90, 95, 99, 100].map((p) => ({ p, seconds: round(percentile(waits, p), 2) }));
    say(`  ${landed.length}/${visitors} landed in ${seconds.toFixed(1)} s (${outcomes.filter((o) => o.queued).length} waited in line), ${errors.length} errors`);
    const errorKinds = new Map<string, number>();
    for (const e of errors) errorKinds.set(e.error ?? '?', (errorKinds.get(e.error ?? '?') ?? 0) + 1);
    for (const [k, n] of errorKinds) say(`    ${n} x ${k}`);
    return { landed: landed.length, errors: errors.length, queued: outcomes.filter((o) => o.queued).length, seconds, curve, errorKinds: Object.fromEntries(errorKinds), stats: await nodeStats(stack) };
  } finally {
    agent.destroy();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = noteLoad('at the start');
  await engine.getImage(TINY_IMAGE).inspect();
  try {
    say(`cold docker run of ${TINY_IMAGE} until it answers, ${coldRuns} times`);
    const cold: number[] = [];
    for (let i = 0; i < coldRuns; i++) cold.push(await coldDockerRun(coldLabel, i));
    say(`  ${cold.map((ms) => ms.toFixed(0)).join(' ')} ms`);
    await removeLabelled(coldLabel);

    const engineCount = ourStackExists() ? poolSize : 24;
    say(`engine start rate: ${engineCount} create+start through the API, 8 at a time`);
    const engineRate = await engineStartRate(coldLabel, engineCount, 8);
    say(`  ${engineRate.toFixed(2)} containers/s`);
    await removeLabelled(coldLabel);

    const coldP50 = median(cold);
    const rows: (string | number)[][] = [
      ['cold docker run to first page p50', round(coldP50, 1), 'ms', ''],
      ['engine start rate, 8 at a time', round(engineRate, 2), 'containers/s', ''],
    ];
    const goals: Goal[] = [];
    let claims: Awaited<ReturnType<typeof claimsPhase>> | undefined;
    let crowd: Awaited<ReturnType<typeof visitorsPhase>> | undefined;
    let stackKind: string | undefined;
    if (ourStackExists()) {
      say(`\nproxy + orchestrator, pool of ${poolSize} (instance ${instances[0]})`);
      const stack = await startStack(instances[0]!, poolSize, visitorMax);
      stackKind = stack.kind;
      try {
        claims = await claimsPhase(stack);
      } finally {
        await stack.stop();
        await removeLabelled(`nbpool.instance=${instances[0]}`);
      }
      say(`\n${visitors} visitors at once on a pool of ${visitorPool}, --max-containers ${visitorMax} (instance ${instances[1]})`);
      const crowdStack = await startStack(instances[1]!, visitorPool, visitorMax, ['--queue-size', String(visitors + 100)]);
      try {
        crowd = await visitorsPhase(crowdStack);
      } finally {
        await crowdStack.stop();
      }
      const seqClaim = claims.sequential.map((s) => s.claimMs);
      const firstPage = median(claims.sequential.map((s) => s.firstPageMs));
      rows.push(
        ['pool fill rate', round(claims.fillRate, 2), 'containers/s', `x${round(claims.fillRate / engineRate)} engine`],
        ['sequential claim p50', pct(seqClaim, 50), 'ms', ''],
        ['sequential claim p99', pct(seqClaim, 99), 'ms', ''],
        ['  control: GET /api/stats via proxy p50', pct(claims.controlSequential, 50), 'ms', 'same hops, no claim'],
        ['  control: GET /api/stats via proxy p99', pct(claims.controlSequential, 99), 'ms', ''],
        [`${burstClaims} claims at once p50`, pct(claims.burst, 50), 'ms', ''],
        [`${burstClaims} claims at once p99`, pct(claims.burst, 99), 'ms', ''],
        [`  control: ${burstClaims} GET /api/stats at once p99`, pct(claims.controlBurst, 99), 'ms', 'same hops, no claim'],
        ['first page through the pool p50', round(firstPage, 2), 'ms', `x${round(coldP50 / firstPage, 0)} faster than cold`],
        [`${visitors} visitors on a pool of ${visitorPool}: landed`, crowd.landed, 'visitors', `${crowd.errors} errors`],
        ...crowd.curve.map((c): (string | number)[] => [`  wait p${c.p}`, c.seconds, 's', '']),
      );
      goals.push(
        { name: 'sequential claim p50 < 1 ms', met: percentile(seqClaim, 50) < 1, detail: `${pct(seqClaim, 50)} ms` },
        { name: 'sequential claim p99 < 5 ms', met: percentile(seqClaim, 99) < 5, detail: `${pct(seqClaim, 99)} ms` },
        { name: `${burstClaims} claims at once p99 < 20 ms`, met: percentile(claims.burst, 99) < 20, detail: `${pct(claims.burst, 99)} ms (p50 ${pct(claims.burst, 50)})` },
        { name: 'first page through the pool >= 100x faster than cold docker run', met: coldP50 / firstPage >= 100, detail: `${round(firstPage, 2)} ms vs ${round(coldP50, 0)} ms (x${round(coldP50 / firstPage, 0)})` },
        { name: 'pool fill rate >= 0.9x engine start rate', met: claims.fillRate >= 0.9 * engineRate, detail: `${round(claims.fillRate, 2)} vs ${round(engineRate, 2)} containers/s (x${round(claims.fillRate / engineRate)})` },
        { name: `all ${visitors} visitors land, no error`, met: crowd.landed === visitors && crowd.errors === 0, detail: `${crowd.landed} landed, ${crowd.errors} errors; wait p50 ${crowd.curve[2]!.seconds} s, p100 ${crowd.curve[7]!.seconds} s` },
      );
    } else {
      say('nbpool orchestrator is not built or not implemented yet: cold-start side only');
    }
    printTable(`Claim bench${stackKind ? ` (${stackKind})` : ''}`, ['measure', 'value', 'unit', 'ratio'], rows);
    if (goals.length) printGoals(goals);
    else say('\nGoals: not judged (nbpool orchestrator not available yet)');
    writeResults('claim', {
      bench: 'claim',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      stack: stackKind,
      cold: { runs: cold.map((x) => round(x, 1)), p50Ms: round(coldP50, 1) },
      engine: { containers: engineCount, parallel: 8, perSecond: round(engineRate, 2) },
      orchestratorMeasured: claims !== undefined,
      claims: claims && {
        poolSize,
        fillSeconds: round(claims.fillMs / 1000, 2),
        fillPerSecond: round(claims.fillRate, 2),
        fillVsEngine: round(claims.fillRate / engineRate, 2),
        sequential: { count: sequentialClaims, claimP50Ms: pct(claims.sequential.map((s) => s.claimMs), 50), claimP99Ms: pct(claims.sequential.map((s) => s.claimMs), 99), firstPageP50Ms: round(median(claims.sequential.map((s) => s.firstPageMs)), 2) },
        atOnce: { count: burstClaims, p50Ms: pct(claims.burst, 50), p99Ms: pct(claims.burst, 99) },
        control: {
          what: 'GET /api/stats through the same proxy to the orchestrator, no claim: the cost of the hops on the machine at that moment',
          sequentialP50Ms: pct(claims.controlSequential, 50),
          sequentialP99Ms: pct(claims.controlSequential, 99),
          atOnceP50Ms: pct(claims.controlBurst, 50),
          atOnceP99Ms: pct(claims.controlBurst, 99),
        },
        firstPageVsCold: round(coldP50 / median(claims.sequential.map((s) => s.firstPageMs)), 1),
      },
      visitors: crowd && { visitors, pool: visitorPool, maxContainers: visitorMax, ...crowd },
      goals,
    }, loadAtStart);
  } finally {
    await cleanup();
  }
}

await main();
