/**
 * Stats history for the admin API's GET /api/stats/history: one sample per second, the last 10
 * minutes, oldest first. The JSON shape (documented for the status page built on it):
 *
 *   { "interval_ms": 1000,
 *     "samples": [ { "t": 1763780000000,             // end of the interval, epoch ms
 *                    "pools": { "<pool>": { "warm": 3, "claimed": 1, "starting": 0, "waiting": 0,
 *                                           "claims": 2,          // claims in the interval
 *                                           "claim_p50_ms": 0.4,  // null when no claim
 *                                           "claim_p99_ms": 0.9,
 *                                           "culls": 0 } } } ] }
 */

export interface PoolSample {
  warm: number;
  claimed: number;
  starting: number;
  waiting: number;
  claims: number;
  claim_p50_ms: number | null;
  claim_p99_ms: number | null;
  culls: number;
}

export interface HistorySample {
  t: number;
  pools: Record<string, PoolSample>;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export class StatsHistory {
  private readonly samples: HistorySample[] = [];
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

  /** Closes the interval ending at `t` with the pools' current figures. */
  sample(t: number, figures: Record<string, { warm: number; claimed: number; starting: number; waiting: number }>): void {
    const pools: Record<string, PoolSample> = {};
    for (const [name, f] of Object.entries(figures)) {
      const sorted = (this.latencies.get(name) ?? []).sort((a, b) => a - b);
      pools[name] = {
        warm: f.warm,
        claimed: f.claimed,
        starting: f.starting,
        waiting: f.waiting,
        claims: sorted.length,
        claim_p50_ms: round(quantile(sorted, 0.5)),
        claim_p99_ms: round(quantile(sorted, 0.99)),
        culls: this.culls.get(name) ?? 0,
      };
    }
    this.latencies = new Map();
    this.culls = new Map();
    this.samples.push({ t, pools });
    if (this.samples.length > this.capacity) this.samples.shift();
  }

  toJSON(): { interval_ms: number; samples: HistorySample[] } {
    return { interval_ms: this.intervalMs, samples: [...this.samples] };
  }
}

function round(v: number | null): number | null {
  return v === null ? null : Math.round(v * 1000) / 1000;
}
