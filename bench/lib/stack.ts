/**
 * One node for the claim benchmark: our proxy (CHP when ours is not built) with our orchestrator
 * as its default target, as child processes on loopback, the tiny image, a unique instance label.
 */
import { nbpoolBin, ourNodeArgs, ourProgramExists, proxyToken, startChpLike, type RunningProxy } from './peers.js';
import { freePort, startProc, waitListening, type Proc } from './procs.js';
import { httpRequest } from './http.js';
import { TINY_IMAGE } from './docker-bench.js';

export interface Stack {
  proxyName: string;
  proxy: RunningProxy;
  orchestrator: Proc;
  /** The public address visitors use (the proxy). */
  url: string;
  /** The orchestrator's own /api/stats (public port). */
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

export async function startStack(instance: string, poolSize: number, maxContainers: number, extraArgs: string[] = []): Promise<Stack> {
  const orchPort = await freePort();
  const adminPort = await freePort();
  const oursProxy = ourProgramExists('proxy');
  const proxy = await startChpLike(oursProxy ? 'ours' : 'chp', oursProxy ? 'nbpool proxy' : 'CHP 5.3', `http://127.0.0.1:${orchPort}`);
  const orchestrator = startProc('nbpool orchestrator', process.execPath, [
    ...ourNodeArgs,
    nbpoolBin, 'orchestrator',
    '--image', TINY_IMAGE,
    '--pool-size', String(poolSize),
    '--max-containers', String(maxContainers),
    '--ip', '127.0.0.1', '--port', String(orchPort),
    '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
    '--instance', instance,
    '--configproxy-endpoint', proxy.apiUrl,
    '--configproxy-auth-token', proxyToken,
    '--cull-period', '600', '--cull-timeout', '0', '--cull-max', '0',
    '--log-level', 'warn',
    ...extraArgs,
  ], { ADMIN_AUTH_TOKEN: 'bench' });
  try {
    await waitListening(orchestrator, orchPort, 30_000);
  } catch (err) {
    await proxy.stop();
    throw err;
  }
  return {
    proxyName: proxy.name,
    proxy,
    orchestrator,
    url: proxy.url,
    statsUrl: `http://127.0.0.1:${orchPort}/api/stats`,
    async stop() {
      await orchestrator.stop();
      await proxy.stop();
    },
  };
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
    if (stack.orchestrator.child.exitCode !== null) throw new Error(`orchestrator exited:\n${stack.orchestrator.output()}`);
    const stats = await nodeStats(stack);
    if (stats.available >= available) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pool did not reach ${available} warm containers within ${timeoutMs} ms: ${JSON.stringify(await nodeStats(stack))}`);
}

export function ourStackExists(): boolean {
  return ourProgramExists('orchestrator');
}
