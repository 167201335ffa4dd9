/**
 * The orchestrator's runtime: drives the pure pool core (pool.ts) with a container backend, a
 * readiness probe and the proxy's route table. Containers are started ahead of time with their
 * visitor id (so their base path `/user/<id>/` is fixed at start), admitted once they answer, and a
 * claim only pops one, journals it and adds its route: no engine call on the claim path. What the
 * engine really runs is brought back in line by the pure reconcile step (reconcile.ts), on a timer,
 * on engine events and whenever the engine comes back.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { HttpError, ServiceUnavailable, TooManyRequests, BadRequest, NotFound, Conflict, ClientGone } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { NodeStats, PoolStats, RouteData, RouteTableClient } from '../shared/types.js';
import { LABELS, type ContainerBackend } from './backend.js';
import type { ClaimJournal } from './claim-journal.js';
import type { OrchestratorConfig, PoolConfig } from './config.js';
import { HttpAppActivityProbe, type AppActivity, type AppActivityProbe } from './app-activity.js';
import { DemandCore, sizePools } from './demand.js';
import { EngineLink, isConnectionError } from './engine-link.js';
import { EngineQueue } from './engine-queue.js';
import { FairShare } from './fair-share.js';
import { StatsHistory, type PoolLevels } from './history.js';
import { createOrchestratorMetrics, type OrchestratorMetrics } from './metrics.js';
import { PoolCore, PoolError, type PoolContainer, type Waiter } from './pool.js';
import type { ReadinessProbe } from './probe.js';
import { reconcile, type KnownContainer } from './reconcile.js';
import { containerSpec } from './spec.js';
import { basePath, newVisitorId, routePath, visitorIdOfRoute, visitorUrl, type ClaimContext } from './visitor.js';

/** How often waiters are checked, starts planned and backoffs re-tried. */
const TICK_MS = 200;
/** How long a visitor whose container stopped is told why, on their next request. */
const STOPPED_KEEP_MS = 3_600_000;
const STOPPED_KEEP_MAX = 10_000;
/** Container exits this close together are told in one line (an engine stopping takes all of them). */
const EXIT_FOLD_MS = 1000;
/** While calls to the engine fail to connect, a check call this often (doubling up to the max). */
const ENGINE_CHECK_MIN_MS = 500;
const ENGINE_CHECK_MAX_MS = 5000;

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

/** A visitor's place in the waiting line, for those who wait on a page (tickets.ts). */
export interface PlaceInLine {
  /** Unguessable, like a visitor id: the loading page's ticket. */
  id: string;
  pool: string;
  /** Their claim once a container is free; rejects when the line gives up on them (expired, drained, stopping). */
  claimed: Promise<Claim>;
  /** 1-based place in the pool's line; 0 once out of it. */
  position(): number;
  /** How many wait in the pool's line. */
  waiting(): number;
  /** The visitor went away: out of the line, and nothing is claimed for them. */
  leave(): void;
}

interface ContainerInfo {
  containerId?: string;
  target?: string;
  token?: string;
  /** When the engine's create/start answered (reconcile judges only containers started before its list). */
  startedAt?: number;
  /** When this orchestrator last knew the visitor's route in the proxy (reconcile judges routes only after). */
  routedAt?: number;
}

interface PendingWaiter {
  waiter: Waiter;
  context: ClaimContext;
  startedAt: number;
  resolve(claim: Claim): void;
  reject(err: Error): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface OrchestratorDeps {
  routes: RouteTableClient;
  log: Logger;
  backend: ContainerBackend;
  probe: ReadinessProbe;
  journal: ClaimJournal;
  /** Asks apps whether they are busy (default: HTTP to the container). */
  activity?: AppActivityProbe;
  registry: Registry;
  version: string;
}

export class Orchestrator {
  readonly core: PoolCore;
  /** demand: claim rate, start times and hit rate; sizes `auto` pools (demand.ts). */
  readonly demand: DemandCore;
  readonly history = new StatsHistory();
  /** demand: asks apps whether their kernel is busy before an idle cull. */
  private readonly activity: AppActivityProbe;
  private readonly pools = new Map<string, PoolConfig>();
  private readonly info = new Map<string, ContainerInfo>();
  private readonly byContainerId = new Map<string, string>();
  private readonly pending = new Map<string, PendingWaiter>();
  /** Removals and claim markers: the engine work kept off the claim path. */
  private readonly engineWork: EngineQueue;
  private readonly background = new Set<Promise<unknown>>();
  /** Visitor ids whose engine create/start call is in flight. */
  private readonly creating = new Set<string>();
  /** Visitors whose claimed container stopped, with the engine's reason, for their next request. */
  private readonly stopped = new Map<string, { reason: string; at: number }>();
  private readonly shares: FairShare;
  private timers: NodeJS.Timeout[] = [];
  private stopWatching: (() => void) | undefined;
  private reconcileRunning: Promise<void> | undefined;
  private lastCull = Date.now();
  /** When the last reconcile pass began (periodicPass). */
  private lastPassAt = 0;
  /**
   * False from the moment the engine connection is lost until a reconcile after it came back:
   * meanwhile no warm container is handed out (it may be dead) and nothing is started.
   */
  private engineTrusted = true;
  /** Whether the engine is there at all (event stream and calls); its loss and return are said once. */
  private readonly engine: EngineLink;
  /** Exits not told yet: folded into one line when several come together (see EXIT_FOLD_MS). */
  private exitsToTell: Array<{ id: string; pool: string; state: string; reason: string }> = [];
  private kickScheduled = false;
  /** Engine ids of claimed containers whose engine marker waits for the claims to pause (markClaimed). */
  private readonly markersDue = new Set<string>();
  private stopping = false;
  /** Chaos branch (issue 15): why each pool's last start failed, until one succeeds; shown in the stats. */
  private readonly lastFailure = new Map<string, string>();
  private readonly log: Logger;
  private readonly metrics: OrchestratorMetrics;

