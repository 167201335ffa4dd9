/**
 * Pieces the chaos tests kill and restart: the proxy as its own process (fixed ports, so a
 * restart comes back where visitors expect it), visitors who claim a container and keep using it,
 * and the count of containers nobody knows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import type { NodeStats } from '../../shared/types.js';
import { docker } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';

const NBPOOL = fileURLToPath(new URL('../../cli/nbpool.ts', import.meta.url));
/** Every request of the chaos tests is bounded: a hang is a failure with a message. */
export const fetchSoon = (url: string, init: RequestInit = {}) => globalThis.fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'manual', ...init });

export interface ProxyProcess {
  url: string;
  apiUrl: string;
  token: string;
  routes: HttpRouteTableClient;
  /** Starts it (again) on the same ports and store, and waits for its REST API. */
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function proxyProcess(defaultTarget: string, storageBackend = 'memory', extra: readonly string[] = []): Promise<ProxyProcess> {
  const [port, apiPort] = [await freePort(), await freePort()];
  const token = randomBytes(16).toString('hex');
  const routes = new HttpRouteTableClient(`http://127.0.0.1:${apiPort}`, token);
  let child: ChildProcess | undefined;
  const gone = () => !child || child.exitCode !== null || child.signalCode !== null;
  const end = async (signal: NodeJS.Signals) => {
    if (gone()) return;
    const exited = new Promise((r) => child!.once('exit', r));
    child!.kill(signal);
    await exited;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    token,
    routes,
    async start() {
      child = spawn(process.execPath, ['--import', 'tsx', NBPOOL, 'proxy', '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort),
        '--default-target', defaultTarget, '--storage-backend', storageBackend, '--log-level', 'warn', ...extra], { env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: token }, stdio: 'ignore' });
      await waitFor(() => routes.getRoutes().then(() => true), { timeoutMs: 90_000, intervalMs: 50, what: 'the proxy REST API' });
    },
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}

/** A visitor: their container's URL on the node (absolute). */
export interface Visitor {
  url: string;
}

/** Claims a container as a publisher's script does: POST /api/spawn (it waits up to --spawn-wait). */
export async function claimVisitor(nodeUrl: string): Promise<Visitor> {
  const res = await fetchSoon(`${nodeUrl}/api/spawn`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`spawn answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return { url: new URL(((await res.json()) as { url: string }).url, nodeUrl).href };
}

/** Whether the visitor's own container answers their next request. */
export async function served(visitor: Visitor): Promise<boolean> {
  try {
    const res = await fetchSoon(visitor.url);
    return res.status === 200 && /<title>tiny<\/title>/.test(await res.text());
  } catch {
    return false;
  }
}

/**
 * Keeps every visitor busy (one request each every `periodMs`) until stopped; counts failures.
 * Returns the stop function, which resolves to the number of failed requests per visitor.
 */
export function keepBusy(visitors: readonly Visitor[], periodMs = 100): () => Promise<number[]> {
  let running = true;
  const failures = visitors.map(() => 0);
  const loops = visitors.map(async (v, i) => {
    while (running) {
      if (!(await served(v))) failures[i]!++;
      await new Promise((r) => setTimeout(r, periodMs));
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
    return failures;
  };
}

/** Waits until every visitor is served; resolves to the ones never served within `timeoutMs`. */
export async function unservedAfter(visitors: readonly Visitor[], timeoutMs: number): Promise<Visitor[]> {
  const deadline = Date.now() + timeoutMs;
  let left = [...visitors];
  while (left.length && Date.now() < deadline) {
    const results = await Promise.all(left.map((v) => served(v)));
    left = left.filter((_, i) => !results[i]);
    if (left.length) await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

/** Containers of `instance` on the engine that the orchestrator's figures do not account for. */
export async function leaked(instance: string, stats: NodeStats, engine = docker()): Promise<number> {
  const list = await engine.listContainers({ all: true, filters: { label: [`nbpool.instance=${instance}`] } });
  return Math.max(0, list.length - (stats.claimed + stats.available + stats.starting));
}

/**
 * `leaked` once removals in flight have landed: waits up to `timeoutMs` for 0 (a container being
 * removed is on the engine but no longer counted), then answers the count as it is.
 */
export async function leakedAfterRemovals(instance: string, stats: () => Promise<NodeStats>, engine = docker(), timeoutMs = 10_000): Promise<number> {
  const count = async () => leaked(instance, await stats(), engine);
  return waitFor(async () => ((await count()) === 0 ? 0 : undefined), { timeoutMs, intervalMs: 250 }).catch(count);
}
