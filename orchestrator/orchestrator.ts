/**
 * The orchestrator's runtime: drives the pure pool core (pool.ts) with a container backend and the
 * proxy's route table. Containers are started ahead of time with their visitor id (so their base
 * path `/user/<id>/` is fixed at start), admitted once they answer, and a claim only pops one and
 * adds its route: no engine call on the claim path.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { customAlphabet } from 'nanoid';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { HttpError, ServiceUnavailable, TooManyRequests, BadRequest, NotFound } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { NodeStats, PoolStats, RouteData, RouteTableClient } from '../shared/types.js';
import { LABELS, type ContainerBackend, type ContainerSpec } from './backend.js';
import type { OrchestratorConfig, PoolConfig } from './config.js';
import { StatsHistory, type PoolLevels } from './history.js';
import { PoolCore, PoolError, type PoolContainer, type Waiter } from './pool.js';
import { RemovalQueue } from './removal-queue.js';

/**
 * Visitor ids: 24 characters of [0-9A-Za-z] (about 143 bits), so ids are URL-safe, valid in
 * container names and never reused in practice. No '-' or '_' so `<instance>-<pool>-<id>` parses.
 */
const newId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 24);
/** How often waiters are checked, starts planned and backoffs re-tried. */
const TICK_MS = 200;
/** A loading page that has not polled for this long is taken out of the line. */
const ABANDON_MS = 20_000;
/** A served loading-page visitor's redirect is kept this long for them to collect. */
const TICKET_KEEP_MS = 60_000;
/** Claim markers (renames) in flight at once: enough to keep up, few enough not to slow claims. */
const MARK_PARALLEL = 2;

export interface ClaimContext {
  /** Path inside the container, starting with '/', or '' for the pool's entry path. */
  path: string;
  /** The request's query string without '?' (passed to the hook, and on to the container). */
  query: string;
}

export interface Claim {
  id: string;
  pool: string;
  /** Where to send the visitor: /user/<id>/<path>[?query][&token=...]. */
  url: string;
  target: string;
  token?: string;
  /** Request-to-route-live time in ms. */
  latencyMs: number;
}

export type TicketView =
  | { state: 'waiting'; position: number; waiting: number }
  | { state: 'ready'; url: string; visitorId: string }
  | { state: 'gone' };

interface ContainerInfo {
  name: string;
  containerId?: string;
  target?: string;
  token?: string;
}

interface PendingWaiter {
  waiter: Waiter;
  context: ClaimContext;
  startedAt: number;
  resolve(claim: Claim): void;
  reject(err: Error): void;
}

interface Ticket {
  id: string;
  pool: string;
  state: 'waiting' | 'ready' | 'gone';
  url?: string;
  visitorId?: string;
  lastSeen: number;
  openPolls: number;
  readyAt?: number;
  changed: Array<() => void>;
}

