/**
 * An engine, a probe and a route table in memory, so the orchestrator's rules (claims, waiting line,
 * cull, heal, adopt, backoff, drain, engine loss) are tested in milliseconds. The same rules run
 * against the real Docker engine in the other files of this folder.
 */
import { silentLogger, type Logger } from '../../shared/log.js';
import { createRegistry } from '../../shared/metrics.js';
import type { RouteData, RouteTableClient } from '../../shared/types.js';
import type { ContainerBackend, ContainerSpec, EngineWatcher, FoundContainer, StartedContainer } from '../../orchestrator/backend.js';
import { MemoryClaimJournal, type ClaimJournal } from '../../orchestrator/claim-journal.js';
import type { OrchestratorConfig } from '../../orchestrator/config.js';
import { Orchestrator } from '../../orchestrator/orchestrator.js';
import type { AppActivityProbe } from '../../orchestrator/app-activity.js';
import type { ReadinessProbe } from '../../orchestrator/probe.js';

interface FakeContainer {
  spec: ContainerSpec;
  containerId: string;
  running: boolean;
  claimed: boolean;
  port: number;
}

export class FakeEngine implements ContainerBackend {
  readonly kind = 'fake';
  readonly capabilities = { exec: false };
  readonly containers = new Map<string, FakeContainer>();
  /** When set, start() rejects with it (an image removed, a full disk). */
  startError: Error | undefined;
  /** When false, every call rejects (engine stopped). */
  up = true;
  /** How long start() takes (a slow engine, a heavy image). */
  startDelayMs = 0;
  starts = 0;
  removes = 0;
  /** Listings asked for (reconcile passes). */
  lists = 0;
  private nextPort = 40000;
  private watchers: EngineWatcher[] = [];

  private check(): void {
    if (!this.up) throw new Error('connect ECONNREFUSED /var/run/docker.sock');
  }

  async start(spec: ContainerSpec): Promise<StartedContainer> {
    this.check();
    this.starts++;
    if (this.startDelayMs) await new Promise((r) => setTimeout(r, this.startDelayMs));
    if (this.startError) throw this.startError;
    const containerId = `cid-${spec.name}`;
    const port = this.nextPort++;
    this.containers.set(containerId, { spec, containerId, running: true, claimed: false, port });
    return { containerId, target: `http://127.0.0.1:${port}` };
  }

  async list(label: string, value: string): Promise<FoundContainer[]> {
    this.check();
    this.lists++;
    return [...this.containers.values()]
      .filter((c) => c.spec.labels[label] === value)
      .map((c) => ({
        containerId: c.containerId,
        name: c.spec.name,
        labels: c.spec.labels,
        running: c.running,
        claimed: c.claimed,
        target: c.running ? `http://127.0.0.1:${c.port}` : undefined,
      }));
  }

  async isRunning(containerId: string): Promise<boolean> {
    this.check();
    return this.containers.get(containerId)?.running ?? false;
  }

  async remove(containerId: string): Promise<void> {
    this.check();
    this.removes++;
    this.containers.delete(containerId);
  }

  async markClaimed(containerId: string): Promise<void> {
    this.check();
    const c = this.containers.get(containerId);
    if (c) c.claimed = true;
  }

  /** Instances owned here: a second owner is refused, as the real engines do. */
  readonly owners = new Set<string>();

  async acquireInstance(instance: string): Promise<() => Promise<void>> {
    if (this.owners.has(instance)) throw new Error(`instance ${instance} is taken`);
    this.owners.add(instance);
    return async () => void this.owners.delete(instance);
  }

  watch(_label: string, _value: string, watcher: EngineWatcher): () => void {
    this.watchers.push(watcher);
    return () => (this.watchers = this.watchers.filter((w) => w !== watcher));
  }

  /** A container dies (killed, out of memory), and the engine says so. */
  kill(containerId: string, reason = 'exited with code 137'): void {
    const c = this.containers.get(containerId)!;
    c.running = false;
    for (const w of this.watchers) w.exited(containerId, reason);
  }

  /** The engine stops: every container dies with it. */
  stop(): void {
    this.up = false;
    for (const c of this.containers.values()) c.running = false;
    for (const w of this.watchers) w.lost(new Error('the engine closed its event stream'));
  }

  restart(): void {
    this.up = true;
    for (const w of this.watchers) w.restored();
  }

  byVisitor(id: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.spec.labels['nbpool.user'] === id);
  }
}

/** Every container answers at once, except those the engine no longer runs. */
export class FakeProbe implements ReadinessProbe {
  constructor(private readonly engine: FakeEngine) {}

  async check(url: string): Promise<void> {
    const port = Number(new URL(url).port);
    const c = [...this.engine.containers.values()].find((x) => x.port === port);
    if (!c?.running) throw new Error('connect ECONNREFUSED');
  }
}

export class MemoryRoutes implements RouteTableClient {
  readonly routes = new Map<string, RouteData>();

  async addRoute(path: string, data: RouteData): Promise<void> {
    this.routes.set(path, { ...data });
  }

  async deleteRoute(path: string): Promise<void> {
    this.routes.delete(path);
  }

  async getRoutes(): Promise<Record<string, RouteData>> {
    return Object.fromEntries(this.routes);
  }
}

export interface FakeNode {
  orch: Orchestrator;
  engine: FakeEngine;
  routes: MemoryRoutes;
  journal: ClaimJournal;
}

export function fakeOrchestrator(config: OrchestratorConfig, shared: Partial<Omit<FakeNode, 'orch'>> & { activity?: AppActivityProbe; log?: Logger } = {}): FakeNode {
  const engine = shared.engine ?? new FakeEngine();
  const routes = shared.routes ?? new MemoryRoutes();
  const journal = shared.journal ?? new MemoryClaimJournal();
  const orch = new Orchestrator(config, { routes, log: shared.log ?? silentLogger(), backend: engine, probe: new FakeProbe(engine), journal, activity: shared.activity, registry: createRegistry('orchestrator'), version: 'test' });
  return { orch, engine, routes, journal };
}

/** A started fake node, stopped by `await using` (its timers are unref'd, so the test's stay alive). */
export async function startFake(
  config: OrchestratorConfig,
  shared: Parameters<typeof fakeOrchestrator>[1] = {},
): Promise<FakeNode & { [Symbol.asyncDispose](): Promise<void> }> {
  const node = fakeOrchestrator(config, shared);
  await node.orch.start();
  // The orchestrator's timers are unref'd (a server keeps a real process alive): keep the test's alive.
  const alive = setInterval(() => undefined, 1000);
  return Object.assign(node, {
    async [Symbol.asyncDispose]() {
      clearInterval(alive);
      await node.orch.stop();
    },
  });
}

/** Waits until `check` holds, polling every few ms, or fails with `what` after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
