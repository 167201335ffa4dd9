/**
 * One node for the claim benchmark, on loopback with the tiny image and a unique instance label:
 * `nbpool up` (proxy and orchestrator in one process) when it is built, else `nbpool proxy` (CHP
 * when ours is not built) with `nbpool orchestrator` as its default target, as child processes.
 * BENCH_STACK=separate measures the two-process form even when `nbpool up` exists.
 */
import { nbpoolBin, ourNodeArgs, ourProgramExists, proxyToken, startChpLike } from './peers.js';
import { freePort, startProc, waitListening, type Proc } from './procs.js';
import { httpRequest } from './http.js';
import { TINY_IMAGE } from './docker-bench.js';

export interface Stack {
  /** What runs: "nbpool up", or the proxy and orchestrator processes. */
  kind: string;
  /** The processes; the bench fails if one exits. */
  procs: Proc[];
  /** The public address visitors use (the proxy). */
  url: string;
  /** The orchestrator's own /api/stats. */
  statsUrl: string;
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
  return ourProgramExists('orchestrator');
}

function poolFlags(instance: string, poolSize: number, maxContainers: number): string[] {
  return [
    '--image', TINY_IMAGE,
    '--pool-size', String(poolSize),
    '--max-containers', String(maxContainers),
    '--instance', instance,
    '--cull-period', '600', '--cull-timeout', '0', '--cull-max', '0',
    '--log-level', 'warn',
  ];
}

async function startUp(instance: string, poolSize: number, maxContainers: number, extraArgs: string[]): Promise<Stack> {
  const [port, apiPort, orchPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const up = startProc('nbpool up', process.execPath, [
    ...ourNodeArgs, nbpoolBin, 'up',
    '--ip', '127.0.0.1', '--port', String(port),
    '--api-ip', '127.0.0.1', '--api-port', String(apiPort),
    '--orchestrator-port', String(orchPort),
    '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
    ...poolFlags(instance, poolSize, maxContainers), ...extraArgs,
  ], { CONFIGPROXY_AUTH_TOKEN: proxyToken, ADMIN_AUTH_TOKEN: 'bench' });
  await waitListening(up, port, 30_000);
  await waitListening(up, orchPort, 30_000);
  return { kind: 'nbpool up', procs: [up], url: `http://127.0.0.1:${port}`, statsUrl: `http://127.0.0.1:${orchPort}/api/stats`, stop: () => up.stop() };
}

async function startSeparate(instance: string, poolSize: number, maxContainers: number, extraArgs: string[]): Promise<Stack> {
  const orchPort = await freePort();
  const adminPort = await freePort();
  const oursProxy = ourProgramExists('proxy');
  const proxy = await startChpLike(oursProxy ? 'ours' : 'chp', oursProxy ? 'nbpool proxy' : 'CHP 5.3', `http://127.0.0.1:${orchPort}`);
  const orchestrator = startProc('nbpool orchestrator', process.execPath, [
    ...ourNodeArgs, nbpoolBin, 'orchestrator',
    '--ip', '127.0.0.1', '--port', String(orchPort),
    '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
    '--configproxy-endpoint', proxy.apiUrl,
    '--configproxy-auth-token', proxyToken,
    ...poolFlags(instance, poolSize, maxContainers), ...extraArgs,
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

export function startStack(instance: string, poolSize: number, maxContainers: number, extraArgs: string[] = []): Promise<Stack> {
  const up = process.env.BENCH_STACK !== 'separate' && ourProgramExists('up');
  return (up ? startUp : startSeparate)(instance, poolSize, maxContainers, extraArgs);
}

export async function nodeStats(stack: Stack): Promise<NodeStatsView> {
  const res = await httpRequest(stack.statsUrl);
  if (res.status !== 200) throw new Error(`GET ${stack.statsUrl} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as NodeStatsView;
}

/** Waits until `available` warm containers are ready; returns ms waited. */
export async function waitWarm(stack: Stack, available: number, timeoutMs = 180_000): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    for (const p of stack.procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited:\n${p.output()}`);
    }
    const stats = await nodeStats(stack);
    if (stats.available >= available) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pool did not reach ${available} warm containers within ${timeoutMs} ms: ${JSON.stringify(await nodeStats(stack))}`);
}
