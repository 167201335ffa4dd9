/**
 * Pool sizes that follow demand (`--pool-size auto`): pure, no I/O, time passed in. The runtime
 * reports arrivals, waits and start times, and asks for each pool's warm target, which it hands to
 * PoolCore as the pool's size (PoolCore then starts and trims as for a fixed size).
 *
 * The target is the number of claims expected within one container start time, read at the pool's
 * target hit rate from a Poisson distribution whose mean carries a safety margin: a visitor who
 * arrives while a replacement is still starting finds a warm container when fewer than `target`
 * others came in that time. The claim rate is the highest of a few recent windows, and its peak is
 * remembered, fading slowly (`peakMemoryMs`): a class that came ten minutes ago is still expected,
 * a quiet night lets the pool shrink to `min`.
 *
 * Room: warm + in use stays under `roomShare` of the capacity. Fixed-size pools take theirs first;
 * auto pools get at least `min`, at most `max` (default about 10% of the capacity), and share what
 * is left in proportion to their demand above `min`.
 */
import type { AutoSize } from './config.js';
import { quantile } from './history.js';
import type { PoolCore } from './pool.js';

export interface DemandPolicy {
  /** Warm + in use is kept under this share of the capacity. */
  roomShare: number;
  /** Multiplies the expected claims within one start time before the quantile is read. */
  margin: number;
  /** Windows over which the claim rate is measured; the highest rate counts. */
  rateWindowsMs: readonly number[];
  /** Time constant with which a past peak claim rate fades. */
  peakMemoryMs: number;
  /** Start time assumed until some starts were seen. */
  initialStartMs: number;
  /** Weight of a new start time in the moving average. */
  startTimeWeight: number;
  /**
   * Feedback: the margin grows by this much per unit of recent hit-rate shortfall, measured in
   * misses allowed (a pool at 85% against a 95% target falls short by 2 units and gets 1 + 2 * gain).
   */
  shortfallGain: number;
  /** Visitors within the stats window before the shortfall is trusted. */
  shortfallMinClaims: number;
  /** Window of the hit rate and waits in stats. */
  statsWindowMs: number;
  /** Stale warm containers replaced at once per pool (the next ones when those are warm). */
  replaceBatch: number;
}

export const DEFAULT_DEMAND_POLICY: DemandPolicy = {
  roomShare: 0.95,
  margin: 1.5,
  rateWindowsMs: [15_000, 60_000, 300_000],
  peakMemoryMs: 20 * 60_000,
  initialStartMs: 5_000,
  startTimeWeight: 0.2,
  shortfallGain: 0.25,
  shortfallMinClaims: 10,
  statsWindowMs: 10 * 60_000,
  replaceBatch: 2,
};

export interface DemandPoolSpec {
  name: string;
  /** Warm containers of a fixed-size pool (also the start size of an auto pool). */
  size: number;
  auto?: AutoSize;
}

export interface DemandStats {
  /** Warm containers wanted now (the fixed size for fixed pools). */
  target: number;
  auto: boolean;
  /** Claims per minute as the target sees it (recent peak, fading). */
  claim_rate_per_min: number;
  /** Start time planned with: moving average of start times, or the recent slowest, fading; ms. */
  start_ms: number;
  /** Over the last 10 minutes: visitors, those served warm at once, those who waited. */
  claims_10m: number;
  warm_hits_10m: number;
  waits_10m: number;
  /** Warm hits / visitors over the last 10 minutes; null without visitors. */
  hit_rate_10m: number | null;
  wait_p50_ms: number | null;
  wait_max_ms: number | null;
}

interface PoolDemand {
  spec: DemandPoolSpec;
  /** Arrival times with whether each was served warm at once, oldest first (stats window). */
  arrivals: Array<{ t: number; hit: boolean }>;
  /** Times visitors waited before a container was theirs, oldest first (stats window). */
  waits: Array<{ t: number; ms: number }>;
  peakRate: number;
  peakAt: number;
  startMs: number;
  startsSeen: number;
  /** The slowest recent start and when it was seen: bursts slow starts down, and recur. */
  peakStartMs: number;
  peakStartAt: number;
  /** The worst recent hit-rate shortfall (in units of misses allowed) and when, fading. */
  peakShortfall: number;
  peakShortfallAt: number;
  target: number;
}

/** Smallest k with P(N <= k) >= p for N ~ Poisson(mean). */
export function poissonQuantile(mean: number, p: number): number {
  if (!(mean > 0)) return 0;
  if (mean > 500) return Math.ceil(mean + normalQuantile(p) * Math.sqrt(mean));
  let term = Math.exp(-mean);
  let cdf = term;
  let k = 0;
  while (cdf < p) {
    k++;
    term *= mean / k;
    cdf += term;
  }
  return k;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9 relative). */
function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

export class DemandCore {
  private readonly pools = new Map<string, PoolDemand>();