  constructor(
    readonly config: OrchestratorConfig,
    private readonly deps: OrchestratorDeps,
  ) {
    this.log = deps.log;
    for (const pool of config.pools) this.pools.set(pool.name, pool);
    this.core = new PoolCore(
      config.pools.map((p) => ({ name: p.name, size: p.size })),
      {
        maxContainers: config.capacity,
        maxParallelStarts: config.startParallel,
        queueLimit: config.queueSize,
        backoffBaseMs: 500,
        backoffMaxMs: 30_000,
        refillDelayMs: config.refillDelay * 1000,
        refillParallel: config.refillParallel,
      },
    );
    this.shares = new FairShare({ maxPerClient: config.maxPerClient, claimsPerMinute: config.claimsPerMinute, burst: Math.max(1, config.maxPerClient) });
    this.activity = deps.activity ?? new HttpAppActivityProbe();
    this.demand = new DemandCore(config.pools.map((p) => ({ name: p.name, size: p.size, auto: p.auto })));
    this.engine = new EngineLink({ lost: (err) => this.onEngineLost(err), restored: () => this.onEngineRestored() });
    this.engineWork = new EngineQueue(this.log, {
      concurrency: config.removeParallel,
      timeoutMs: 30_000,
      retryDelayMs: 2_000,
      maxAttempts: 3,
      // The engine going away was said once (onEngineLost); its retries need not say it again.
      alreadyTold: (err) => this.engineAwayExplains(err),
    });
    this.metrics = createOrchestratorMetrics(deps.registry, this.core);
  }

  // ---- start and stop ------------------------------------------------------------------------

  /** Adopts this instance's containers, then starts filling pools, watching the engine and the periodic passes. */
  async start(): Promise<void> {
    const warm = this.config.pools.reduce((sum, p) => sum + (p.auto ? p.auto.min : p.size), 0);
    if (warm > this.config.capacity) {
      // Legal (a small machine), but the pools will never look as asked: say so once, at start.
      this.log.warn({ warm, capacity: this.config.capacity }, `the pools want ${warm} warm containers, more than --max-containers ${this.config.capacity}: at most ${this.config.capacity} are ever warm, and fewer while visitors hold containers`);
    }
    await this.adopt();
    this.stopWatching = this.deps.backend.watch?.(LABELS.instance, this.config.instance, {
      exited: (containerId, reason) => this.onEngineExit(containerId, reason),
      lost: (err) => this.engine.fail('events', err),
      restored: () => this.engine.recover('events'),
    });
    this.timers.push(setInterval(() => this.tick(), TICK_MS));
    this.timers.push(setInterval(() => this.periodicPass(), this.passPeriodMs()));
    this.timers.push(setInterval(() => this.sampleHistory(), this.history.intervalMs));
    for (const t of this.timers) t.unref();
    this.kick();
  }

  /**
   * Stops taking visitors. Containers stay for the next start (engine labels are the truth)
   * unless --cleanup-on-exit, in which case this instance's containers are removed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopWatching?.();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const p of [...this.pending.values()]) {
      this.core.dropWaiter(p.waiter.id, p.waiter.pool);
      this.takePending(p.waiter.id);
      p.reject(new ServiceUnavailable('this node is shutting down; try again', 5));
    }
    await this.reconcileRunning;
    await Promise.allSettled([...this.background]);
    if (this.config.cleanupOnExit) {
      const found = await this.deps.backend.list(LABELS.instance, this.config.instance).catch(() => []);
      for (const c of found) {
        const id = c.labels[LABELS.user];
        if (id && this.core.get(id)?.state === 'claimed') await this.deps.routes.deleteRoute(routePath(id)).catch(() => undefined);
        this.removeFromEngine(c.containerId);
      }
    }
    // Claim markers still due must land: the next start relies on them (the journal covers a crash).
    this.sendClaimMarkers();
    await Promise.race([this.engineWork.idle(), sleep(this.config.cleanupOnExit ? 120_000 : 5_000)]);
    this.engineWork.close();
  }

  get draining(): boolean {
    return this.stopping;
  }

  /** Whether the engine is away (or not yet reconciled after coming back): nothing is claimed or started. */
  get engineLost(): boolean {
    return !this.engineTrusted;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.background.add(promise);
    void promise.finally(() => this.background.delete(promise)).catch(() => undefined);
    return promise;
  }

