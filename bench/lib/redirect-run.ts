/**
 * The bench:redirect procedure: three stand-in nodes, latency with large rooms (so no redirector
 * runs out of room while thousands of requests go by without landing), then bursts of 1,000
 * visitors against rooms of 100, 200 and 700 that shrink as visitors land. Peers are alternated
 * over rounds; every measurement keeps the machine's load over it.
 */
import { measureBurst, measureLatency, type BurstResult, type LatencyResult } from './redirect-measure.js';
import { sleep } from './procs.js';
import { describeLoad, median, printTable, round, withLoad, type LoadSpan } from './stats.js';
import type { StandInNode } from './standin-nodes.js';

export interface RedirectorPeer {
  name: string;
  url: string;
}

export interface RedirectSettings {
  rounds: number;
  /** Seconds between a redirector's polls of the nodes; waits after a reset are derived from it. */
  statsPeriod: number;
  sequentialRequests: number;
  concurrentRequests: number;
  concurrency: number;
  capacities: number[];
  latencyCapacityFactor: number;
  burstConcurrency: number;
}

export const defaultRedirectSettings: RedirectSettings = {
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  statsPeriod: 1,
  sequentialRequests: 2000,
  concurrentRequests: 4000,
  concurrency: 16,
  capacities: [100, 200, 700],
  latencyCapacityFactor: 1000,
  burstConcurrency: 50,
};

type WithLoad<T> = T & { load: LoadSpan };

export interface PeerResult {
  name: string;
  sequential: WithLoad<LatencyResult>[];
  concurrent: WithLoad<LatencyResult>[];
  bursts: WithLoad<BurstResult>[];
}

/** Runs one measurement and keeps the machine's load over it beside its figures. */
async function loaded<T extends object>(measure: () => Promise<T>): Promise<WithLoad<T>> {
  const { value, load } = await withLoad(measure);
  return { ...value, load };
}

export interface PeerSummary {
  name: string;
  sequentialP50Ms: number;
  sequentialP99Ms: number;
  concurrentP50Ms: number;
  concurrentP99Ms: number;
  /** Median and worst over rounds of the burst's largest deviation from the capacity shares. */
  burstMaxDeviationPctMedian: number;
  burstMaxDeviationPctWorst: number;
  burstMaxDeviationPointsWorst: number;
  /** Requests answered other than by a 302 to a node, over all runs. */
  bad: number;
  pathOrQueryLost: number;
  requests: number;
}

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

async function resetNodes(nodes: StandInNode[], factor: number, settings: RedirectSettings): Promise<void> {
  nodes.forEach((n, i) => n.reset(settings.capacities[i]! * factor));
  // every redirector must have polled the new figures (and forgotten its own recent sends)
  await sleep(settings.statsPeriod * 2500);
}

export async function runRedirectBench(peers: RedirectorPeer[], nodes: StandInNode[], settings: RedirectSettings = defaultRedirectSettings): Promise<{ summaries: PeerSummary[]; results: PeerResult[] }> {
  const results: PeerResult[] = peers.map((p) => ({ name: p.name, sequential: [], concurrent: [], bursts: [] }));
  say(`latency: ${settings.sequentialRequests} sequential and ${settings.concurrentRequests} at ${settings.concurrency} at once (keep-alive), ${settings.rounds} rounds; stand-in rooms ${settings.capacities.map((c) => c * settings.latencyCapacityFactor).join('/')}`);
  await resetNodes(nodes, settings.latencyCapacityFactor, settings);
  for (let r = 0; r < settings.rounds; r++) {
    for (let i = 0; i < peers.length; i++) {
      const k = (i + r) % peers.length;
      const p = peers[k]!;
      const seq = await loaded(() => measureLatency(p.url, nodes, settings.sequentialRequests, 1));
      const con = await loaded(() => measureLatency(p.url, nodes, settings.concurrentRequests, settings.concurrency));
      results[k]!.sequential.push(seq);
      results[k]!.concurrent.push(con);
      say(`  round ${r + 1} ${p.name.padEnd(16)} sequential p50 ${seq.p50Ms} p99 ${seq.p99Ms} ms; ${settings.concurrency} at once p50 ${con.p50Ms} p99 ${con.p99Ms} ms; bad ${seq.bad + con.bad}, path/query lost ${seq.pathOrQueryLost + con.pathOrQueryLost} (${describeLoad(seq.load)})`);
    }
  }
  const visitors = settings.capacities.reduce((a, b) => a + b, 0);
  say(`burst: ${visitors} visitors (${settings.burstConcurrency} at once, each lands on its node) on rooms ${settings.capacities.join('/')}, ${settings.rounds} rounds`);
  for (let r = 0; r < settings.rounds; r++) {
    for (let i = 0; i < peers.length; i++) {
      const k = (i + r) % peers.length;
      const p = peers[k]!;
      await resetNodes(nodes, 1, settings);
      const burst = await loaded(() => measureBurst(p.url, nodes, visitors, settings.burstConcurrency));
      results[k]!.bursts.push(burst);
      say(`  round ${r + 1} ${p.name.padEnd(16)} visitors ${burst.nodes.map((n) => n.visitors).join('/')}; largest deviation ${burst.maxDeviationPct}% of a share (${burst.maxDeviationPoints} points); bad ${burst.bad}, path/query lost ${burst.pathOrQueryLost}, ${burst.seconds} s (${describeLoad(burst.load)})`);
    }
  }
  const summaries = results.map((res): PeerSummary => {
    const all = [...res.sequential, ...res.concurrent];
    return {
      name: res.name,
      sequentialP50Ms: round(median(res.sequential.map((x) => x.p50Ms)), 3),
      sequentialP99Ms: round(median(res.sequential.map((x) => x.p99Ms)), 3),
      concurrentP50Ms: round(median(res.concurrent.map((x) => x.p50Ms)), 3),
      concurrentP99Ms: round(median(res.concurrent.map((x) => x.p99Ms)), 3),
      burstMaxDeviationPctMedian: median(res.bursts.map((b) => b.maxDeviationPct)),
      burstMaxDeviationPctWorst: Math.max(...res.bursts.map((b) => b.maxDeviationPct)),
      burstMaxDeviationPointsWorst: Math.max(...res.bursts.map((b) => b.maxDeviationPoints)),
      bad: all.reduce((s, x) => s + x.bad, 0) + res.bursts.reduce((s, b) => s + b.bad, 0),
      pathOrQueryLost: all.reduce((s, x) => s + x.pathOrQueryLost, 0) + res.bursts.reduce((s, b) => s + b.pathOrQueryLost, 0),
      requests: all.reduce((s, x) => s + x.requests, 0) + res.bursts.reduce((s, b) => s + b.visitors, 0),
    };
  });
  printTable(
    'Redirect latency (medians over rounds) and burst spread (largest deviation from a node\'s capacity share)',
    ['redirector', 'seq p50 ms', 'seq p99 ms', `${settings.concurrency}x p50 ms`, `${settings.concurrency}x p99 ms`, 'dev % median', 'dev % worst', 'dev points worst', 'bad answers', 'path/query lost'],
    summaries.map((s) => [s.name, s.sequentialP50Ms, s.sequentialP99Ms, s.concurrentP50Ms, s.concurrentP99Ms, s.burstMaxDeviationPctMedian, s.burstMaxDeviationPctWorst, s.burstMaxDeviationPointsWorst, s.bad, `${s.pathOrQueryLost}/${s.requests}`]),
  );
  return { summaries, results };
}
