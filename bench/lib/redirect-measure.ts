/** Measurements of a redirector in front of stand-in nodes: redirect latency and a burst's spread. */
import { forEachLimited, httpRequest, keepAliveAgent } from './http.js';
import { percentile, round } from './stats.js';
import type { StandInNode } from './standin-nodes.js';

export interface LatencyResult {
  requests: number;
  concurrency: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than a 302 to one of the nodes. */
  bad: number;
  /** 302s whose Location lost the path or the query. */
  pathOrQueryLost: number;
}

const visitorPath = (i: number) => `/notebooks/visitor-${i}.ipynb?v=${i}&q=a%20b`;

/** Checks a 302's Location: which node it names, and whether path and query were kept. */
function judge(location: string | undefined, redirectorUrl: string, sentPath: string, nodes: StandInNode[]) {
  if (!location) return { node: undefined, kept: false };
  const loc = new URL(location, redirectorUrl);
  const node = nodes.find((n) => new URL(n.url).host === loc.host);
  return { node, kept: loc.pathname + loc.search === sentPath, absolute: loc.href };
}

/** `requests` GETs at `concurrency` at once (keep-alive), after a warm-up; redirects not followed. */
export async function measureLatency(redirectorUrl: string, nodes: StandInNode[], requests: number, concurrency: number): Promise<LatencyResult> {
  const agent = keepAliveAgent(concurrency);
  let bad = 0;
  let lost = 0;
  const one = async (i: number) => {
    const path = visitorPath(i);
    const t0 = process.hrtime.bigint();
    const res = await httpRequest(redirectorUrl + path, { agent });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const verdict = judge(res.headers.location as string | undefined, redirectorUrl, path, nodes);
    if (res.status !== 302 || !verdict.node) bad++;
    else if (!verdict.kept) lost++;
    return ms;
  };
  try {
    await forEachLimited(Math.min(500, requests), concurrency, one); // warm-up
    bad = 0;
    lost = 0;
    const times = await forEachLimited(requests, concurrency, one);
    return { requests, concurrency, p50Ms: round(percentile(times, 50), 3), p99Ms: round(percentile(times, 99), 3), bad, pathOrQueryLost: lost };
  } finally {
    agent.destroy();
  }
}

export interface BurstResult {
  visitors: number;
  concurrency: number;
  /** Per node: capacity, visitors sent there, share of capacity, share of visitors, deviations. */
  nodes: { url: string; capacity: number; visitors: number; capacityShare: number; visitorShare: number; deviationPct: number; deviationPoints: number; overflow: number }[];
  /** Largest |visitor share - capacity share| / capacity share, in percent. */
  maxDeviationPct: number;
  /** The same in percentage points of all visitors. */
  maxDeviationPoints: number;
  bad: number;
  pathOrQueryLost: number;
  seconds: number;
}

/**
 * `visitors` visitors at `concurrency` at once; each follows its redirect to the node, which counts
 * it and lowers its room, as a real node does when a visitor claims a container.
 */
export async function measureBurst(redirectorUrl: string, nodes: StandInNode[], visitors: number, concurrency: number): Promise<BurstResult> {
  const agent = keepAliveAgent(concurrency);
  const sent = new Map<StandInNode, number>(nodes.map((n) => [n, 0]));
  let bad = 0;
  let lost = 0;
  const t0 = Date.now();
  try {
    await forEachLimited(visitors, concurrency, async (i) => {
      const path = visitorPath(i);
      const res = await httpRequest(redirectorUrl + path, { agent });
      const verdict = judge(res.headers.location as string | undefined, redirectorUrl, path, nodes);
      if (res.status !== 302 || !verdict.node) {
        bad++;
        return;
      }
      if (!verdict.kept) lost++;
      sent.set(verdict.node, sent.get(verdict.node)! + 1);
      await httpRequest(verdict.absolute!, { agent });
    });
  } finally {
    agent.destroy();
  }
  const totalCapacity = nodes.reduce((s, n) => s + n.capacity, 0);
  const rows = nodes.map((n) => {
    const capacityShare = n.capacity / totalCapacity;
    const visitorShare = sent.get(n)! / visitors;
    return {
      url: n.url,
      capacity: n.capacity,
      visitors: sent.get(n)!,
      capacityShare: round(capacityShare * 100, 2),
      visitorShare: round(visitorShare * 100, 2),
      deviationPct: round((Math.abs(visitorShare - capacityShare) / capacityShare) * 100, 2),
      deviationPoints: round(Math.abs(visitorShare - capacityShare) * 100, 2),
      overflow: n.overflow,
    };
  });
  return {
    visitors,
    concurrency,
    nodes: rows,
    maxDeviationPct: Math.max(...rows.map((r) => r.deviationPct)),
    maxDeviationPoints: Math.max(...rows.map((r) => r.deviationPoints)),
    bad,
    pathOrQueryLost: lost,
    seconds: round((Date.now() - t0) / 1000, 2),
  };
}