  private async adopt(): Promise<void> {
    const instance = this.config.instance;
    const journaled = this.deps.journal.load();
    const [found, routes] = await Promise.all([this.deps.backend.list(LABELS.instance, instance), this.deps.routes.getRoutes()]);
    const now = Date.now();
    let warm = 0;
    let claimed = 0;
    for (const c of found) {
      const id = c.labels[LABELS.user];
      const pool = c.labels[LABELS.pool];
      const route = id ? routes[routePath(id)] : undefined;
      if (!id || !pool || !this.core.hasPool(pool) || !c.running || !c.target) {
        this.log.info({ container: c.containerId, pool, running: c.running }, 'removing a container that cannot be adopted');
        this.removeFromEngine(c.containerId);
        continue;
      }
      const isClaimed = c.claimed || route !== undefined || journaled.has(id);
      const createdAt = Number(c.labels[LABELS.created]) || now;
      const claimedAt = typeof route?.claimed === 'string' ? Date.parse(route.claimed) || now : now;
      this.core.adopt({ id, pool, state: isClaimed ? 'claimed' : 'starting', createdAt, claimedAt });
      this.remember(id, { containerId: c.containerId, target: c.target, token: c.labels[LABELS.token] || undefined, startedAt: now });
      if (isClaimed) {
        claimed++;
        if (!c.claimed) this.markClaimed(id);
        if (!route || route.target !== c.target) await this.writeRoute(this.core.get(id)!);
        else this.info.get(id)!.routedAt = Date.now();
      } else {
        warm++;
        void this.track(this.admit(id, pool));
      }
    }
    for (const [path, data] of Object.entries(routes)) {
      const id = visitorIdOfRoute(path);
      if (id && data.instance === instance && this.core.get(id)?.state !== 'claimed') await this.deps.routes.deleteRoute(path);
    }
    this.deps.journal.compact(this.core.list({ state: 'claimed' }).map((c) => c.id));
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
      const p = this.takePending(waiter.id);
      this.metrics.turnedAway.inc({ pool: waiter.pool });
      p?.reject(new TooManyRequests(`no container of pool ${waiter.pool} became free in time; try again`, this.retryAfter()));
    }
    // demand: auto pools follow the claim rate; warm containers past --max-warm-age are replaced.
    for (const id of sizePools(this.demand, this.core, now, this.config.capacity, this.config.maxWarmAge * 1000)) this.retire(id, 'max-warm-age');
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
    if (!this.engineTrusted) return;
    const now = Date.now();
    if (this.markersDue.size > 0 && !this.core.claimsArriving(now)) this.sendClaimMarkers();
    for (const [pool, count] of this.core.startPlan(now)) {
      for (let i = 0; i < count; i++) void this.track(this.startOne(pool));
    }
  }

