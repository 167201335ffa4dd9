/**
 * The pool state machine: pure, no I/O, time passed in. The runtime (orchestrator.ts) asks it what
 * to do (start how many, serve which waiter, cull whom) and reports what happened.
 *
 * A container's life: starting (creating, then probing) -> warm -> claimed -> removing -> gone.
 * `--pool-size` is the number of WARM containers wanted per pool; a claim is replaced at once.
 * `maxContainers` caps warm + claimed + starting (removing ones are on their way out and not counted).
 * Visitors who find no warm container wait in one FIFO queue per pool, bounded in total length.
 */

const CONTAINER_STATES = ['starting', 'warm', 'claimed', 'removing'] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

export interface PoolContainer {
  /** The visitor-facing id (nanoid): route `/user/<id>`, chosen when the container is created. */
  id: string;
  pool: string;
  state: ContainerState;
  /** While starting: waiting for the engine, or probing the container's HTTP endpoint. */
  phase?: 'creating' | 'probing';
  /** The pool generation it was started for; a refresh bumps the pool's generation. */
  generation: number;
  createdAt: number;
  claimedAt?: number;
  /**
   * When the claim's route was written (`routed`): the proxy stamps a new route's last activity at
   * or before this, so activity after it is the visitor's own. Unknown for adopted containers.
   */
  routedAt?: number;
}

export interface PoolSpec {
  name: string;
  /** Warm containers wanted. */
  size: number;
}

export interface PoolLimits {
  /** Cap on warm + claimed + starting over all pools. */
  maxContainers: number;
  /** Engine create/start calls in flight at once (probing does not count). */
  maxParallelStarts: number;
  /** Visitors waiting at once, over all pools. */
  queueLimit: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /**
   * Refill yields to claims: for this long after a pool's last claim, its replacements start at
   * most `refillParallel` at a time (a container start costs the engine about a CPU-second, the CPU
   * a burst of claims needs), unless the pool is running dry. Then it catches up at full parallelism.
   * The node's other engine work that claims cause (claim markers) waits for the same quiet.
   */
  refillDelayMs: number;
  refillParallel: number;
}

export const DEFAULT_LIMITS: PoolLimits = {
  maxContainers: 100,
  maxParallelStarts: 8,
  queueLimit: 1000,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  refillDelayMs: 250,
  refillParallel: 0,
};

interface PoolRecord {
  name: string;
  size: number;
  generation: number;
  draining: boolean;
  failures: number;
  /** Failures since the last success; drives the backoff. */
  consecutiveFailures: number;
  backoffUntil: number;
  waiters: Waiter[];
  /** When a container of this pool was last handed out (-Infinity: never). */
  lastClaimAt: number;
  /**
   * Its containers by state. A claim and the plan after it look only at the warm and starting ones
   * (a few dozen), never at the claimed ones: those grow to hundreds on a busy node, and scanning
   * them all cost every claim more than the rest of its own bookkeeping.
   */
  byState: Record<ContainerState, Set<PoolContainer>>;
}

export interface Waiter {
  id: string;
  pool: string;
  enqueuedAt: number;
  /** Past this time the waiter is dropped and answered "try again later". */
  deadline: number;
}

export interface PoolFigures {
  size: number;
  warm: number;
  claimed: number;
  starting: number;
  removing: number;
  waiting: number;
  failures: number;
  backoffUntil?: number;
  draining: boolean;
  generation: number;
  /** Refill is held back because claims are arriving (see PoolLimits.refillDelayMs). */
  refillPaused: boolean;
}

export type CullReason = 'idle' | 'unvisited' | 'max-age';

/** The cull rules' time limits in ms; 0 disables a rule. */
export interface CullLimits {
  /** A claimed container with no activity for this long. */
  idleMs: number;
  /** A claimed container whose visitor never arrived (no activity since its route was written) for this long. */
  unvisitedMs: number;
  /** Any container older than this. */
  maxAgeMs: number;
}