  constructor(
    pools: readonly DemandPoolSpec[],
    readonly policy: DemandPolicy = DEFAULT_DEMAND_POLICY,
  ) {
    for (const spec of pools) {
      this.pools.set(spec.name, {
        spec,
        arrivals: [],
        waits: [],
        peakRate: 0,
        peakAt: 0,
        startMs: policy.initialStartMs,
        startsSeen: 0,
        peakStartMs: 0,
        peakStartAt: 0,
        peakShortfall: 0,
        peakShortfallAt: 0,
        target: spec.auto ? spec.auto.min : spec.size,
      });
    }
  }

  isAuto(pool: string): boolean {
    return this.pools.get(pool)?.spec.auto !== undefined;
  }

  /** A visitor asked for a container of `pool`; `hit` when a warm one was theirs at once. */
  arrival(pool: string, now: number, hit: boolean): void {
    const p = this.pools.get(pool);
    if (!p) return;
    p.arrivals.push({ t: now, hit });
    this.forgetOld(p, now);
  }

  /** A visitor who had to wait got a container after `waitedMs`. */
  waited(pool: string, now: number, waitedMs: number): void {
    const p = this.pools.get(pool);
    if (!p) return;
    p.waits.push({ t: now, ms: waitedMs });
    this.forgetOld(p, now);
  }

  /** A container of `pool` took `ms` from the start call until it answered its probe. */
  started(pool: string, ms: number, now: number): void {
    const p = this.pools.get(pool);
    if (!p || !(ms >= 0)) return;
    p.startMs = p.startsSeen === 0 ? ms : p.startMs + this.policy.startTimeWeight * (ms - p.startMs);
    p.startsSeen++;
    if (p.startMs >= this.fade(p.peakStartMs, p.peakStartAt, now)) {
      p.peakStartMs = p.startMs;
      p.peakStartAt = now;
    }
  }

  /**
   * The start time to plan with: the moving average, or the slowest recent average, fading. Starts
   * are slow exactly when many visitors come at once, and the next class comes at that moment too.
   */
  startTime(pool: string, now: number): number {
    const p = this.pools.get(pool);
    if (!p) return this.policy.initialStartMs;
    return Math.max(p.startMs, this.fade(p.peakStartMs, p.peakStartAt, now));
  }

  private fade(peak: number, at: number, now: number): number {
    return peak * Math.exp(-(now - at) / this.policy.peakMemoryMs);
  }

  private forgetOld(p: PoolDemand, now: number): void {
    const since = now - Math.max(this.policy.statsWindowMs, ...this.policy.rateWindowsMs);
    while (p.arrivals.length > 0 && p.arrivals[0]!.t < since) p.arrivals.shift();
    while (p.waits.length > 0 && p.waits[0]!.t < now - this.policy.statsWindowMs) p.waits.shift();
  }

  /** Claims per second: the highest rate of the recent windows, or the fading recent peak. */
  rate(pool: string, now: number): number {
    const p = this.pools.get(pool);
    if (!p) return 0;
    this.forgetOld(p, now);
    let current = 0;
    for (const window of this.policy.rateWindowsMs) {
      let count = 0;
      for (let i = p.arrivals.length - 1; i >= 0 && p.arrivals[i]!.t > now - window; i--) count++;
      current = Math.max(current, count / (window / 1000));
    }
    const faded = this.fade(p.peakRate, p.peakAt, now);
    if (current >= faded) {
      p.peakRate = current;
      p.peakAt = now;
      return current;
    }
    return faded;
  }

  /**
   * How far the pool fell short of its target hit rate lately, in units of the misses it allows
   * (0 when on target), remembered and fading like the claim rate: the margin grows with it.
   */
  private shortfall(p: PoolDemand, now: number): number {
    const since = now - this.policy.statsWindowMs;
    let claims = 0;
    let hits = 0;
    for (const a of p.arrivals) {
      if (a.t < since) continue;
      claims++;
      if (a.hit) hits++;
    }
    const hitRate = p.spec.auto!.hitRate;
    const current = claims >= this.policy.shortfallMinClaims ? Math.max(0, hitRate - hits / claims) / (1 - hitRate) : 0;
    const faded = this.fade(p.peakShortfall, p.peakShortfallAt, now);
    if (current < faded) return faded;
    p.peakShortfall = current;
    p.peakShortfallAt = now;
    return current;
  }

  /** Warm containers an auto pool would want with unlimited room. */
  private wanted(p: PoolDemand, now: number): number {
    const auto = p.spec.auto!;
    const margin = this.policy.margin * (1 + this.policy.shortfallGain * this.shortfall(p, now));
    const expected = this.rate(p.spec.name, now) * (this.startTime(p.spec.name, now) / 1000) * margin;
    return Math.min(auto.max, Math.max(auto.min, poissonQuantile(expected, auto.hitRate)));
  }

