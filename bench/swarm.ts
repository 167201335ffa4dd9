/**
 * bench:swarm (issue 13). A real swarm here: this engine as manager, two namespaced worker engines
 * (test/helpers/swarm.ts, dispatcher heartbeat 2 s), the tiny image. Side by side in one run:
 * - sequential claims through the proxy, docker backend (this engine) vs swarm backend, alternated;
 * - pool fill on swarm vs the swarm's own rate of service create until the task answers, 8 at a time;
 * - a paused node (0 visitors lost, nothing new placed there) and, for the record, a drained one;
 * - a worker lost (every process of its engine killed): time until the pool is back to size on the
 *   survivor, and failed requests of the visitors there.
 * - routing to a task on another node: overlay address vs node address + host-mode port
 *   (lib/swarm-routing.ts; needs the nbpool/nbpool image, deploy/build-image.sh).
 * The orchestrators heal on a 0.5 s pass (--cull-period), standing in for the reconcile timer.
 * Env: BENCH_ROUNDS (3), BENCH_SEQ (8 claims a round a backend; also the pool size), BENCH_FILL (16).
 */
import { randomBytes } from 'node:crypto';
import { LABELS } from '../orchestrator/backend.js';
import { serviceSpec, SwarmBackend, type SwarmTask } from '../orchestrator/swarm-backend.js';
import { TINY_IMAGE } from '../test/helpers/docker.js';
import { waitFor } from '../test/helpers/net.js';
import { startSwarm, type SwarmWorker, type TestSwarm } from '../test/helpers/swarm.js';
import { startNode, TINY_COMMAND, type Node } from '../test/orchestrator/harness.js';
import { forEachLimited, httpRequest, keepAliveAgent } from './lib/http.js';
import { median, noteLoad, percentile, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';
import { measureRouting, PROXY_IMAGE } from './lib/swarm-routing.js';
import { claimOnce } from './lib/visitors.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seq = Number(process.env.BENCH_SEQ ?? 8);
const fill = Number(process.env.BENCH_FILL ?? 16);
const pool = seq;

const say = (msg: string) => process.stdout.write(msg + '\n');
const since = (t0: number) => performance.now() - t0;
const pct = (xs: number[], p: number) => round(percentile(xs, p), 2);

const nodeArgs = ['--pool-size', String(pool), '--max-containers', '400', '--mem-limit', '32m', '--cull-period', '0.5', '--probe-timeout', '30'];

/** The swarm's own rate: services created through the API, 8 at a time, each until its task answers HTTP. */
async function serviceCreateRate(swarm: TestSwarm, label: string, count: number): Promise<{ perSecond: number; eachMs: number[] }> {
  const eachMs: number[] = [];
  const t0 = performance.now();
  const ids = await forEachLimited(count, 8, async (i) => {
    const t = performance.now();
    const name = `${label}-${i}`;
    const base = `/user/${name}/`;
    const spec = serviceSpec({ name, image: TINY_IMAGE, cmd: TINY_COMMAND.replace('{base_path}', base).replace('{port}', '8888').replace('{ip}', '0.0.0.0').replace('{token}', '').split(' '), env: [], labels: { 'nbpool.bench': label }, port: 8888, publishIp: '', memoryBytes: 32 << 20, binds: [], capAdd: [], readOnlyRoot: false, tmpfs: ['/tmp'], egress: true }, ['node.role==worker']);
    const { id } = (await swarm.docker.createService(spec as never)) as { id: string };
    const target = await waitFor(async () => {
      const [task] = (await swarm.docker.listTasks({ filters: { service: [id] } })) as SwarmTask[];
      const port = task?.Status?.State === 'running' ? task.Status.PortStatus?.Ports?.[0]?.PublishedPort : undefined;
      return port ? `http://${swarm.workerOf(task!.NodeID!)!.address}:${port}` : undefined;
    }, { timeoutMs: 60_000, intervalMs: 50, what: `service ${name} running` });
    await waitFor(async () => (await httpRequest(`${target}${base}api`)).status === 200 || undefined, { timeoutMs: 30_000, intervalMs: 50, what: `${name} answering` });
    eachMs.push(since(t));
    return id;
  });
  const perSecond = count / (since(t0) / 1000);
  for (let i = 0; i < ids.length; i += 8) await Promise.allSettled(ids.slice(i, i + 8).map((id) => swarm.docker.getService(id).remove()));
  return { perSecond, eachMs };
}

/** Waits until removed services' tasks are gone from the workers (containers stopped), so no phase pays for the last one's removals. */
async function settle(swarm: TestSwarm): Promise<void> {
  await waitFor(async () => {
    const [services, tasks] = await Promise.all([swarm.docker.listServices(), swarm.docker.listTasks()]);
    return tasks.length <= services.length || undefined;
  }, { timeoutMs: 120_000, intervalMs: 200, what: "removed services' tasks gone" });
}

async function warm(node: Node): Promise<number> {
  return node.orch.orchestrator.stats().pools.default?.warm ?? 0;
}

async function untilWarm(node: Node, n: number, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now();
  await waitFor(async () => (await warm(node)) === n || undefined, { timeoutMs, intervalMs: 20, what: `${n} warm` });
  return since(t0);
}

/** user id -> node id of an instance's running tasks. */
async function placement(swarm: TestSwarm, instance: string): Promise<Map<string, string>> {
  const filters = { label: [`${LABELS.instance}=${instance}`] };
  const [services, tasks] = await Promise.all([swarm.docker.listServices({ filters }), swarm.docker.listTasks({ filters: { ...filters, 'desired-state': ['running'] } }) as Promise<SwarmTask[]>]);
  const userOf = new Map(services.map((s) => [s.ID, s.Spec?.Labels?.[LABELS.user] ?? '']));
  return new Map(tasks.filter((t) => t.Status?.State === 'running' && userOf.has(t.ServiceID)).map((t) => [userOf.get(t.ServiceID)!, t.NodeID!]));
}

async function setAvailability(swarm: TestSwarm, worker: SwarmWorker, availability: string): Promise<void> {
  const n = swarm.docker.getNode(worker.nodeId);
  const info = (await n.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
  await n.update({ _query: { version: info.Version.Index }, _body: { ...info.Spec, Availability: availability } });
}

/** Requests every visitor's page in turn until stopped; counts the failures. */
function pollVisitors(node: Node, locations: () => string[]) {
  const agent = keepAliveAgent(16);
  let running = true;
  let requests = 0;
  let failures = 0;
  const done = (async () => {
    while (running) {
      for (const location of locations()) {
        requests++;
        const page = await httpRequest(`${node.proxy.url}${location}`, { agent }).catch(() => undefined);
        if (page?.status !== 200 || !page.body.includes('<title>tiny</title>')) failures++;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      agent.destroy();
      return { requests, failures };
    },
  };
}

async function main(): Promise<void> {
  const loadAtStart = noteLoad('at the start');
  const started = performance.now();
  const runId = randomBytes(3).toString('hex');
  say('starting a swarm: this engine + 2 namespaced workers ...');
  const swarm = await startSwarm(2, [TINY_IMAGE]);
  const nodes: Node[] = [];
  try {
    const backend = new SwarmBackend(swarm.docker, { constraints: ['node.role==worker'], startTimeoutMs: 60_000 });
    const onDocker = await startNode('bench-dock', nodeArgs);
    nodes.push(onDocker);
    const onSwarm = await startNode('bench-swarm', nodeArgs, {}, backend);
    nodes.push(onSwarm);
    const agent = keepAliveAgent(8);

    // 1. Sequential claims, alternated.
    const claims: Record<'docker' | 'swarm', number[]> = { docker: [], swarm: [] };
    const firstPage: Record<'docker' | 'swarm', number[]> = { docker: [], swarm: [] };
    const visitors: string[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const [kind, node] of [['docker', onDocker], ['swarm', onSwarm]] as const) {
        await untilWarm(node, pool);
        for (let i = 0; i < seq; i++) {
          const c = await claimOnce(node.proxy.url, agent);
          claims[kind].push(c.claimMs);
          firstPage[kind].push(c.firstPageMs);
          if (kind === 'swarm') visitors.push(c.location);
        }
      }
      say(`  round ${r + 1}: claim p50 docker ${pct(claims.docker.slice(-seq), 50)} ms, swarm ${pct(claims.swarm.slice(-seq), 50)} ms`);
    }
    await onDocker.stop();
    nodes.splice(nodes.indexOf(onDocker), 1);

    // 2. Fill rate: the swarm's own service-create rate vs the pool filling from empty, alternated.
    const own: { perSecond: number; eachMs: number[] }[] = [];
    const ours: number[] = [];
    for (let r = 0; r < 2; r++) {
      await settle(swarm);
      own.push(await serviceCreateRate(swarm, `bench-${runId}-${r}`, fill));
      onSwarm.orch.orchestrator.resize('default', 0);
      await untilWarm(onSwarm, 0);
      await waitFor(async () => (await swarm.docker.listServices({ filters: { label: [`${LABELS.instance}=${onSwarm.instance}`] } })).length === visitors.length || undefined, { timeoutMs: 60_000, what: 'warm services removed' });
      await settle(swarm);
      const t0 = performance.now();
      onSwarm.orch.orchestrator.resize('default', fill);
      await untilWarm(onSwarm, fill);
      ours.push(fill / (since(t0) / 1000));
      say(`  fill round ${r + 1}: service create until answering ${round(own[r]!.perSecond)}/s, pool fill ${round(ours[r]!)}/s`);
    }
    onSwarm.orch.orchestrator.resize('default', pool);
    await waitFor(async () => (await swarm.docker.listServices({ filters: { label: [`${LABELS.instance}=${onSwarm.instance}`] } })).length === visitors.length + pool || undefined, { timeoutMs: 60_000, what: 'pool trimmed' });
    const oneStartMs = median(own.flatMap((o) => o.eachMs));

    const [a, b] = swarm.workers as [SwarmWorker, SwarmWorker];
    const userOf = (location: string) => /^\/user\/([^/]+)/.exec(location)![1]!;

    // 3. A paused node: visitors kept, warm containers moved, nothing new placed there.
    const beforePause = await placement(swarm, onSwarm.instance);
    const onA = new Set([...beforePause].filter(([, n]) => n === a.nodeId).map(([id]) => id));
    const pausePoll = pollVisitors(onSwarm, () => visitors);
    const claimedBefore = onSwarm.orch.orchestrator.stats().claimed;
    const tPause = performance.now();
    await setAvailability(swarm, a, 'pause');
    await waitFor(async () => {
      const where = await placement(swarm, onSwarm.instance);
      return ([...where].every(([id, n]) => n !== a.nodeId || visitors.some((v) => userOf(v) === id)) && (await warm(onSwarm)) === pool) || undefined;
    }, { timeoutMs: 60_000, intervalMs: 50, what: 'warm containers off the paused node' });
    const pauseMoveMs = since(tPause);
    for (let i = 0; i < pool; i++) visitors.push((await claimOnce(onSwarm.proxy.url, agent)).location);
    await untilWarm(onSwarm, pool);
    const pauseResult = await pausePoll.stop();
    const afterPause = await placement(swarm, onSwarm.instance);
    const placedOnPaused = [...afterPause].filter(([id, n]) => n === a.nodeId && !onA.has(id)).length;
    const pauseLost = claimedBefore + pool - onSwarm.orch.orchestrator.stats().claimed;
    say(`  pause: warm moved in ${round(pauseMoveMs / 1000)} s, ${pauseResult.failures}/${pauseResult.requests} visitor requests failed, ${pauseLost} visitors lost, ${placedOnPaused} new on the paused node`);

    // For the record: drain (swarm stops every task there, visitors included).
    const onADrained = [...afterPause].filter(([id, n]) => n === a.nodeId && visitors.some((v) => userOf(v) === id)).length;
    await setAvailability(swarm, a, 'drain');
    await waitFor(async () => ![...(await placement(swarm, onSwarm.instance)).values()].includes(a.nodeId) || undefined, { timeoutMs: 60_000, what: 'drained node empty' });
    await setAvailability(swarm, a, 'active');
    const survivors = new Set((await placement(swarm, onSwarm.instance)).keys());
    visitors.splice(0, visitors.length, ...visitors.filter((v) => survivors.has(userOf(v))));
    say(`  drain: ${onADrained} visitors on the drained node lost (swarm stops its tasks); the rest kept`);

    // 4. A worker lost. Claims first, so new warm containers land on the emptied worker a.
    for (let i = 0; i < pool; i++) {
      visitors.push((await claimOnce(onSwarm.proxy.url, agent)).location);
      await untilWarm(onSwarm, pool);
    }
    const beforeKill = await placement(swarm, onSwarm.instance);
    const safe = visitors.filter((v) => beforeKill.get(userOf(v)) === b.nodeId);
    const warmOnA = [...beforeKill].filter(([id, n]) => n === a.nodeId && !visitors.some((v) => userOf(v) === id)).length;
    const killPoll = pollVisitors(onSwarm, () => safe);
    const tKill = performance.now();
    await a.kill();
    let tDetect = 0;
    await waitFor(async () => {
      const found = await backend.list(LABELS.instance, onSwarm.instance);
      if (!tDetect && found.some((c) => !c.running)) tDetect = performance.now();
      const where = [...(await placement(swarm, onSwarm.instance)).values()];
      return (tDetect && (await warm(onSwarm)) === pool && !where.includes(a.nodeId)) || undefined;
    }, { timeoutMs: 120_000, intervalMs: 50, what: 'pool back to size on the survivor' });
    const tFull = performance.now();
    const killResult = await killPoll.stop();
    const detectMs = tDetect - tKill;
    const replaceMs = tFull - tDetect;
    say(`  worker lost (${warmOnA} warm on it): swarm noticed after ${round(detectMs / 1000)} s, pool back to size ${round(replaceMs / 1000)} s later; ${killResult.failures}/${killResult.requests} requests to the ${safe.length} visitors on the survivor failed`);

    // 5. Routing, on the surviving worker.
    const haveProxyImage = await swarm.docker.getImage(PROXY_IMAGE).inspect().then(() => true, () => false);
    const routing = haveProxyImage ? await measureRouting(swarm, b, TINY_IMAGE, TINY_COMMAND.replace('{base_path}', '/user/r0/').replace('{port}', '8888').replace('{ip}', '0.0.0.0').replace('{token}', '').split(' ')) : undefined;
    if (routing) {
      for (const [route, figures] of Object.entries(routing)) {
        say(`  ${route}: first byte after route add p50 ${figures.map((f) => f.firstByteP50Ms).join(' / ')} ms; ${figures.map((f) => f.reqPerSec).join(' / ')} req/s (p99 ${figures.map((f) => f.p99Ms).join(' / ')} ms)`);
      }
    } else {
      say(`  routing not measured: no ${PROXY_IMAGE} image (deploy/build-image.sh)`);
    }

    const docker50 = median(claims.docker);
    const swarm50 = median(claims.swarm);
    const fillOurs = median(ours);
    const fillOwn = median(own.map((o) => o.perSecond));
    const goals: Goal[] = [
      { name: 'sequential claim p50 on swarm within 1.5x docker', met: swarm50 <= 1.5 * docker50, detail: `swarm ${round(swarm50)} ms vs docker ${round(docker50)} ms (${round(swarm50 / docker50)}x)` },
      { name: 'pool fill on swarm >= 0.9x service create until answering (8 at a time)', met: fillOurs >= 0.9 * fillOwn, detail: `${round(fillOurs)} vs ${round(fillOwn)} services/s (${round(fillOurs / fillOwn)}x)` },
      { name: 'worker lost: pool back to size within 2x one service start', met: replaceMs <= 2 * oneStartMs, detail: `${round(replaceMs / 1000)} s after the swarm noticed (one start: ${round(oneStartMs / 1000)} s); the swarm noticed ${round(detectMs / 1000)} s after the kill (heartbeat 2 s)` },
      { name: 'worker lost: 0 failed requests for visitors on other nodes', met: killResult.failures === 0, detail: `${killResult.failures} of ${killResult.requests}` },
      { name: 'node paused (drain without losing anyone): 0 visitors lost, 0 new containers on it', met: pauseLost === 0 && pauseResult.failures === 0 && placedOnPaused === 0, detail: `${pauseLost} lost, ${pauseResult.failures}/${pauseResult.requests} requests failed, ${placedOnPaused} placed on it` },
    ];
    printTable('Swarm bench (2 namespaced workers, tiny image)', ['measure', 'value', 'unit'], [
      ['claim p50, docker backend', round(docker50), 'ms'],
      ['claim p50, swarm backend', round(swarm50), 'ms'],
      ['claim p99 docker / swarm', `${pct(claims.docker, 99)} / ${pct(claims.swarm, 99)}`, 'ms'],
      ['first page p50 docker / swarm', `${round(median(firstPage.docker))} / ${round(median(firstPage.swarm))}`, 'ms'],
      ['service create until answering', round(fillOwn), 'services/s'],
      ['pool fill', round(fillOurs), 'services/s'],
      ['one service start (p50)', round(oneStartMs / 1000), 's'],
      ['worker lost: noticed after', round(detectMs / 1000), 's'],
      ['worker lost: back to pool size after notice', round(replaceMs / 1000), 's'],
    ]);
    printGoals(goals);
    writeResults('swarm', {
      bench: 'swarm',
      date: new Date().toISOString(),
      seconds: round((performance.now() - started) / 1000, 1),
      swarm: { workers: 2, heartbeat: '2s', image: TINY_IMAGE, healPeriodSeconds: 0.5 },
      claims: {
        perRoundPerBackend: seq,
        rounds,
        docker: { p50Ms: round(docker50), p99Ms: pct(claims.docker, 99), firstPageP50Ms: round(median(firstPage.docker)), roundP50sMs: Array.from({ length: rounds }, (_, r) => pct(claims.docker.slice(r * seq, (r + 1) * seq), 50)) },
        swarm: { p50Ms: round(swarm50), p99Ms: pct(claims.swarm, 99), firstPageP50Ms: round(median(firstPage.swarm)), roundP50sMs: Array.from({ length: rounds }, (_, r) => pct(claims.swarm.slice(r * seq, (r + 1) * seq), 50)) },
      },
      fill: { services: fill, parallel: 8, serviceCreatePerSecond: own.map((o) => round(o.perSecond)), poolFillPerSecond: ours.map((x) => round(x)), oneStartP50Seconds: round(oneStartMs / 1000) },
      pause: { warmMovedSeconds: round(pauseMoveMs / 1000), visitorsLost: pauseLost, requests: pauseResult.requests, failedRequests: pauseResult.failures, placedOnPausedNode: placedOnPaused },
      drain: { visitorsOnDrainedNodeLost: onADrained, note: 'swarm stops every task on a drained node; pause it first and drain once its visitors are gone' },
      routing: routing ?? `not measured: no ${PROXY_IMAGE} image`,
      workerLost: { warmOnIt: warmOnA, noticedAfterSeconds: round(detectMs / 1000), backToSizeAfterNoticeSeconds: round(replaceMs / 1000), killToFullSeconds: round((tFull - tKill) / 1000), visitorsOnSurvivor: safe.length, requests: killResult.requests, failedRequests: killResult.failures },
      goals,
    }, loadAtStart);
    agent.destroy();
  } finally {
    for (const n of nodes) await n.orch.close().catch(() => undefined);
    for (const n of nodes) await n.proxy.stop().catch(() => undefined);
    await swarm.stop();
  }
}

await main();
