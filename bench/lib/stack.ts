/**
 * One node for the claim benchmark, on loopback with the tiny image and a unique instance label:
 * `nbpool up` (proxy and orchestrator in one process), or with BENCH_STACK=separate `nbpool proxy`
 * with `nbpool orchestrator` as its default target, as child processes. Only the command line and
 * HTTP are used, so the bench measures whatever the programs do inside.
 */
import { LABELS, OWNER_LABEL } from '../../orchestrator/backend.js';
import { ourBuild, ourProgramExists, ourProgramTakes, proxyToken, startChpLike, type OurBuild } from './peers.js';
import { freePort, startProc, waitListening, type Proc } from './procs.js';
import { httpRequest } from './http.js';
import { removeLabelled, TINY_IMAGE, watchFirstCreate, type CreateWatch } from './docker-bench.js';

export interface Stack {
  /** The peer, as tables name it: "nbpool" or "tmpnb". */
  name: string;
  /** What runs: "nbpool up", or the proxy and orchestrator processes. */
  kind: string;
  poolSize: number;
  /** Replaces a claimed container at once (nbpool); the original tmpnb does only when it culls. */
  refills: boolean;
  /** Wall-clock ms of the engine's first container create for this stack: when filling started. */
  fillStartedAt(): number | undefined;
  /** The processes; the bench fails if one exits. */
  procs: Proc[];
  /** The public address visitors use (the proxy). */
  url: string;
  /** The orchestrator's own /api/stats. */
  statsUrl: string;
  /** Stops the processes and removes the stack's containers. */
  stop(): Promise<void>;
}

export interface NodeStatsView {
  available: number;
  claimed: number;
  starting: number;
  waiting: number;
  capacity: number;
  room: number;
}

export function ourStackExists(): boolean {
  return ourProgramExists(process.env.BENCH_STACK === 'separate' ? 'orchestrator' : 'up');
}

/** Every bench visitor comes from loopback: one client, so fair shares (where the build has them) would cap the bench. */
const noFairShares = (build: OurBuild, program: string) => (ourProgramTakes(build, program, '--max-per-client') ? ['--max-per-client', '0', '--claims-per-minute', '0'] : []);

function poolFlags(instance: string, poolSize: number, maxContainers: number, build: OurBuild, program: string): string[] {
  return [
    '--image', TINY_IMAGE,
    '--pool-size', String(poolSize),
    '--max-containers', String(maxContainers),
    '--instance', instance,
    '--cull-period', '600', '--cull-timeout', '0', '--cull-max', '0',
    ...noFairShares(build, program),
    '--log-level', 'warn',
  ];
}

async function startUp(instance: string, poolSize: number, maxContainers: number, extraArgs: string[], build: OurBuild): Promise<Started> {
  const [port, apiPort, orchPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const up = startProc('nbpool up', process.execPath, [
    ...build.nodeArgs, build.bin, 'up',
    '--ip', '127.0.0.1', '--port', String(port),
    '--api-ip', '127.0.0.1', '--api-port', String(apiPort),
    '--orchestrator-port', String(orchPort),
    '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
    ...poolFlags(instance, poolSize, maxContainers, build, 'up'), ...extraArgs,
  ], { CONFIGPROXY_AUTH_TOKEN: proxyToken, ADMIN_AUTH_TOKEN: 'bench' });
  await waitListening(up, port, 30_000);
  await waitListening(up, orchPort, 30_000);
  return { kind: 'nbpool up', procs: [up], url: `http://127.0.0.1:${port}`, statsUrl: `http://127.0.0.1:${orchPort}/api/stats`, stop: () => up.stop() };
}

type Started = Pick<Stack, 'kind' | 'procs' | 'url' | 'statsUrl' | 'stop'>;

async function startSeparate(instance: string, poolSize: number, maxContainers: number, extraArgs: string[], build: OurBuild): Promise<Started> {
  const orchPort = await freePort();
  const adminPort = await freePort();
  const proxy = await startChpLike('ours', 'nbpool proxy', `http://127.0.0.1:${orchPort}`);
  const orchestrator = startProc('nbpool orchestrator', process.execPath, [
    ...build.nodeArgs, build.bin, 'orchestrator',
    '--ip', '127.0.0.1', '--port', String(orchPort),
    '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
    '--configproxy-endpoint', proxy.apiUrl,
    '--configproxy-auth-token', proxyToken,
    ...poolFlags(instance, poolSize, maxContainers, build, 'orchestrator'), ...extraArgs,
  ], { ADMIN_AUTH_TOKEN: 'bench' });
  try {
    await waitListening(orchestrator, orchPort, 30_000);
  } catch (err) {
    await proxy.stop();
    throw err;
  }
  return {
    kind: `${proxy.name} + nbpool orchestrator`,
    procs: [proxy, orchestrator],
    url: proxy.url,
    statsUrl: `http://127.0.0.1:${orchPort}/api/stats`,
    async stop() {
      await orchestrator.stop();
      await proxy.stop();
    },
  };
}

/** Starts our stack (`build`: which checkout, which node flags) under a unique instance; its containers are removed when it stops. */
export async function startStack(instance: string, poolSize: number, maxContainers: number, extraArgs: string[] = [], build: OurBuild = ourBuild): Promise<Stack> {
  const start = process.env.BENCH_STACK === 'separate' ? startSeparate : startUp;
  return startWatched(
    (name, labels) => labels['nbpool.instance'] === instance,
    () => start(instance, poolSize, maxContainers, extraArgs, build),
    // the owner marker too, left behind when the node was stopped before it let go of its instance
    async () => (await removeLabelled(`${LABELS.instance}=${instance}`)) + (await removeLabelled(`${OWNER_LABEL}=${instance}`)),
    { name: 'nbpool', poolSize, refills: true },
  );
}

/**
 * Starts a stack while watching the engine for its first container, so the fill time counts from
 * when filling starts; `remove` clears its containers when it stops (or fails to start).
 */
export async function startWatched(
  matches: Parameters<typeof watchFirstCreate>[0],
  start: () => Promise<Started>,
  remove: () => Promise<number>,
  peer: Pick<Stack, 'name' | 'poolSize' | 'refills'>,
): Promise<Stack> {
  const watch: CreateWatch = await watchFirstCreate(matches);
  let started: Started;
  try {
    started = await start();
  } catch (err) {
    watch.stop();
    await remove();
    throw err;
  }
  return {
    ...peer,
    ...started,
    fillStartedAt: watch.firstAt,
    async stop() {
      watch.stop();
      try {
        await started.stop();
      } finally {
        await remove();
      }
    },
  };
}

export async function nodeStats(stack: Stack): Promise<NodeStatsView> {
  const res = await httpRequest(stack.statsUrl);
  if (res.status !== 200) throw new Error(`GET ${stack.statsUrl} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as NodeStatsView;
}

/** Waits until `available` warm containers are ready (polled every 20 ms); returns the wall-clock ms when they were. */
export async function waitWarm(stack: Stack, available: number, timeoutMs = 600_000): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    for (const p of stack.procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited:\n${p.output()}`);
    }
    const stats = await nodeStats(stack);
    if (stats.available >= available) return Date.now();
    // 100 ms: a tenth of a second on fills of 30-60 s, and the watcher's own requests stay a
    // trifle of the node's CPU (every 20 ms they cost it a few percent while it filled).
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pool did not reach ${available} warm containers within ${timeoutMs} ms: ${JSON.stringify(await nodeStats(stack))}`);
}