  private async startOne(poolName: string): Promise<void> {
    const pool = this.pools.get(poolName)!;
    const id = newVisitorId();
    const token = this.config.useTokens ? randomBytes(24).toString('base64url') : '';
    const now = Date.now();
    const c = this.core.starting(poolName, id, now);
    this.remember(id, { token: token || undefined });
    this.creating.add(id);
    try {
      // Inside the try: whatever fails here fails this start, said and backed off, never a start left pending for ever.
      const spec = containerSpec(this.config, pool, { id, token, createdAt: now, generation: c.generation });
      const started = await this.deps.backend.start(spec);
      this.remember(id, { token: token || undefined, ...started, startedAt: Date.now() });
    } catch (err) {
      this.creating.delete(id);
      const level = this.engineAwayExplains(err) ? 'debug' : 'warn';
      this.log[level]({ err: (err as Error).message, pool: poolName, backend: this.deps.backend.kind }, 'container failed to start');
      this.lastFailure.set(poolName, `container failed to start: ${(err as Error).message}`);
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
    const url = `${info.target}${pool.stripPrefix ? '/' : basePath(id)}${pool.probePath.replace(/^\//, '')}`;
    const deadline = Date.now() + this.config.probeTimeout * 1000;
    let lastError = '';
    let nextLivenessCheck = Date.now() + 500;
    // 20 ms doubling to 200 ms: a fast start is admitted within a few tens of ms, while a slow one
    // (seconds, with several starting) is not asked dozens of times through the engine's port proxy.
    let pauseMs = 20;
    while (Date.now() < deadline && this.core.get(id)?.state === 'starting' && !this.stopping) {
      try {
        await this.deps.probe.check(url, Math.min(2000, Math.max(50, deadline - Date.now())));
        this.lastFailure.delete(poolName);
        if (this.core.admitted(id)) {
          this.log.debug({ id, pool: poolName }, 'container admitted');
          // demand: start times plan the warm target (adopted containers' ages are not start times).
          const startMs = Date.now() - this.core.get(id)!.createdAt;
          if (startMs <= this.config.probeTimeout * 1000) this.demand.started(poolName, startMs, Date.now());
          this.kick();
        }
        return;
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
      await sleep(pauseMs);
      pauseMs = Math.min(200, pauseMs * 2);
    }
    if (this.stopping || this.core.get(id)?.state !== 'starting') return;
    this.log[this.engineTrusted ? 'warn' : 'debug']({ id, pool: poolName, lastError, probe: url }, 'container never answered its probe; removing it');
    this.lastFailure.set(poolName, `container never answered its probe: ${lastError}`);
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
    this.shares.release(id);
    this.log.debug({ id, pool: c.pool, reason }, 'retiring container');
    if (wasClaimed) void this.track(this.deps.routes.deleteRoute(routePath(id)).catch((err: unknown) => this.log.warn({ err, id }, 'could not delete route')));
    this.dispose(id);
  }

  private dispose(id: string): void {
    const containerId = this.info.get(id)?.containerId;
    if (containerId) this.removeFromEngine(containerId);
    // Without an engine id: either the start is in flight (startOne retires it when the engine
    // answers) or it failed and the backend left nothing behind.
    else if (!this.creating.has(id)) this.forget(id);
  }

  private removeFromEngine(containerId: string): void {
    this.markersDue.delete(containerId);
    this.engineWork.add(`remove:${containerId}`, {
      run: (signal) => this.deps.backend.remove(containerId, signal),
      done: () => {
        const id = this.byContainerId.get(containerId);
        if (id) this.forget(id);
        this.kick();
      },
    });
  }

  private forget(id: string): void {
    const containerId = this.info.get(id)?.containerId;
    if (containerId) this.byContainerId.delete(containerId);
    this.info.delete(id);
    this.shares.release(id);
    this.core.removed(id);
  }

  // ---- claims --------------------------------------------------------------------------------

  private poolOf(name: string | undefined): PoolConfig {
    const pool = this.pools.get(name || this.config.pools[0]!.name);
    if (!pool) throw new NotFound(`no pool named ${JSON.stringify(name)}; pools: ${[...this.pools.keys()].join(', ')}`);
    return pool;
  }

  /** Adds the visitor's route to the proxy and notes when it was known there (reconcile.ts `routedAt`). */
  private async writeRoute(c: PoolContainer): Promise<void> {
    await this.deps.routes.addRoute(routePath(c.id), this.routeData(c));
    // Retired and forgotten meanwhile: nothing left to note.
    const info = this.info.get(c.id);
    if (info) info.routedAt = Date.now();
  }

  private routeData(c: PoolContainer): RouteData {
    const info = this.info.get(c.id)!;
    const pool = this.pools.get(c.pool);
    return {
      target: info.target!,
      instance: this.config.instance,
      pool: c.pool,
      container: info.containerId,
      created: new Date(c.createdAt).toISOString(),
      claimed: new Date(c.claimedAt ?? Date.now()).toISOString(),
      // demand: the proxy sends /user/<id>/x as /x and rewrites Location and cookie paths.
      ...(pool?.stripPrefix ? { strip_prefix: true } : {}),
      // issue 16 part 3: the app's own polls leave the route's last_activity alone.
      ...(pool?.activityIgnore.length ? { activity_ignore: pool.activityIgnore } : {}),
    };
  }

  private retryAfter(): number {
    return Math.max(2, Math.ceil(this.config.probeTimeout / 4));
  }

  /** Whether this visitor may claim now: the node is up, the pool exists, the client is within its share. */
  private guard(poolName: string | undefined, context: ClaimContext): PoolConfig {
    if (this.stopping) throw new ServiceUnavailable('this node is shutting down; try again', 5);
    const pool = this.poolOf(poolName);
    if (context.client !== undefined) {
      const verdict = this.shares.check(context.client, Date.now());
      if (!verdict.ok) {
        this.metrics.turnedAway.inc({ pool: pool.name });
        throw new TooManyRequests(
          verdict.why === 'cap'
            ? `this address already holds ${this.config.maxPerClient} containers, the most one visitor may hold at once; close one or try again later`
            : 'too many new containers asked for from this address; try again in a little while',
          verdict.retryAfterS,
          verdict.why === 'cap' ? 'client_cap' : 'client_rate',
        );
      }
    }
    return pool;
  }

  /** Claims a warm container now, or returns undefined when the visitor must wait. */
  async claimNow(poolName: string | undefined, context: ClaimContext, startedAt = performance.now()): Promise<Claim | undefined> {
    const pool = this.guard(poolName, context);
    // While the engine is not trusted, a warm container may be dead: the visitor waits instead.
    let container: PoolContainer | undefined;
    try {
      container = this.engineTrusted ? this.core.claim(pool.name, Date.now()) : undefined;
    } catch (err) {
      throw this.mapPoolError(err);
    }
    this.demand.arrival(pool.name, Date.now(), container !== undefined); // demand: hit or miss
    if (!container) return undefined;
    if (context.client !== undefined) this.shares.spend(context.client, Date.now());
    return this.finishClaim(container, context, startedAt);
  }

  /** A visitor joins the line; their place counts toward their client's share until it is served or left. */
  private addPending(p: PendingWaiter): void {
    this.pending.set(p.waiter.id, p);
    const client = p.context.client;
    if (client !== undefined) {
      this.shares.spend(client, Date.now());
      this.shares.hold(client, p.waiter.id);
    }
  }

  /** A visitor leaves the line (served, expired, gone, drained). */
  private takePending(waiterId: string): PendingWaiter | undefined {
    const p = this.pending.get(waiterId);
    this.pending.delete(waiterId);
    this.shares.release(waiterId);
    return p;
  }

  /**
   * Claims now or waits in line (API: up to --spawn-wait; page visitors use tickets). A caller who
   * hangs up (`callerGone`) leaves the line, so no container is claimed for nobody.
   */
  async claimOrWait(poolName: string | undefined, context: ClaimContext, waitMs: number, callerGone?: AbortSignal): Promise<Claim> {
    const startedAt = performance.now();
    const now = Date.now();
    const immediate = await this.claimNow(poolName, context, startedAt);
    if (immediate) return immediate;
    const pool = this.poolOf(poolName);
    // The engine is gone: nothing can be started or trusted here, so a caller (a redirector, a
    // publisher's script) should try another node now rather than wait for one that may not return.
    if (!this.engine.trusted) throw new ServiceUnavailable("this node's container engine is unreachable; try another node or again later", this.retryAfter());
    if (waitMs <= 0) {
      this.metrics.turnedAway.inc({ pool: pool.name });
      throw new TooManyRequests(`no container of pool ${pool.name} is free; try again`, this.retryAfter());
    }
    return new Promise<Claim>((resolve, reject) => {
      const waiter: Waiter = { id: newVisitorId(), pool: pool.name, enqueuedAt: now, deadline: now + waitMs };
      try {
        this.core.enqueue(waiter);
      } catch (err) {
        this.metrics.turnedAway.inc({ pool: pool.name });
        reject(this.mapPoolError(err, true));
        return;
      }
      this.addPending({ waiter, context, startedAt, resolve, reject });
      callerGone?.addEventListener('abort', () => {
        if (!this.takePending(waiter.id)) return; // already served (or expired)
        this.core.dropWaiter(waiter.id, pool.name);
        reject(new ClientGone('the caller hung up while waiting for a container'));
      }, { once: true });
      this.kick();
    });
  }

  /** Puts a visitor in line without holding their request open (a loading page polls for them). */
  joinLine(poolName: string | undefined, context: ClaimContext): PlaceInLine {
    const pool = this.guard(poolName, context);
    const now = Date.now();
    const waiter: Waiter = { id: newVisitorId(), pool: pool.name, enqueuedAt: now, deadline: now + this.config.queueWait * 1000 };
    try {
      this.core.enqueue(waiter);
    } catch (err) {
      this.metrics.turnedAway.inc({ pool: pool.name });
      throw this.mapPoolError(err);
    }
    const claimed = new Promise<Claim>((resolve, reject) => this.addPending({ waiter, context, startedAt: performance.now(), resolve, reject }));
    this.kick();
    return {
      id: waiter.id,
      pool: pool.name,
      claimed,
      position: () => this.core.position(waiter.id, pool.name),
      waiting: () => this.core.figures(pool.name, Date.now()).waiting,
      leave: () => {
        if (this.takePending(waiter.id)) this.core.dropWaiter(waiter.id, pool.name);
      },
    };
  }

  private mapPoolError(err: unknown, api = false): Error {
    if (!(err instanceof PoolError)) return err as Error;
    if (err.kind === 'unknown-pool') return new NotFound(err.message);
    if (err.kind === 'draining') return new ServiceUnavailable(err.message, this.retryAfter());
    return api ? new TooManyRequests(err.message, this.retryAfter()) : new ServiceUnavailable(err.message, 30);
  }

  private serveWaiters(): void {
    if (!this.engineTrusted) return;
    for (const { waiter, container } of this.core.serveWaiters(Date.now())) {
      this.demand.waited(waiter.pool, Date.now(), Date.now() - waiter.enqueuedAt); // demand: waits in stats
      const p = this.takePending(waiter.id);
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
    // Written down before anything is answered: a crash from here on cannot hand it out again.
    this.deps.journal.record(container.id);
    if (context.client !== undefined) this.shares.hold(context.client, container.id);
    try {
      await this.writeRoute(container);
      this.core.routed(container.id, Date.now());
    } catch (err) {
      this.log.error({ err, id: container.id }, 'proxy refused the route; retiring the container');
      this.retire(container.id, 'route-failed');
      throw err instanceof HttpError ? err : new HttpError(502, `the proxy did not take the route: ${(err as Error).message}`);
    }
    this.markClaimed(container.id);
    if (pool.claimHook) await this.runHook(container, pool, info, context);
    const latencyMs = performance.now() - startedAt;
    this.metrics.claims.inc({ pool: pool.name });
    this.metrics.claimLatency.observe({ pool: pool.name }, latencyMs / 1000);
    this.history.recordClaim(pool.name, latencyMs);
    this.kick();
    return {
      id: container.id,
      pool: pool.name,
      url: visitorUrl(container.id, pool.redirectUri, context, info.token),
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
    return visitorUrl(id, this.poolOf(container.pool).redirectUri, context, this.info.get(id)?.token);
  }

  /** Why a visitor's container stopped (out of memory, exited), while that is recent. */
  stoppedReason(id: string): string | undefined {
    const entry = this.stopped.get(id);
    return entry && Date.now() - entry.at < STOPPED_KEEP_MS ? entry.reason : undefined;
  }

  /**
   * The engine's durable claim marker, off the claim path (the journal covers the gap). It waits
   * while claims arrive, as refills do: two engine calls a claim would take the CPU a burst needs.
   */
  private markClaimed(id: string): void {
    const containerId = this.info.get(id)?.containerId;
    if (containerId) this.markersDue.add(containerId);
  }

  private sendClaimMarkers(): void {
    for (const containerId of this.markersDue) {
      this.engineWork.add(`mark:${containerId}`, { urgent: true, run: () => this.deps.backend.markClaimed(containerId) });
    }
    this.markersDue.clear();
  }

  private async runHook(container: PoolContainer, pool: PoolConfig, info: ContainerInfo, context: ClaimContext): Promise<void> {
    const env = [`NBPOOL_QUERY=${context.query}`, `NBPOOL_POOL=${pool.name}`, `NBPOOL_BASE_PATH=${basePath(container.id)}`];
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

  // ---- reconcile, culling and the engine's events ------------------------------------------------

  private passPeriodMs(): number {
    return Math.min(this.config.reconcilePeriod, this.config.cullPeriod) * 1000;
  }

  /**
   * The periodic pass skips a turn while claims arrive: its engine listing (hundreds of KB of JSON)
   * holds the event loop for milliseconds. Never two turns in a row, so a steady stream of
   * visitors delays repairs by one period at most.
   */
  private periodicPass(): void {
    if (this.core.claimsArriving(Date.now()) && Date.now() - this.lastPassAt < 1.5 * this.passPeriodMs()) return;
    void this.reconcilePass();
  }

  /** One reconcile pass (and a cull when one is due); passes never overlap and no error escapes. */
  reconcilePass(): Promise<void> {
    if (this.reconcileRunning || this.stopping) return this.reconcileRunning ?? Promise.resolve();
    // While the engine is away there is nothing to compare with; its return runs a pass at once.
    if (!this.engineTrusted) return Promise.resolve();
    this.reconcileRunning = this.runReconcilePass()
      .catch((err: unknown) => {
        if (!this.engineCallFailed(err)) this.log.error({ err }, 'reconcile pass failed; trying again next period');
      })
      .finally(() => (this.reconcileRunning = undefined));
    return this.reconcileRunning;
  }

  private known(): KnownContainer[] {
    return this.core.list().map((c) => {
      const info = this.info.get(c.id);
      return { id: c.id, pool: c.pool, state: c.state, containerId: info?.containerId, target: info?.target, startedAt: info?.startedAt, routedAt: info?.routedAt };
    });
  }

  private async runReconcilePass(): Promise<void> {
    const listedAt = Date.now();
    this.lastPassAt = listedAt;
    const [routes, engine] = await Promise.all([this.deps.routes.getRoutes(), this.deps.backend.list(LABELS.instance, this.config.instance)]);
    const { actions, lastActivity } = reconcile({ instance: this.config.instance, known: this.known(), engine, listedAt, routes });
    for (const action of actions) {
      switch (action.kind) {
        case 'replace-dead': {
          const c = this.core.get(action.id);
          if (!c) break;
          this.log.warn({ id: c.id, pool: c.pool, state: c.state, reason: action.reason }, 'container died or vanished; replacing it');
          this.containerStopped(c, action.reason === 'vanished' ? 'removed' : 'stopped');
          if (action.reason === 'vanished') this.forget(c.id);
          break;
        }
        case 'replace-leaving': {
          const c = this.core.get(action.id);
          if (c?.state !== 'warm') break;
          this.log.info({ id: c.id, pool: c.pool }, "warm container's machine is leaving; replacing it elsewhere");
          this.retire(c.id, 'leaving');
          break;
        }
        case 'remove-unknown':
          this.removeFromEngine(action.containerId);
          break;
        case 'delete-route':
          this.log.info({ path: action.path }, 'deleting a route with no container');
          await this.deps.routes.deleteRoute(action.path);
          break;
        case 'add-route': {
          const c = this.core.get(action.id);
          if (c?.state !== 'claimed') break;
          this.log.warn({ id: c.id }, 'proxy lost or misdirected a visitor route; adding it back');
          await this.writeRoute(c);
          break;
        }
      }
    }
    const now = Date.now();
    if (now - this.lastCull >= this.config.cullPeriod * 1000) {
      this.lastCull = now;
      await this.cull(now, lastActivity);
      this.deps.journal.compact(this.core.list({ state: 'claimed' }).map((c) => c.id));
    }
    this.kick();
  }

  private async cull(now: number, lastActivity: ReadonlyMap<string, number>): Promise<void> {
    const plan = this.core.cullPlan(now, lastActivity, {
      idleMs: this.config.cullTimeout * 1000,
      unvisitedMs: this.config.unvisitedTimeout * 1000,
      maxAgeMs: this.config.cullMax * 1000,
    });
    // demand (issue 16 part 3): a kernel still computing with the tab closed is activity; ask the app.
    // A container nobody ever visited has no kernel of theirs to ask about.
    const apps = await Promise.all(plan.map(({ id, reason }) => (reason === 'unvisited' ? undefined : this.askApp(id))));
    for (const [i, { id, reason }] of plan.entries()) {
      const c = this.core.get(id);
      if (!c || c.state === 'removing') continue;
      const app = apps[i];
      if (reason === 'idle' && app && (app.busy || (app.lastActivity ?? 0) > now - this.config.cullTimeout * 1000)) {
        this.log.info({ id, pool: c.pool, busy: app.busy, kernelActivity: app.lastActivity && new Date(app.lastActivity).toISOString() }, 'not culling: no visitor activity, but its kernel is working');
        continue;
      }
      this.log.info({ id, pool: c.pool, reason, ...(app?.busy ? { kernel: 'busy' } : {}) }, app?.busy ? 'culling container while its kernel was busy' : 'culling container');
      this.metrics.culls.inc({ pool: c.pool, reason });
      this.history.recordCull(c.pool);
      this.retire(id, reason);
    }
  }

  /** What the app in a claimed container says about its kernels (pools whose preset can tell). */
  private askApp(id: string): Promise<AppActivity | undefined> {
    const c = this.core.get(id);
    const api = c && this.pools.get(c.pool)?.activity;
    const info = this.info.get(id);
    if (!api || c.state !== 'claimed' || !info?.target) return Promise.resolve(undefined);
    return this.activity.ask(api, info.target, basePath(id), info.token, 2000);
  }

  /** A warm or claimed container is no longer running: out of service, and its visitor is told why. */
  private containerStopped(c: PoolContainer, reason: string): void {
    this.metrics.healed.inc({ pool: c.pool });
    if (c.state === 'claimed') {
      if (this.stopped.size >= STOPPED_KEEP_MAX) this.stopped.delete(this.stopped.keys().next().value!);
      this.stopped.set(c.id, { reason, at: Date.now() });
    }
    this.retire(c.id, 'dead');
  }

  private onEngineExit(containerId: string, reason: string): void {
    const id = this.byContainerId.get(containerId);
    const c = id ? this.core.get(id) : undefined;
    if (!c || (c.state !== 'warm' && c.state !== 'claimed')) return;
    if (this.exitsToTell.length === 0) setTimeout(() => this.tellExits(), EXIT_FOLD_MS).unref();
    this.exitsToTell.push({ id: c.id, pool: c.pool, state: c.state, reason });
    this.containerStopped(c, reason);
    this.kick();
  }

  /** One line for the exits of the last moment: one each when alone, folded when the engine took them. */
  private tellExits(): void {
    const exits = this.exitsToTell;
    this.exitsToTell = [];
    if (!this.engineTrusted) {
      this.log.info({ containers: exits.length, exits }, 'containers stopped as the engine went away');
    } else if (exits.length === 1) {
      const exit = exits[0]!;
      this.log.warn(exit, exit.state === 'claimed' ? "a visitor's container stopped" : 'a warm container stopped; replacing it');
    } else {
      this.log.warn({ containers: exits.length, exits: exits.slice(0, 20) }, `${exits.length} containers stopped at once; replacing the warm ones`);
    }
  }

  /**
   * A call to the engine failed: when it could not even connect, the engine is gone (said once, by
   * the link) and a check call runs until it answers again. True when that was the failure.
   */
  private engineCallFailed(err: unknown): boolean {
    if (!isConnectionError(err)) return false;
    if (this.engine.isDown('calls')) return true;
    this.engine.fail('calls', err as Error);
    void this.track(this.checkEngineCalls());
    return true;
  }

  /** Whether a failed engine call is explained by the engine being away, which was said once already. */
  private engineAwayExplains(err: unknown): boolean {
    return this.engineCallFailed(err) || !this.engineTrusted;
  }

  private async checkEngineCalls(): Promise<void> {
    for (let delay = ENGINE_CHECK_MIN_MS; !this.stopping && this.engine.isDown('calls'); delay = Math.min(delay * 2, ENGINE_CHECK_MAX_MS)) {
      await sleep(delay);
      try {
        await this.deps.backend.list(LABELS.instance, this.config.instance);
        this.engine.recover('calls');
      } catch {
        // Still away; try again later.
      }
    }
  }

  private onEngineLost(err: Error): void {
    if (this.stopping) return;
    this.engineTrusted = false;
    this.metrics.engineDisconnects.inc();
    this.log.error({ err: err.message, backend: this.deps.backend.kind }, 'lost the container engine: no claims from the warm pool and no starts until it is back');
  }

  /** The engine is back: its containers may have died meanwhile, so reconcile before claiming again. */
  private onEngineRestored(): void {
    this.log.warn({ backend: this.deps.backend.kind }, 'the container engine is back; reconciling before claims resume');
    const attempt = async (): Promise<void> => {
      // The engine may go again meanwhile: its next return starts a new attempt.
      while (!this.stopping && this.engine.trusted) {
        try {
          await this.reconcileNow();
          this.engineTrusted = true;
          this.log.info('reconciled with the engine; claims and refills resume');
          this.kick();
          return;
        } catch (err) {
          if (this.engineCallFailed(err)) return;
          this.log.warn({ err: (err as Error).message }, 'reconcile after reconnect failed; trying again');
          await sleep(1000);
        }
      }
    };
    void this.track(attempt());
  }

  /** Runs a reconcile pass now (waiting for one in flight first), letting its error through. */
  private async reconcileNow(): Promise<void> {
    await this.reconcileRunning;
    this.reconcileRunning = this.runReconcilePass().finally(() => (this.reconcileRunning = undefined));
    await this.reconcileRunning;
  }

  // ---- admin ---------------------------------------------------------------------------------

  resize(poolName: string, size: unknown): void {
    const pool = this.poolOf(poolName);
    // demand: an auto pool's size is its demand target; its bounds come from the config.
    if (pool.auto) throw new Conflict(`pool ${poolName} sizes itself (auto, ${pool.auto.min} to ${pool.auto.max} warm); change min/max in the config`);
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
      const p = this.takePending(w.id);
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
      ...(this.lastFailure.has(name) ? { last_failure: this.lastFailure.get(name) } : {}),
      draining: f.draining,
      refill_paused: f.refillPaused,
      generation: f.generation,
      redirect_uri: pool.redirectUri,
      entry_path: pool.entryPath,
      preset: pool.preset,
      ...this.demand.stats(name, Date.now()), // demand: target, hit rate and waits over 10 minutes
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
      available: this.stopping || !this.engineTrusted ? 0 : available,
      capacity: this.config.capacity,
      version: this.deps.version,
      container_image: this.config.pools[0]!.image,
      claimed: t.claimed,
      starting: t.starting,
      // Without its engine the node can start nothing: a redirector sends new visitors elsewhere.
      room: this.engineTrusted ? Math.max(0, this.config.capacity - t.claimed) : 0,
      waiting: t.waiting,
      draining: this.stopping,
      engine_lost: !this.engineTrusted,
      pools,
    };
  }

  private sampleHistory(): void {
    const levels: Record<string, PoolLevels> = {};
    const now = Date.now();
    // demand: the target is drawn beside the warm count.
    for (const name of this.core.poolNames()) {
      const f = this.core.figures(name, now);
      levels[name] = { ...f, target: f.size };
    }
    this.history.sample(now, levels);
  }
}