/** A pool or the whole node cannot take this visitor now. */
export class PoolError extends Error {
  constructor(
    readonly kind: 'unknown-pool' | 'draining' | 'queue-full',
    message: string,
  ) {
    super(message);
    this.name = 'PoolError';
  }
}

export class PoolCore {
  private readonly pools = new Map<string, PoolRecord>();
  private readonly containers = new Map<string, PoolContainer>();
  private waiting = 0;

  constructor(
    pools: readonly PoolSpec[],
    readonly limits: PoolLimits = DEFAULT_LIMITS,
  ) {
    for (const spec of pools) this.addPool(spec);
  }

  addPool(spec: PoolSpec): void {
    if (this.pools.has(spec.name)) throw new Error(`pool ${spec.name} defined twice`);
    this.pools.set(spec.name, {
      name: spec.name,
      size: spec.size,
      generation: 0,
      draining: false,
      failures: 0,
      consecutiveFailures: 0,
      backoffUntil: 0,
      lastClaimAt: -Infinity,
      waiters: [],
      byState: { starting: new Set(), warm: new Set(), claimed: new Set(), removing: new Set() },
    });
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  hasPool(name: string): boolean {
    return this.pools.has(name);
  }

  private pool(name: string): PoolRecord {
    const pool = this.pools.get(name);
    if (!pool) throw new PoolError('unknown-pool', `no pool named ${JSON.stringify(name)}; pools: ${this.poolNames().join(', ')}`);
    return pool;
  }

  get(id: string): PoolContainer | undefined {
    return this.containers.get(id);
  }

  list(filter?: { pool?: string; state?: ContainerState }): PoolContainer[] {
    const state = filter?.state;
    if (state !== undefined) {
      // From the pools' sets: a node holding thousands of claimed containers lists its few warm ones without visiting them.
      if (filter?.pool !== undefined) return [...(this.pools.get(filter.pool)?.byState[state] ?? [])];
      const out: PoolContainer[] = [];
      for (const pool of this.pools.values()) out.push(...pool.byState[state]);
      return out;
    }
    const out: PoolContainer[] = [];
    for (const c of this.containers.values()) {
      if (filter?.pool !== undefined && c.pool !== filter.pool) continue;
      out.push(c);
    }
    return out;
  }

  // ---- container lifecycle -------------------------------------------------------------------

  /** The one place a container changes state, so its pool's sets stay true. */
  private setState(c: PoolContainer, state: ContainerState): void {
    const sets = this.pools.get(c.pool)!.byState;
    sets[c.state].delete(c);
    c.state = state;
    c.phase = undefined;
    sets[state].add(c);
  }

  private insert(c: PoolContainer): void {
    this.containers.set(c.id, c);
    this.pools.get(c.pool)!.byState[c.state].add(c);
  }

  /** A container is being created for `pool` with visitor id `id`. */
  starting(pool: string, id: string, now: number): PoolContainer {
    const record = this.pool(pool);
    const container: PoolContainer = { id, pool, state: 'starting', phase: 'creating', generation: record.generation, createdAt: now };
    this.insert(container);
    return container;
  }

  /** The engine started it; now its HTTP endpoint is probed. */
  created(id: string): void {
    const c = this.containers.get(id);
    if (c?.state === 'starting') c.phase = 'probing';
  }

  /** It answered its probe: it joins the warm pool, and the pool's failure streak ends. */
  admitted(id: string): boolean {
    const c = this.containers.get(id);
    if (!c || c.state !== 'starting') return false;
    const pool = this.pools.get(c.pool)!;
    this.setState(c, 'warm');
    pool.consecutiveFailures = 0;
    pool.backoffUntil = 0;
    return true;
  }

  /** It failed to start or never answered: count it, back the pool off, and mark it for removal. */
  failed(id: string, now: number): void {
    const c = this.containers.get(id);
    if (!c) return;
    const pool = this.pools.get(c.pool)!;
    pool.failures++;
    pool.consecutiveFailures++;
    const exponent = Math.min(pool.consecutiveFailures - 1, 20);
    pool.backoffUntil = now + Math.min(this.limits.backoffBaseMs * 2 ** exponent, this.limits.backoffMaxMs);
    this.setState(c, 'removing');
  }

  /** Marks it for removal (cull, trim, drain, died). Returns false when it was already going. */
  removing(id: string): boolean {
    const c = this.containers.get(id);
    if (!c || c.state === 'removing') return false;
    this.setState(c, 'removing');
    return true;
  }

  /** The engine no longer has it. */
  removed(id: string): void {
    const c = this.containers.get(id);
    if (!c) return;
    this.containers.delete(id);
    this.pools.get(c.pool)!.byState[c.state].delete(c);
  }

  /** A container found on the engine at start (Docker labels are the truth). Unknown pools are refused. */
  adopt(c: { id: string; pool: string; state: 'starting' | 'warm' | 'claimed'; createdAt: number; claimedAt?: number }): boolean {
    const pool = this.pools.get(c.pool);
    if (!pool || this.containers.has(c.id)) return false;
    this.insert({
      id: c.id,
      pool: c.pool,
      state: c.state,
      phase: c.state === 'starting' ? 'probing' : undefined,
      generation: pool.generation,
      createdAt: c.createdAt,
      claimedAt: c.claimedAt,
    });
    return true;
  }

  // ---- claims and the waiting queue ----------------------------------------------------------

  /**
   * Hands out a warm container of `pool` at once, or undefined when none is free or earlier
   * visitors are already waiting (arrival order is kept). Old generations go first (refresh).
   */
  claim(poolName: string, now: number): PoolContainer | undefined {
    const pool = this.pool(poolName);
    if (pool.draining) throw new PoolError('draining', `pool ${poolName} is draining`);
    if (pool.waiters.length > 0) return undefined;
    return this.takeWarm(pool, now);
  }

  private takeWarm(pool: PoolRecord, now: number): PoolContainer | undefined {
    let best: PoolContainer | undefined;
    for (const c of pool.byState.warm) {
      if (!best || c.generation < best.generation || (c.generation === best.generation && c.createdAt < best.createdAt)) best = c;
    }
    if (!best) return undefined;
    this.setState(best, 'claimed');
    best.claimedAt = now;
    pool.lastClaimAt = now;
    return best;
  }

  /** Puts a visitor in line; throws PoolError('queue-full') past the bound. Returns their position (0 = next). */
  enqueue(waiter: Waiter): number {
    const pool = this.pool(waiter.pool);
    if (pool.draining) throw new PoolError('draining', `pool ${waiter.pool} is draining`);
    if (this.waiting >= this.limits.queueLimit) {
      throw new PoolError('queue-full', `all ${this.limits.queueLimit} places in the waiting line are taken`);
    }
    pool.waiters.push(waiter);
    this.waiting++;
    return pool.waiters.length - 1;
  }

  /** Position of a waiter in its pool's line (0 = next), or -1 when not waiting. */
  position(waiterId: string, poolName: string): number {
    return this.pools.get(poolName)?.waiters.findIndex((w) => w.id === waiterId) ?? -1;
  }

  /** Removes a waiter who gave up or whose time ran out. */
  dropWaiter(waiterId: string, poolName: string): boolean {
    const pool = this.pools.get(poolName);
    const index = pool?.waiters.findIndex((w) => w.id === waiterId) ?? -1;
    if (!pool || index === -1) return false;
    pool.waiters.splice(index, 1);
    this.waiting--;
    return true;
  }

  /** Pairs waiters, in arrival order, with warm containers (which become claimed). */
  serveWaiters(now: number): Array<{ waiter: Waiter; container: PoolContainer }> {
    const served: Array<{ waiter: Waiter; container: PoolContainer }> = [];
    for (const pool of this.pools.values()) {
      while (pool.waiters.length > 0) {
        const container = this.takeWarm(pool, now);
        if (!container) break;
        const waiter = pool.waiters.shift()!;
        this.waiting--;
        served.push({ waiter, container });
      }
    }
    return served;
  }

  /** Waiters whose deadline passed; they are removed from the line. */
  expireWaiters(now: number): Waiter[] {
    const expired: Waiter[] = [];
    for (const pool of this.pools.values()) {
      const keep = pool.waiters.filter((w) => w.deadline > now);
      for (const w of pool.waiters) if (w.deadline <= now) expired.push(w);
      this.waiting -= pool.waiters.length - keep.length;
      pool.waiters = keep;
    }
    return expired;
  }

  // ---- planning ------------------------------------------------------------------------------

  private counts(): { active: number; creating: number } {
    let active = this.containers.size;
    let creating = 0;
    for (const pool of this.pools.values()) {
      active -= pool.byState.removing.size;
      for (const c of pool.byState.starting) if (c.phase === 'creating') creating++;
    }
    return { active, creating };
  }

  /**
   * How many containers to start now, per pool: enough for `size` warm current-generation containers
   * plus one per waiting visitor, within the cap and the free engine start slots, skipping pools that
   * drain or back off. Slots are shared round-robin so one pool cannot starve another.
   */
  startPlan(now: number): Map<string, number> {
    const { active, creating } = this.counts();
    let budget = Math.min(this.limits.maxContainers - active, this.limits.maxParallelStarts - creating);
    const deficits = new Map<string, number>();
    for (const pool of this.pools.values()) {
      if (pool.draining || pool.backoffUntil > now) continue;
      let ready = 0;
      let warm = 0;
      let creatingHere = 0;
      for (const c of pool.byState.starting) {
        if (c.phase === 'creating') creatingHere++;
        if (c.generation === pool.generation) ready++;
      }
      for (const c of pool.byState.warm) {
        if (c.generation === pool.generation) warm++;
      }
      ready += warm;
      let deficit = pool.size + pool.waiters.length - ready;
      if (this.refillPaused(pool, warm, now)) deficit = Math.min(deficit, this.limits.refillParallel - creatingHere);
      if (deficit > 0) deficits.set(pool.name, deficit);
    }
    const plan = new Map<string, number>();
    while (budget > 0 && deficits.size > 0) {
      for (const [name, deficit] of deficits) {
        if (budget <= 0) break;
        plan.set(name, (plan.get(name) ?? 0) + 1);
        budget--;
        if (deficit <= 1) deficits.delete(name);
        else deficits.set(name, deficit - 1);
      }
    }
    return plan;
  }

  /**
   * Claims are arriving (the last one within refillDelayMs) and the pool is not running dry (no
   * one waiting, and more than a quarter of its size still warm). A burst is over in well under a
   * second, long before a replacement started now would be warm, so holding starts back costs it
   * nothing; a steady stream of visitors drains the pool to a quarter, and from there it refills at
   * full speed while they keep coming.
   */
  private refillPaused(pool: PoolRecord, warm: number, now: number): boolean {
    if (!this.claimedWithinDelay(pool, now) || pool.waiters.length > 0) return false;
    return warm > Math.max(1, Math.ceil(pool.size / 4));
  }

  private claimedWithinDelay(pool: PoolRecord, now: number): boolean {
    return now - pool.lastClaimAt < this.limits.refillDelayMs;
  }

  /** Whether any pool had a claim within refillDelayMs: engine work that can wait, waits. */
  claimsArriving(now: number): boolean {
    for (const pool of this.pools.values()) if (this.claimedWithinDelay(pool, now)) return true;
    return false;
  }

  /**
   * Warm containers to remove: all of a draining pool's, then surplus beyond size + waiting. Surplus
   * is counted only once enough current-generation containers are warm, so a refresh replaces old
   * containers one for one instead of emptying the pool first.
   */
  trimPlan(): string[] {
    const out: string[] = [];
    for (const pool of this.pools.values()) {
      const warm = [...pool.byState.warm];
      if (pool.draining) {
        out.push(...warm.map((c) => c.id));
        continue;
      }
      const wanted = pool.size + pool.waiters.length;
      const current = warm.filter((c) => c.generation === pool.generation).length;
      // Old generation first (refresh), newest last: keep the containers most recently proven.
      const old = warm.filter((c) => c.generation !== pool.generation);
      const surplus = current + old.length - wanted;
      out.push(...old.slice(0, Math.max(0, Math.min(old.length, surplus))).map((c) => c.id));
      if (current > wanted) {
        const fresh = warm.filter((c) => c.generation === pool.generation).sort((a, b) => b.createdAt - a.createdAt);
        out.push(...fresh.slice(0, current - wanted).map((c) => c.id));
      }
    }
    return out;
  }

  /** The claim's route is in the proxy as of `at` (see PoolContainer.routedAt). */
  routed(id: string, at: number): void {
    const c = this.containers.get(id);
    if (c?.state === 'claimed') c.routedAt = at;
  }

  /**
   * Any container older than `maxAgeMs`; claimed containers whose visitor never arrived within
   * `unvisitedMs` of the route being written (a caller gone after the claim, a page closed just
   * before its turn); claimed containers idle longer than `idleMs` (last activity from the proxy,
   * or the claim time when the proxy has none). A container the proxy has no route for is judged
   * unvisited by nobody: reconcile puts its route back first.
   */
  cullPlan(now: number, lastActivity: ReadonlyMap<string, number>, { idleMs, unvisitedMs, maxAgeMs }: CullLimits): Array<{ id: string; reason: CullReason }> {
    const out: Array<{ id: string; reason: CullReason }> = [];
    for (const c of this.containers.values()) {
      if (c.state === 'removing' || c.state === 'starting') continue;
      if (maxAgeMs > 0 && now - c.createdAt > maxAgeMs) {
        out.push({ id: c.id, reason: 'max-age' });
        continue;
      }
      if (c.state !== 'claimed') continue;
      const activity = lastActivity.get(c.id);
      if (unvisitedMs > 0 && c.routedAt !== undefined && activity !== undefined && activity <= c.routedAt && now - c.routedAt > unvisitedMs) {
        out.push({ id: c.id, reason: 'unvisited' });
        continue;
      }
      if (idleMs > 0 && now - Math.max(activity ?? 0, c.claimedAt ?? c.createdAt) > idleMs) out.push({ id: c.id, reason: 'idle' });
    }
    return out;
  }

  // ---- admin ---------------------------------------------------------------------------------

  resize(poolName: string, size: number): void {
    if (!Number.isInteger(size) || size < 0) throw new RangeError('size must be a whole number >= 0');
    this.pool(poolName).size = size;
  }

  /** Rolling replace: new containers start for the next generation; old warm ones go as they arrive. */
  refresh(poolName: string): number {
    return ++this.pool(poolName).generation;
  }

  setDraining(poolName: string, draining: boolean): void {
    const pool = this.pool(poolName);
    pool.draining = draining;
    if (draining) {
      this.waiting -= pool.waiters.length;
      pool.waiters = [];
    }
  }

  /** Waiters of a pool that a drain just turned away (call before setDraining). */
  waitersOf(poolName: string): Waiter[] {
    return [...this.pool(poolName).waiters];
  }

  // ---- figures -------------------------------------------------------------------------------

  figures(poolName: string, now: number): PoolFigures {
    const pool = this.pool(poolName);
    const f: PoolFigures = {
      size: pool.size,
      warm: 0,
      claimed: 0,
      starting: 0,
      removing: 0,
      waiting: pool.waiters.length,
      failures: pool.failures,
      draining: pool.draining,
      generation: pool.generation,
      refillPaused: false,
    };
    if (pool.backoffUntil > now) f.backoffUntil = pool.backoffUntil;
    for (const state of CONTAINER_STATES) f[state] = pool.byState[state].size;
    f.refillPaused = f.warm < f.size && this.refillPaused(pool, f.warm, now);
    return f;
  }

  totals(): { warm: number; claimed: number; starting: number; removing: number; waiting: number } {
    const t = { warm: 0, claimed: 0, starting: 0, removing: 0, waiting: this.waiting };
    for (const pool of this.pools.values()) for (const state of CONTAINER_STATES) t[state] += pool.byState[state].size;
    return t;
  }
}
