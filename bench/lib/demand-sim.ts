/**
 * Trace replay for bench:demand, in simulated time: the orchestrator's real pool state machine
 * (PoolCore) and demand core (DemandCore) are driven as the runtime drives them (claim or wait in
 * line, plan starts and trims, size pools once a second with sizePools), while containers are MODELLED:
 *
 * - a start is an engine call of `createMs`, then `startCpuMs` of CPU on a host that gives starts
 *   `cores` CPUs, shared equally by every container starting at that moment (processor sharing):
 *   one start alone takes createMs + startCpuMs, sixteen at once take much longer;
 * - removal takes `removeMs`; a visitor keeps a container for their session, then it is culled.
 *
 * Nothing here touches Docker or the network, so an hour and a half replays in about a second.
 */
import { DEFAULT_DEMAND_POLICY, DemandCore, sizePools, type DemandPolicy } from '../../orchestrator/demand.js';
import { DEFAULT_LIMITS, PoolCore, type PoolContainer } from '../../orchestrator/pool.js';
import { seededRandom } from '../../test/helpers/random.js';

export interface Visitor {
  /** Arrival, ms from the start of the trace. */
  at: number;
  /** How long they keep the container, ms. */
  sessionMs: number;
  /** Trace phase the visitor belongs to (quiet, lecture 1, ...). */
  phase: string;
}

export interface HostModel {
  createMs: number;
  startCpuMs: number;
  cores: number;
  removeMs: number;
  capacity: number;
  maxParallelStarts: number;
}

export type Sizing = { fixed: number } | { auto: { min: number; max: number; hitRate: number } };

export interface PhaseResult {
  visitors: number;
  warmHits: number;
  hitRate: number;
  waitP50Ms: number;
  waitMaxMs: number;
}

export interface ReplayResult {
  /** Sum over time of warm (ready, unclaimed) containers, in container-seconds. */
  warmContainerSeconds: number;
  /** Same for warm + starting: what the pool costs beyond the visitors' own containers. */
  spareContainerSeconds: number;
  phases: Record<string, PhaseResult>;
  /** Once per simulated 10 s: [t s, warm, starting, claimed, target]. */
  series: Array<[number, number, number, number, number]>;
}

const STEP_MS = 100;
const POOL = 'default';

