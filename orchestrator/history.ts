/**
 * Stats history for the admin API's GET /api/stats/history and the status page
 * (shared/status-page.ts): one sample per second, the last 10 minutes, oldest first.
 *
 *   { "interval_ms": 1000,
 *     "samples": [ { "t": 1763780000000,                       // end of the interval, epoch ms
 *                    "levels": { "<pool>": { "warm": 3, "claimed": 1, "starting": 0, "waiting": 0 } },
 *                    "lines": { "<pool>": { "target": 3 } },                // warm containers wanted
 *                    "figures": { "claims": 2, "claim_p50_ms": 0.4, "claim_p99_ms": 0.9, "culls": 0,
 *                                 "<pool>.claims": 2, "<pool>.claim_p50_ms": 0.4,
 *                                 "<pool>.claim_p99_ms": 0.9, "<pool>.culls": 0 } } ] }
 *
 * Figures cover the interval ending at `t`, for the node and per pool; latency keys are absent
 * when there was no claim. Claim latency is request to route live, in milliseconds.
 */
import type { StatusSample } from '../shared/status-page.js';

export interface PoolLevels {
  warm: number;
  claimed: number;
  starting: number;
  waiting: number;
  /** Warm containers wanted (the pool size, or an auto pool's demand target): drawn as a line. */
  target?: number;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export class StatsHistory {
  private readonly samples: StatusSample[] = [];
  private latencies = new Map<string, number[]>();
  private culls = new Map<string, number>();

  constructor(
    readonly intervalMs = 1000,
    private readonly capacity = 600,
  ) {}

  recordClaim(pool: string, latencyMs: number): void {
    let list = this.latencies.get(pool);
    if (!list) this.latencies.set(pool, (list = []));
    list.push(latencyMs);
  }

  recordCull(pool: string): void {
    this.culls.set(pool, (this.culls.get(pool) ?? 0) + 1);
  }

  /** Closes the interval ending at `t` with the pools' current levels. */
  sample(t: number, levels: Record<string, PoolLevels>): void {
    const figures: Record<string, number> = {};
    const addFigures = (prefix: string, latencies: number[], culls: number) => {
      const sorted = latencies.sort((a, b) => a - b);
      figures[`${prefix}claims`] = sorted.length;
      figures[`${prefix}culls`] = culls;
      if (sorted.length) {
        figures[`${prefix}claim_p50_ms`] = round(quantile(sorted, 0.5)!);
        figures[`${prefix}claim_p99_ms`] = round(quantile(sorted, 0.99)!);
      }
    };
    const all: number[] = [];
    let allCulls = 0;
    const sampleLevels: Record<string, Record<string, number>> = {};
    const lines: Record<string, Record<string, number>> = {};
    for (const [name, l] of Object.entries(levels)) {
      sampleLevels[name] = { warm: l.warm, claimed: l.claimed, starting: l.starting, waiting: l.waiting };
      if (l.target !== undefined) lines[name] = { target: l.target };
      const latencies = this.latencies.get(name) ?? [];
      const culls = this.culls.get(name) ?? 0;
      all.push(...latencies);
      allCulls += culls;
      addFigures(`${name}.`, latencies, culls);
    }
    addFigures('', all, allCulls);
    this.latencies = new Map();
    this.culls = new Map();
    this.samples.push({ t, levels: sampleLevels, ...(Object.keys(lines).length ? { lines } : {}), figures });
    if (this.samples.length > this.capacity) this.samples.shift();
  }

  toJSON(): { interval_ms: number; samples: StatusSample[] } {
    return { interval_ms: this.intervalMs, samples: [...this.samples] };
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