/** Splits a command line the way a shell would for plain words and '...' / "..." quoting. */
export function splitCommand(command: string): string[] {
  const out: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) current += command[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      current += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in command ${JSON.stringify(command)}`);
  if (inWord) out.push(current);
  return out;
}

export function fillPlaceholders(args: readonly string[], values: Record<string, string>): string[] {
  return args.map((arg) => arg.replace(/\{(base_path|port|ip|token)\}/g, (_, key: string) => values[key] ?? ''));
}

/** One GET with a deadline; resolves to the status code, or rejects on connection errors/timeouts. */
function probeOnce(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface OrchestratorDeps {
  routes: RouteTableClient;
  log: Logger;
  backend: ContainerBackend;
  registry: Registry;
  version: string;
}

export class Orchestrator {
  readonly core: PoolCore;
  readonly history = new StatsHistory();
  private readonly pools = new Map<string, PoolConfig>();
  private readonly info = new Map<string, ContainerInfo>();
  private readonly byContainerId = new Map<string, string>();
  private readonly pending = new Map<string, PendingWaiter>();
  private readonly tickets = new Map<string, Ticket>();
  private readonly removals: RemovalQueue;
  private readonly background = new Set<Promise<unknown>>();
  /** Visitor ids whose engine create/start call is in flight. */
  private readonly creating = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private cullRunning: Promise<void> | undefined;
  private kickScheduled = false;
  /** Durable claim markers (renames) waiting for the engine, done a few at a time off the claim path. */
  private readonly markQueue: Array<() => Promise<void>> = [];
  private marking = 0;
  private stopping = false;
  private readonly log: Logger;
  private readonly metrics;

  constructor(
    readonly config: OrchestratorConfig,
    private readonly deps: OrchestratorDeps,
  ) {
    this.log = deps.log;
    for (const pool of config.pools) this.pools.set(pool.name, pool);
    this.core = new PoolCore(
      config.pools.map((p) => ({ name: p.name, size: p.size })),
      { maxContainers: config.capacity, maxParallelStarts: config.startParallel, queueLimit: config.queueSize, backoffBaseMs: 500, backoffMaxMs: 30_000 },
    );
    this.removals = new RemovalQueue(
      (containerId, signal) => deps.backend.remove(containerId, signal),
      (containerId, ok) => this.onRemoved(containerId, ok),
      this.log,
      { concurrency: config.removeParallel, timeoutMs: 30_000, retryDelayMs: 2_000, maxAttempts: 3 },
    );
    this.metrics = this.createMetrics(deps.registry);
  }

  private createMetrics(registry: Registry) {
    const core = this.core;
    const figures = (gauge: Gauge<'pool'>, key: 'warm' | 'claimed' | 'starting' | 'waiting') => {
      gauge.reset();
      for (const name of core.poolNames()) gauge.set({ pool: name }, core.figures(name, Date.now())[key]);
    };
    const gauge = (name: string, help: string, key: 'warm' | 'claimed' | 'starting' | 'waiting') =>
      new Gauge({ name, help, labelNames: ['pool'], registers: [registry], collect() { figures(this, key); } });
    return {
      warm: gauge('nbpool_pool_warm', 'Warm containers ready to hand out', 'warm'),
      claimed: gauge('nbpool_pool_claimed', 'Containers handed to visitors', 'claimed'),
      starting: gauge('nbpool_pool_starting', 'Containers starting or being probed', 'starting'),
      waiting: gauge('nbpool_pool_waiting', 'Visitors waiting for a container', 'waiting'),
      claims: new Counter({ name: 'nbpool_claims_total', help: 'Containers handed out', labelNames: ['pool'], registers: [registry] }),
      claimLatency: new Histogram({
        name: 'nbpool_claim_seconds',
        help: 'Request to route live, for claims served from the warm pool',
        labelNames: ['pool'],
        buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1],
        registers: [registry],
      }),
      failures: new Counter({ name: 'nbpool_start_failures_total', help: 'Containers that failed to start or answer', labelNames: ['pool'], registers: [registry] }),
      culls: new Counter({ name: 'nbpool_culls_total', help: 'Containers removed by culling', labelNames: ['pool', 'reason'], registers: [registry] }),
      healed: new Counter({ name: 'nbpool_healed_total', help: 'Containers found dead or gone and replaced', labelNames: ['pool'], registers: [registry] }),
      turnedAway: new Counter({ name: 'nbpool_turned_away_total', help: 'Visitors answered full or too many requests', labelNames: ['pool'], registers: [registry] }),
      hookFailures: new Counter({ name: 'nbpool_claim_hook_failures_total', help: 'Claim hooks that failed', labelNames: ['pool'], registers: [registry] }),
    };
  }

  // ---- start and stop ------------------------------------------------------------------------

  /** Adopts this instance's containers, then starts filling pools and the periodic passes. */
  async start(): Promise<void> {
    await this.adopt();
    this.timers.push(setInterval(() => this.tick(), TICK_MS));
    this.timers.push(setInterval(() => void this.cullPass(), this.config.cullPeriod * 1000));
    this.timers.push(setInterval(() => this.sampleHistory(), this.history.intervalMs));
    for (const t of this.timers) t.unref();
    this.kick();
  }

  /**
   * Stops taking visitors. Containers stay for the next start (Docker labels are the truth)
   * unless --cleanup-on-exit, in which case this instance's containers are removed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const p of [...this.pending.values()]) {
      this.core.dropWaiter(p.waiter.id, p.waiter.pool);
      this.pending.delete(p.waiter.id);
      p.reject(new ServiceUnavailable('this node is shutting down; try again', 5));
    }
    for (const ticket of this.tickets.values()) this.setTicket(ticket, 'gone');
    await this.cullRunning;
    // Claim markers still queued must land: the next start relies on them.
    do await Promise.allSettled([...this.background]);
    while (this.markQueue.length > 0 || this.marking > 0);
    if (this.config.cleanupOnExit) {
      const found = await this.deps.backend.list(LABELS.instance, this.config.instance).catch(() => []);
      for (const c of found) {
        const id = c.labels[LABELS.user];
        if (id && this.core.get(id)?.state === 'claimed') await this.deps.routes.deleteRoute(`/user/${id}`).catch(() => undefined);
        this.removals.add(c.containerId);
      }
    }
    await Promise.race([this.removals.idle(), sleep(this.config.cleanupOnExit ? 120_000 : 5_000)]);
    this.removals.close();
  }

  get draining(): boolean {
    return this.stopping;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.background.add(promise);
    void promise.finally(() => this.background.delete(promise)).catch(() => undefined);
    return promise;
  }

  private async adopt(): Promise<void> {
    const instance = this.config.instance;
    const [found, routes] = await Promise.all([this.deps.backend.list(LABELS.instance, instance), this.deps.routes.getRoutes()]);
    let warm = 0;
    let claimed = 0;
    for (const c of found) {
      const id = c.labels[LABELS.user];
      const pool = c.labels[LABELS.pool];
      const route = id ? routes[`/user/${id}`] : undefined;
      const isClaimed = c.claimed || route !== undefined;
      if (!id || !pool || !this.core.hasPool(pool) || !c.running || !c.target) {
        this.log.info({ container: c.containerId, pool, running: c.running }, 'removing a container that cannot be adopted');
        this.removals.add(c.containerId);
        continue;
      }
      const createdAt = Number(c.labels[LABELS.created]) || Date.now();
      const claimedAt = typeof route?.claimed === 'string' ? Date.parse(route.claimed) || Date.now() : Date.now();
      this.core.adopt({ id, pool, state: isClaimed ? 'claimed' : 'starting', createdAt, claimedAt });
      this.remember(id, { name: c.name, containerId: c.containerId, target: c.target, token: c.labels[LABELS.token] || undefined });
      if (isClaimed) {
        claimed++;
        if (!route || route.target !== c.target) await this.deps.routes.addRoute(`/user/${id}`, this.routeData(this.core.get(id)!));
      } else {
        warm++;
        void this.track(this.admit(id, pool));
      }
    }
    for (const [path, data] of Object.entries(routes)) {
      const id = /^\/user\/([^/]+)$/.exec(path)?.[1];
      if (id && data.instance === instance && this.core.get(id)?.state !== 'claimed') {
        await this.deps.routes.deleteRoute(path);
      }
    }
    if (found.length) this.log.info({ claimed, warm, found: found.length }, 'adopted containers from a previous run');
  }

  private remember(id: string, info: ContainerInfo): void {
    this.info.set(id, info);
    if (info.containerId) this.byContainerId.set(info.containerId, id);
  }

  // ---- filling the pools ---------------------------------------------------------------------

  private tick(): void {
    const now = Date.now();
    for (const waiter of this.core.expireWaiters(now)) {
      const p = this.pending.get(waiter.id);
      this.pending.delete(waiter.id);
      this.metrics.turnedAway.inc({ pool: waiter.pool });
      p?.reject(new TooManyRequests(`no container of pool ${waiter.pool} became free in time; try again`, this.retryAfter()));
      const ticket = this.tickets.get(waiter.id);
      if (ticket) this.setTicket(ticket, 'gone');
    }
    for (const ticket of this.tickets.values()) {
      if (ticket.state === 'waiting' && ticket.openPolls === 0 && now - ticket.lastSeen > ABANDON_MS) {
        this.core.dropWaiter(ticket.id, ticket.pool);
        this.pending.delete(ticket.id);
        this.tickets.delete(ticket.id);
      } else if (ticket.state !== 'waiting' && now - (ticket.readyAt ?? ticket.lastSeen) > TICKET_KEEP_MS) {
        this.tickets.delete(ticket.id);
      }
    }
    this.kick();
  }

  /**
   * Serves waiters, trims surplus, and starts what the plan says. Coalesced to once per turn of the
   * event loop, after pending responses are written: a burst of claims triggers one plan, not one each.
   */
  private kick(): void {
    if (this.kickScheduled || this.stopping) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      this.runKick();
    });
  }

  private runKick(): void {
    if (this.stopping) return;
    this.serveWaiters();
    for (const id of this.core.trimPlan()) this.retire(id, 'trim');
    const now = Date.now();
    for (const [pool, count] of this.core.startPlan(now)) {
      for (let i = 0; i < count; i++) void this.track(this.startOne(pool));
    }
  }

  private async startOne(poolName: string): Promise<void> {
    const pool = this.pools.get(poolName)!;
    const id = newId();
    const token = this.config.useTokens ? randomBytes(24).toString('base64url') : '';
    const basePath = `/user/${id}/`;
    const now = Date.now();
    const name = `${this.config.instance}-${poolName}-${id}`;
    this.core.starting(poolName, id, now);
    this.remember(id, { name, token: token || undefined });
    const spec: ContainerSpec = {
      name,
      image: pool.image,
      // demand: an empty command runs the image's own (shiny, generic presets); port per pool.
      cmd: pool.command ? fillPlaceholders(splitCommand(pool.command), { base_path: basePath, port: String(pool.port), ip: '0.0.0.0', token }) : [],
      env: [`NBPOOL_BASE_PATH=${basePath}`, ...(token ? [`JUPYTER_TOKEN=${token}`] : [])],
      labels: {
        [LABELS.instance]: this.config.instance,
        [LABELS.pool]: poolName,
        [LABELS.user]: id,
        [LABELS.route]: `/user/${id}`,
        [LABELS.created]: String(now),
        [LABELS.generation]: String(this.core.get(id)!.generation),
        ...(token ? { [LABELS.token]: token } : {}),
      },
      port: pool.port,
      publishIp: this.config.containerIp,
      network: this.config.dockerNetwork,
      user: this.config.containerUser,
      memoryBytes: pool.memoryBytes,
      cpuQuota: pool.cpuQuota,
      cpuShares: pool.cpuShares,
      pidsLimit: this.config.pidsLimit || undefined,
      binds: this.config.hostDirectories,
    };
    this.creating.add(id);
    try {
      const started = await this.deps.backend.start(spec);
      this.remember(id, { name, token: token || undefined, ...started });
    } catch (err) {
      this.creating.delete(id);
      this.log.warn({ err: (err as Error).message, pool: poolName }, 'container failed to start');
      this.fail(id);
      return;
    }
    this.creating.delete(id);
    if (this.core.get(id)?.state !== 'starting') {
      // Retired (drain, stop) while the engine was creating it.
      this.retire(id, 'cancelled');
      return;
    }
    this.core.created(id);
    this.kick();
    await this.admit(id, poolName);
  }

  /** Probes until the container answers (then it is warm) or the deadline passes (then it fails). */
  private async admit(id: string, poolName: string): Promise<void> {
    const pool = this.pools.get(poolName)!;
    const info = this.info.get(id);
    if (!info?.target || !info.containerId) return;
    // demand: an app behind strip_prefix answers under /, not under its base path.
    const url = `${info.target}${pool.stripPrefix ? '' : `/user/${id}`}/${pool.probePath.replace(/^\//, '')}`;
    const deadline = Date.now() + this.config.probeTimeout * 1000;
    let lastError = '';
    let nextLivenessCheck = Date.now() + 500;
    while (Date.now() < deadline && this.core.get(id)?.state === 'starting' && !this.stopping) {
      try {
        const status = await probeOnce(url, Math.min(2000, Math.max(50, deadline - Date.now())));
        if (status >= 200 && status < 400) {
          if (this.core.admitted(id)) {
            this.log.debug({ id, pool: poolName }, 'container admitted');
            this.kick();
          }
          return;
        }
        lastError = `answered ${status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() >= nextLivenessCheck) {
        nextLivenessCheck = Date.now() + 1000;
        if (!(await this.deps.backend.isRunning(info.containerId).catch(() => true))) {
          lastError = 'container exited';
          break;
        }
      }
      await sleep(50);
    }
    if (this.stopping || this.core.get(id)?.state !== 'starting') return;
    this.log.warn({ id, pool: poolName, lastError, probe: url }, 'container never answered its probe; removing it');
    this.fail(id);
  }

  private fail(id: string): void {
    const c = this.core.get(id);
    if (!c) return;
    this.core.failed(id, Date.now());
    this.metrics.failures.inc({ pool: c.pool });
    this.dispose(id);
  }

  /** Takes a container out of service: route deleted if claimed, then removed through the queue. */
  private retire(id: string, reason: string): void {
    const c = this.core.get(id);
    if (!c) return;
    const wasClaimed = c.state === 'claimed';
    this.core.removing(id);
    this.log.debug({ id, pool: c.pool, reason }, 'retiring container');
    if (wasClaimed) void this.track(this.deps.routes.deleteRoute(`/user/${id}`).catch((err: unknown) => this.log.warn({ err, id }, 'could not delete route')));
    this.dispose(id);
  }

  private dispose(id: string): void {
    const containerId = this.info.get(id)?.containerId;
    if (containerId) this.removals.add(containerId);
    // Without an engine id: either the start is in flight (startOne retires it when the engine
    // answers) or it failed and the backend left nothing behind.
    else if (!this.creating.has(id)) this.forget(id);
  }

  private onRemoved(containerId: string, _ok: boolean): void {
    const id = this.byContainerId.get(containerId);
    if (id) this.forget(id);
    this.kick();
  }

  private forget(id: string): void {
    const containerId = this.info.get(id)?.containerId;
    if (containerId) this.byContainerId.delete(containerId);
    this.info.delete(id);
    this.core.removed(id);
  }

  // ---- claims --------------------------------------------------------------------------------

  private poolOf(name: string | undefined): PoolConfig {
    const pool = this.pools.get(name || this.config.pools[0]!.name);
    if (!pool) throw new NotFound(`no pool named ${JSON.stringify(name)}; pools: ${[...this.pools.keys()].join(', ')}`);
    return pool;
  }

  private routeData(c: PoolContainer): RouteData {
    const info = this.info.get(c.id)!;
    return {
      target: info.target!,
      instance: this.config.instance,
      pool: c.pool,
      container: info.containerId,
      created: new Date(c.createdAt).toISOString(),
      claimed: new Date(c.claimedAt ?? Date.now()).toISOString(),
      // demand: the proxy sends /user/<id>/x as /x and rewrites Location and cookie paths.
      ...(this.pools.get(c.pool)?.stripPrefix ? { strip_prefix: true } : {}),
    };
  }

  private retryAfter(): number {
    return Math.max(2, Math.ceil(this.config.probeTimeout / 4));
  }

  private guard(poolName: string | undefined): PoolConfig {
    if (this.stopping) throw new ServiceUnavailable('this node is shutting down; try again', 5);
    return this.poolOf(poolName);
  }

  /** Claims a warm container now, or returns undefined when the visitor must wait. */
  async claimNow(poolName: string | undefined, context: ClaimContext, startedAt = performance.now()): Promise<Claim | undefined> {
    const pool = this.guard(poolName);
    let container: PoolContainer | undefined;
    try {
      container = this.core.claim(pool.name, Date.now());
    } catch (err) {
      throw this.mapPoolError(err);
    }
    if (!container) return undefined;
    return this.finishClaim(container, context, startedAt);
  }

  /** Claims now or waits in line (API: up to --spawn-wait; page visitors use tickets). */
  async claimOrWait(poolName: string | undefined, context: ClaimContext, waitMs: number): Promise<Claim> {
    const startedAt = performance.now();
    const now = Date.now();
    const immediate = await this.claimNow(poolName, context, startedAt);
    if (immediate) return immediate;
    const pool = this.poolOf(poolName);
    if (waitMs <= 0) {
      this.metrics.turnedAway.inc({ pool: pool.name });
      throw new TooManyRequests(`no container of pool ${pool.name} is free; try again`, this.retryAfter());
    }
    return new Promise<Claim>((resolve, reject) => {
      const waiter: Waiter = { id: newId(), pool: pool.name, enqueuedAt: now, deadline: now + waitMs };
      try {
        this.core.enqueue(waiter);
      } catch (err) {
        this.metrics.turnedAway.inc({ pool: pool.name });
        reject(this.mapPoolError(err, true));
        return;
      }
      this.pending.set(waiter.id, { waiter, context, startedAt, resolve, reject });
      this.kick();
    });
  }

  /** Puts a loading-page visitor in line and returns their ticket id. */
  enqueueTicket(poolName: string | undefined, context: ClaimContext): string {
    const pool = this.guard(poolName);
    const now = Date.now();
    const waiter: Waiter = { id: newId(), pool: pool.name, enqueuedAt: now, deadline: now + this.config.queueWait * 1000 };
    try {
      this.core.enqueue(waiter);
    } catch (err) {
      this.metrics.turnedAway.inc({ pool: pool.name });
      throw this.mapPoolError(err);
    }
    const ticket: Ticket = { id: waiter.id, pool: pool.name, state: 'waiting', lastSeen: now, openPolls: 0, changed: [] };
    this.tickets.set(ticket.id, ticket);
    this.pending.set(waiter.id, {
      waiter,
      context,
      startedAt: performance.now(),
      resolve: (claim) => {
        ticket.url = claim.url;
        ticket.visitorId = claim.id;
        ticket.readyAt = Date.now();
        this.setTicket(ticket, 'ready');
      },
      reject: () => this.setTicket(ticket, 'gone'),
    });
    this.kick();
    return ticket.id;
  }

  private setTicket(ticket: Ticket, state: Ticket['state']): void {
    ticket.state = state;
    for (const notify of ticket.changed.splice(0)) notify();
  }

  ticketView(ticketId: string): TicketView {
    const ticket = this.tickets.get(ticketId);
    if (!ticket || ticket.state === 'gone') return { state: 'gone' };
    ticket.lastSeen = Date.now();
    if (ticket.state === 'ready') return { state: 'ready', url: ticket.url!, visitorId: ticket.visitorId! };
    return { state: 'waiting', position: this.core.position(ticketId, ticket.pool), waiting: this.core.figures(ticket.pool, Date.now()).waiting };
  }

  /** Long poll: resolves when the ticket changes or after `maxMs`. */
  async waitTicket(ticketId: string, maxMs: number): Promise<TicketView> {
    const ticket = this.tickets.get(ticketId);
    if (ticket?.state === 'waiting') {
      ticket.openPolls++;
      let notify!: () => void;
      const changed = new Promise<void>((r) => (notify = r));
      ticket.changed.push(notify);
      await Promise.race([changed, sleep(maxMs)]);
      ticket.openPolls--;
      const index = ticket.changed.indexOf(notify);
      if (index !== -1) ticket.changed.splice(index, 1);
    }
    return this.ticketView(ticketId);
  }

  private mapPoolError(err: unknown, api = false): Error {
    if (!(err instanceof PoolError)) return err as Error;
    if (err.kind === 'unknown-pool') return new NotFound(err.message);
    if (err.kind === 'draining') return new ServiceUnavailable(err.message, this.retryAfter());
    return api ? new TooManyRequests(err.message, this.retryAfter()) : new ServiceUnavailable(err.message, 30);
  }

  private serveWaiters(): void {
    for (const { waiter, container } of this.core.serveWaiters(Date.now())) {
      const p = this.pending.get(waiter.id);
      this.pending.delete(waiter.id);
      if (!p) {
        // Cannot happen (waiters leave the core and `pending` together); never hand it out twice.
        this.retire(container.id, 'orphan-claim');
        continue;
      }
      this.finishClaim(container, p.context, p.startedAt).then(p.resolve, p.reject);
    }
  }

  private async finishClaim(container: PoolContainer, context: ClaimContext, startedAt: number): Promise<Claim> {
    const pool = this.pools.get(container.pool)!;
    const info = this.info.get(container.id)!;
    try {
      await this.deps.routes.addRoute(`/user/${container.id}`, this.routeData(container));
    } catch (err) {
      this.log.error({ err, id: container.id }, 'proxy refused the route; retiring the container');
      this.retire(container.id, 'route-failed');
      throw err instanceof HttpError ? err : new HttpError(502, `the proxy did not take the route: ${(err as Error).message}`);
    }
    // Durable claim marker (labels cannot change): a restart must never hand this container out again.
    this.markClaimed(container.id, info);
    if (pool.claimHook) await this.runHook(container, pool, info, context);
    const latencyMs = performance.now() - startedAt;
    this.metrics.claims.inc({ pool: pool.name });
    this.metrics.claimLatency.observe({ pool: pool.name }, latencyMs / 1000);
    this.history.recordClaim(pool.name, latencyMs);
    this.kick();
    return {
      id: container.id,
      pool: pool.name,
      url: this.visitorUrl(container.id, pool, context, info.token),
      target: info.target!,
      token: info.token,
      latencyMs,
    };
  }

  /**
   * Where a returning visitor (known by the id in their cookie) goes: back into their own container
   * while it is still theirs, so reloading an embedding page does not take a second container.
   */
  returningVisitorUrl(id: string, context: ClaimContext): string | undefined {
    const container = this.core.get(id);
    if (container?.state !== 'claimed') return undefined;
    return this.visitorUrl(id, this.poolOf(container.pool), context, this.info.get(id)?.token);
  }

  private visitorUrl(id: string, pool: PoolConfig, context: ClaimContext, token: string | undefined): string {
    const path = context.path && context.path !== '/' ? context.path : pool.redirectUri;
    const params = new URLSearchParams(context.query);
    params.delete('pool');
    params.delete('ticket');
    if (token) params.set('token', token);
    const query = params.toString();
    return `/user/${id}/${path.replace(/^\/+/, '')}${query ? `?${query}` : ''}`;
  }

  private markClaimed(id: string, info: ContainerInfo): void {
    this.markQueue.push(() =>
      this.deps.backend.markClaimed(info.containerId!).catch((err: unknown) => this.log.warn({ err, id }, 'could not mark container claimed')),
    );
    this.pumpMarks();
  }

  private pumpMarks(): void {
    while (this.marking < MARK_PARALLEL && this.markQueue.length > 0) {
      const job = this.markQueue.shift()!;
      this.marking++;
      void this.track(
        job().finally(() => {
          this.marking--;
          this.pumpMarks();
        }),
      );
    }
  }

  private async runHook(container: PoolContainer, pool: PoolConfig, info: ContainerInfo, context: ClaimContext): Promise<void> {
    const env = [`NBPOOL_QUERY=${context.query}`, `NBPOOL_POOL=${pool.name}`, `NBPOOL_BASE_PATH=/user/${container.id}/`];
    for (const [key, value] of new URLSearchParams(context.query)) {
      if (/^[A-Za-z0-9_]{1,64}$/.test(key)) env.push(`NBPOOL_Q_${key}=${value}`);
    }
    const backend = this.deps.backend;
    if (!backend.exec) {
      this.metrics.hookFailures.inc({ pool: pool.name });
      this.log.warn({ id: container.id, backend: backend.kind }, `claim hook not run: the ${backend.kind} backend cannot run commands in containers`);
      return;
    }
    try {
      const result = await backend.exec(info.containerId!, ['sh', '-c', pool.claimHook!], env, this.config.claimHookTimeout * 1000);
      if (result.exitCode !== 0) {
        this.metrics.hookFailures.inc({ pool: pool.name });
        this.log.warn({ id: container.id, exitCode: result.exitCode, output: result.output }, 'claim hook failed');
      }
    } catch (err) {
      this.metrics.hookFailures.inc({ pool: pool.name });
      this.log.warn({ err, id: container.id }, 'claim hook could not run');
    }
  }

  // ---- culling and healing -------------------------------------------------------------------

  /** One cull-and-heal pass; passes never overlap, and no error escapes. */
  cullPass(): Promise<void> {
    if (this.cullRunning || this.stopping) return this.cullRunning ?? Promise.resolve();
    this.cullRunning = this.runCullPass()
      .catch((err: unknown) => this.log.error({ err }, 'cull pass failed; trying again next period'))
      .finally(() => (this.cullRunning = undefined));
    return this.cullRunning;
  }

  private async runCullPass(): Promise<void> {
    const instance = this.config.instance;
    const [routes, found] = await Promise.all([this.deps.routes.getRoutes(), this.deps.backend.list(LABELS.instance, instance)]);
    const now = Date.now();
    const byUser = new Map(found.map((c) => [c.labels[LABELS.user] ?? '', c]));

    // Heal: containers that died or vanished behind our back.
    for (const c of this.core.list()) {
      if (c.state === 'removing' || c.state === 'starting') continue;
      const engine = byUser.get(c.id);
      if (!engine || !engine.running) {
        this.log.warn({ id: c.id, pool: c.pool, state: c.state, present: Boolean(engine) }, 'container died or vanished; replacing it');
        this.metrics.healed.inc({ pool: c.pool });
        this.retire(c.id, 'dead');
        if (!engine) this.forget(c.id);
      }
    }
    // Containers of this instance we do not know (a removal given up, a start cut short): remove.
    for (const c of found) {
      const id = c.labels[LABELS.user];
      if (!id || !this.core.get(id)) this.removals.add(c.containerId);
    }
    // Routes: this instance's routes with no claimed container are deleted; lost routes re-added.
    const lastActivity = new Map<string, number>();
    for (const [path, data] of Object.entries(routes)) {
      const id = /^\/user\/([^/]+)$/.exec(path)?.[1];
      if (!id || data.instance !== instance) continue;
      const c = this.core.get(id);
      if (!c || (c.state !== 'claimed' && c.state !== 'removing')) {
        this.log.info({ path }, 'deleting a route with no container');
        await this.deps.routes.deleteRoute(path);
        continue;
      }
      if (data.last_activity) lastActivity.set(id, Date.parse(data.last_activity) || 0);
    }
    for (const c of this.core.list({ state: 'claimed' })) {
      if (!routes[`/user/${c.id}`]) {
        this.log.warn({ id: c.id }, 'proxy lost a visitor route; adding it back');
        await this.deps.routes.addRoute(`/user/${c.id}`, this.routeData(c));
      }
    }
    // Cull.
    for (const { id, reason } of this.core.cullPlan(now, lastActivity, this.config.cullTimeout * 1000, this.config.cullMax * 1000)) {
      const c = this.core.get(id)!;
      this.log.info({ id, pool: c.pool, reason }, 'culling container');
      this.metrics.culls.inc({ pool: c.pool, reason });
      this.history.recordCull(c.pool);
      this.retire(id, reason);
    }
    this.kick();
  }

  // ---- admin ---------------------------------------------------------------------------------

  resize(poolName: string, size: unknown): void {
    this.poolOf(poolName);
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > this.config.capacity) {
      throw new BadRequest(`size must be a whole number from 0 to ${this.config.capacity} (the capacity)`);
    }
    this.core.resize(poolName, size);
    this.kick();
  }

  refresh(poolName: string): number {
    this.poolOf(poolName);
    const generation = this.core.refresh(poolName);
    this.kick();
    return generation;
  }

  /** Drain: stop handing out and refilling, remove warm ones; `empty` also removes claimed ones. */
  drain(poolName: string, empty: boolean): void {
    this.poolOf(poolName);
    for (const w of this.core.waitersOf(poolName)) {
      const p = this.pending.get(w.id);
      this.pending.delete(w.id);
      p?.reject(new ServiceUnavailable(`pool ${poolName} is draining`, this.retryAfter()));
    }
    this.core.setDraining(poolName, true);
    for (const c of this.core.list({ pool: poolName })) {
      if (c.state === 'warm' || c.state === 'starting' || (empty && c.state === 'claimed')) this.retire(c.id, empty ? 'empty' : 'drain');
    }
    this.kick();
  }

  resume(poolName: string): void {
    this.poolOf(poolName);
    this.core.setDraining(poolName, false);
    this.kick();
  }

  // ---- figures -------------------------------------------------------------------------------

  poolStats(name: string): PoolStats & { generation: number; redirect_uri: string; entry_path: string; preset: string } {
    const pool = this.poolOf(name);
    const f = this.core.figures(name, Date.now());
    return {
      image: pool.image,
      size: f.size,
      warm: f.warm,
      claimed: f.claimed,
      starting: f.starting,
      waiting: f.waiting,
      failures: f.failures,
      ...(f.backoffUntil ? { backoff_until: new Date(f.backoffUntil).toISOString() } : {}),
      draining: f.draining,
      generation: f.generation,
      redirect_uri: pool.redirectUri,
      entry_path: pool.entryPath,
      preset: pool.preset,
    };
  }

  stats(): NodeStats {
    const pools: Record<string, PoolStats> = {};
    let available = 0;
    for (const name of this.core.poolNames()) {
      pools[name] = this.poolStats(name);
      if (!pools[name].draining) available += pools[name].warm;
    }
    const t = this.core.totals();
    return {
      available: this.stopping ? 0 : available,
      capacity: this.config.capacity,
      version: this.deps.version,
      container_image: this.config.pools[0]!.image,
      claimed: t.claimed,
      starting: t.starting,
      room: Math.max(0, this.config.capacity - t.claimed),
      waiting: t.waiting,
      draining: this.stopping,
      pools,
    };
  }

  private sampleHistory(): void {
    const levels: Record<string, PoolLevels> = {};
    const now = Date.now();
    for (const name of this.core.poolNames()) levels[name] = this.core.figures(name, now);
    this.history.sample(now, levels);
  }
}