  /**
   * Each pool's warm target now. `inUse` counts claimed containers over all pools (starting ones
   * become warm and are part of the targets). Fixed pools keep their size.
   */
  targets(now: number, inUse: number, capacity: number): Map<string, number> {
    const out = new Map<string, number>();
    let room = Math.floor(capacity * this.policy.roomShare) - inUse;
    const auto: Array<{ p: PoolDemand; wanted: number }> = [];
    for (const p of this.pools.values()) {
      if (p.spec.auto) auto.push({ p, wanted: this.wanted(p, now) });
      else {
        out.set(p.spec.name, p.spec.size);
        room -= p.spec.size;
      }
    }
    const mins = auto.reduce((sum, a) => sum + a.p.spec.auto!.min, 0);
    const above = auto.reduce((sum, a) => sum + (a.wanted - a.p.spec.auto!.min), 0);
    const extra = Math.max(0, room - mins);
    if (above <= extra) {
      for (const a of auto) out.set(a.p.spec.name, a.wanted);
    } else {
      // Not enough room: every pool keeps its min; the rest goes in proportion to demand above min,
      // whole containers by largest remainder.
      const shares = auto.map((a) => {
        const exact = ((a.wanted - a.p.spec.auto!.min) * extra) / above;
        return { a, whole: Math.floor(exact), remainder: exact - Math.floor(exact) };
      });
      let left = extra - shares.reduce((sum, s) => sum + s.whole, 0);
      for (const s of [...shares].sort((x, y) => y.remainder - x.remainder)) {
        if (left <= 0) break;
        s.whole++;
        left--;
      }
      for (const s of shares) out.set(s.a.p.spec.name, s.a.p.spec.auto!.min + s.whole);
    }
    for (const [name, target] of out) this.pools.get(name)!.target = target;
    return out;
  }

  /**
   * Warm containers unclaimed for longer than `maxWarmAgeMs`, to be replaced: oldest first, at most
   * `replaceBatch` per pool, and only in a pool with nothing starting (so replacements go a few at
   * a time and never while the pool is refilling for visitors). 0 disables.
   */
  staleWarm(
    now: number,
    warm: ReadonlyArray<{ id: string; pool: string; createdAt: number }>,
    startingByPool: ReadonlyMap<string, number>,
    maxWarmAgeMs: number,
  ): string[] {
    if (maxWarmAgeMs <= 0) return [];
    const out: string[] = [];
    const byPool = new Map<string, Array<{ id: string; createdAt: number }>>();
    for (const c of warm) {
      if (now - c.createdAt <= maxWarmAgeMs) continue;
      let list = byPool.get(c.pool);
      if (!list) byPool.set(c.pool, (list = []));
      list.push(c);
    }
    for (const [pool, list] of byPool) {
      if ((startingByPool.get(pool) ?? 0) > 0) continue;
      list.sort((a, b) => a.createdAt - b.createdAt);
      out.push(...list.slice(0, this.policy.replaceBatch).map((c) => c.id));
    }
    return out;
  }

  stats(pool: string, now: number): DemandStats | undefined {
    const p = this.pools.get(pool);
    if (!p) return undefined;
    const rate = this.rate(pool, now);
    const since = now - this.policy.statsWindowMs;
    const arrivals = p.arrivals.filter((a) => a.t >= since);
    const hits = arrivals.filter((a) => a.hit).length;
    const waits = p.waits.map((w) => w.ms).sort((a, b) => a - b);
    return {
      target: p.target,
      auto: p.spec.auto !== undefined,
      claim_rate_per_min: Math.round(rate * 60 * 100) / 100,
      start_ms: Math.round(this.startTime(pool, now)),
      claims_10m: arrivals.length,
      warm_hits_10m: hits,
      waits_10m: waits.length,
      hit_rate_10m: arrivals.length ? Math.round((hits / arrivals.length) * 1000) / 1000 : null,
      wait_p50_ms: waits.length ? Math.round(quantile(waits, 0.5)!) : null,
      wait_max_ms: waits.length ? Math.round(waits[waits.length - 1]!) : null,
    };
  }
}

/**
 * One sizing pass over the pool core: auto pools are resized to their targets (fixed pools keep
 * theirs), and the warm containers to replace for age are returned (the caller retires them; the
 * pool core then starts fresh ones as for any deficit).
 */
export function sizePools(demand: DemandCore, core: PoolCore, now: number, capacity: number, maxWarmAgeMs: number): string[] {
  for (const [pool, target] of demand.targets(now, core.totals().claimed, capacity)) {
    if (demand.isAuto(pool)) core.resize(pool, target);
  }
  const starting = new Map<string, number>();
  for (const c of core.list({ state: 'starting' })) starting.set(c.pool, (starting.get(c.pool) ?? 0) + 1);
  return demand.staleWarm(now, core.list({ state: 'warm' }), starting, maxWarmAgeMs);
}