export function replay(visitors: readonly Visitor[], sizing: Sizing, host: HostModel, policy: DemandPolicy = DEFAULT_DEMAND_POLICY): ReplayResult {
  const auto = 'auto' in sizing ? sizing.auto : undefined;
  const size = auto ? auto.min : (sizing as { fixed: number }).fixed;
  // The runtime's defaults (refill yields to claims), with the modelled host's capacity.
  const pool = new PoolCore([{ name: POOL, size }], { ...DEFAULT_LIMITS, maxContainers: host.capacity, maxParallelStarts: host.maxParallelStarts, queueLimit: 10_000 });
  const demand = new DemandCore([{ name: POOL, size, auto }], policy);
  const creating = new Map<string, number>(); // id -> engine call done at
  const cpuLeft = new Map<string, number>(); // id -> CPU ms still needed to answer its probe
  const startedAt = new Map<string, number>();
  const sessionEnds = new Map<string, number>();
  const removals = new Map<string, number>(); // id -> gone at
  const waiting = new Map<string, { visitor: Visitor; at: number }>();
  const outcome = new Map<Visitor, { hit: boolean; waitMs: number }>();
  const series: ReplayResult['series'] = [];
  let warmMs = 0;
  let spareMs = 0;
  let nextId = 0;
  let nextVisitor = 0;
  const end = Math.max(...visitors.map((v) => v.at)) + 5 * 60_000;
  const sorted = [...visitors].sort((a, b) => a.at - b.at);

  const claimed = (c: PoolContainer, visitor: Visitor, now: number) => sessionEnds.set(c.id, now + visitor.sessionMs);
  const remove = (id: string, now: number) => {
    pool.removing(id);
    creating.delete(id);
    cpuLeft.delete(id);
    removals.set(id, now + host.removeMs);
  };

  for (let now = 0; now <= end; now += STEP_MS) {
    // Visitors arrive: a warm container at once, or a place in line.
    while (nextVisitor < sorted.length && sorted[nextVisitor]!.at <= now) {
      const visitor = sorted[nextVisitor++]!;
      const c = pool.claim(POOL, now);
      demand.arrival(POOL, now, c !== undefined);
      if (c) {
        claimed(c, visitor, now);
        outcome.set(visitor, { hit: true, waitMs: 0 });
      } else {
        const id = `w${nextId++}`;
        pool.enqueue({ id, pool: POOL, enqueuedAt: now, deadline: now + 3_600_000 });
        waiting.set(id, { visitor, at: now });
      }
    }
    // Containers starting: the engine call, then CPU shared by all that are probing.
    for (const [id, doneAt] of creating) {
      if (doneAt > now) continue;
      creating.delete(id);
      pool.created(id);
      cpuLeft.set(id, host.startCpuMs);
    }
    const share = cpuLeft.size > 0 ? (STEP_MS * Math.min(1, host.cores / cpuLeft.size)) : 0;
    for (const [id, left] of cpuLeft) {
      if (left - share > 0) {
        cpuLeft.set(id, left - share);
        continue;
      }
      cpuLeft.delete(id);
      if (pool.admitted(id)) demand.started(POOL, now - startedAt.get(id)!, now);
    }
    // Sessions end (cull) and removals finish.
    for (const [id, endsAt] of sessionEnds) {
      if (endsAt > now) continue;
      sessionEnds.delete(id);
      remove(id, now);
    }
    for (const [id, goneAt] of removals) {
      if (goneAt > now) continue;
      removals.delete(id);
      pool.removed(id);
    }
    // The runtime's kick: serve the line, resize auto pools (once a second), trim, start.
    for (const { waiter, container } of pool.serveWaiters(now)) {
      const w = waiting.get(waiter.id)!;
      waiting.delete(waiter.id);
      demand.waited(POOL, now, now - w.at);
      claimed(container, w.visitor, now);
      outcome.set(w.visitor, { hit: false, waitMs: now - w.at });
    }
    if (now % 1000 === 0) sizePools(demand, pool, now, host.capacity, 0);
    for (const id of pool.trimPlan()) remove(id, now);
    for (const [name, count] of pool.startPlan(now)) {
      for (let i = 0; i < count; i++) {
        const id = `c${nextId++}`;
        pool.starting(name, id, now);
        startedAt.set(id, now);
        creating.set(id, now + host.createMs);
      }
    }
    const f = pool.figures(POOL, now);
    warmMs += f.warm * STEP_MS;
    spareMs += (f.warm + f.starting) * STEP_MS;
    if (now % 10_000 === 0) series.push([now / 1000, f.warm, f.starting, f.claimed, f.size]);
  }

  const phases: Record<string, PhaseResult> = {};
  for (const phase of new Set(sorted.map((v) => v.phase))) {
    const list = sorted.filter((v) => v.phase === phase).map((v) => outcome.get(v) ?? { hit: false, waitMs: Infinity });
    const waits = list.filter((o) => !o.hit).map((o) => o.waitMs).sort((a, b) => a - b);
    const hits = list.filter((o) => o.hit).length;
    phases[phase] = {
      visitors: list.length,
      warmHits: hits,
      hitRate: list.length ? hits / list.length : 1,
      waitP50Ms: waits.length ? waits[Math.ceil(waits.length / 2) - 1]! : 0,
      waitMaxMs: waits.length ? waits[waits.length - 1]! : 0,
    };
  }
  return { warmContainerSeconds: warmMs / 1000, spareContainerSeconds: spareMs / 1000, phases, series };
}


/**
 * The trace: a quiet hour (6 visitors at random), a lecture of 60 arriving within a minute (each
 * at a uniformly random moment of it), a second lecture of 60 ten minutes after the first began,
 * then a slow trickle (one every 2 minutes on average for 30 minutes).
 * Lecture sessions last 50 minutes, others 10 to 30.
 */
export function lectureTrace(seed: number): Visitor[] {
  const random = seededRandom(seed);
  const out: Visitor[] = [];
  const minute = 60_000;
  const casual = () => (10 + 20 * random()) * minute;
  for (let i = 0; i < 6; i++) out.push({ at: random() * 60 * minute, sessionMs: casual(), phase: 'quiet hour' });
  for (const [phase, start] of [['lecture 1', 60 * minute], ['lecture 2', 70 * minute]] as const) {
    for (let i = 0; i < 60; i++) out.push({ at: start + random() * minute, sessionMs: 50 * minute, phase });
  }
  let t = 72 * minute;
  for (;;) {
    t += -Math.log(1 - random()) * 2 * minute;
    if (t > 102 * minute) break;
    out.push({ at: t, sessionMs: casual(), phase: 'trickle' });
  }
  return out;
}
