/**
 * bench:redirect (issue 10): our redirector beside a plain weighted-random redirector, both in
 * front of the same three stand-in nodes (rooms 100, 200, 700): redirect latency p50/p99
 * (sequential and 16 at once) and a burst of 1,000 visitors (spread against capacity shares),
 * path and query checked on every answer. Env: BENCH_ROUNDS (3).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nbpoolBin, ourProgramExists, repoRoot } from './lib/peers.js';
import { freePort, startProc, waitListening, type Proc } from './lib/procs.js';
import { defaultRedirectSettings, runRedirectBench, type RedirectorPeer } from './lib/redirect-run.js';
import { startStandInNode, type StandInNode } from './lib/standin-nodes.js';
import { noteLoad, printGoals, round, writeResults, type Goal } from './lib/stats.js';

/**
 * The original tmpnb-redirector's figures: measured by hand on this machine beside the same
 * stand-in nodes (bench/results/redirect-original.json; its code is never shipped), else the
 * issue's anchor.
 */
function originalFigures(): { p50Ms: number; p99Ms: number; source: string } {
  const file = join(repoRoot, 'bench', 'results', 'redirect-original.json');
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { date: string; summaries: { name: string; sequentialP50Ms: number; sequentialP99Ms: number }[] };
    const original = saved.summaries.find((s) => s.name === 'tmpnb-redirector');
    if (original) return { p50Ms: original.sequentialP50Ms, p99Ms: original.sequentialP99Ms, source: `measured here ${saved.date} (bench/results/redirect-original.json)` };
  }
  return { p50Ms: 0.6, p99Ms: 3, source: 'issue 10 anchor' };
}

async function main(): Promise<void> {
  const settings = defaultRedirectSettings;
  const started = Date.now();
  const loadAtStart = noteLoad('at the start');
  const procs: Proc[] = [];
  const nodes: StandInNode[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-bench-redirect-'));
  try {
    for (const c of settings.capacities) nodes.push(await startStandInNode(c));
    const peers: RedirectorPeer[] = [];

    const basePort = await freePort();
    const baseline = startProc('weighted-random', process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'lib', 'weighted-random-redirector.ts'), String(basePort), String(settings.statsPeriod), ...nodes.map((n) => n.url)]);
    procs.push(baseline);
    await waitListening(baseline, basePort);
    peers.push({ name: 'weighted random', url: `http://127.0.0.1:${basePort}` });

    const haveOurs = ourProgramExists('redirector');
    if (haveOurs) {
      const port = await freePort();
      const adminPort = await freePort();
      const ours = startProc('ours', process.execPath, [
        nbpoolBin, 'redirector', '--ip', '127.0.0.1', '--port', String(port), '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
        ...nodes.flatMap((n) => ['--node', n.url]), '--stats-period', String(settings.statsPeriod), '--stats-timeout', '1',
        '--state-store', 'memory:', '--log-level', 'warn',
      ], { ADMIN_AUTH_TOKEN: 'bench' });
      procs.push(ours);
      await waitListening(ours, port);
      peers.push({ name: 'ours', url: `http://127.0.0.1:${port}` });
    } else {
      process.stdout.write('nbpool redirector is not built or not implemented yet: measuring the baseline only\n');
    }

    const { summaries, results } = await runRedirectBench(peers, nodes, settings);
    const original = originalFigures();
    const goals: Goal[] = [];
    const ours = summaries.find((s) => s.name === 'ours');
    const base = summaries.find((s) => s.name === 'weighted random')!;
    if (ours) {
      goals.push(
        { name: 'p50 at most half the original tmpnb-redirector\'s', met: ours.sequentialP50Ms <= original.p50Ms / 2, detail: `${ours.sequentialP50Ms} ms vs ${original.p50Ms} ms, ${original.source} (weighted-random baseline here ${base.sequentialP50Ms} ms)` },
        { name: 'p99 at most the original\'s', met: ours.sequentialP99Ms <= original.p99Ms, detail: `${ours.sequentialP99Ms} ms vs ${original.p99Ms} ms (baseline ${base.sequentialP99Ms} ms)` },
        { name: 'burst: largest deviation from capacity share <= 2%', met: ours.burstMaxDeviationPctWorst <= 2, detail: `worst ${ours.burstMaxDeviationPctWorst}% (median ${ours.burstMaxDeviationPctMedian}%); baseline worst ${base.burstMaxDeviationPctWorst}%` },
        { name: 'path and query always kept, every answer a redirect', met: ours.pathOrQueryLost === 0 && ours.bad === 0, detail: `${ours.pathOrQueryLost} lost, ${ours.bad} other answers, of ${ours.requests}` },
      );
      printGoals(goals);
    } else {
      process.stdout.write('\nGoals: not judged (nbpool redirector not available yet)\n');
    }
    writeResults('redirect', {
      bench: 'redirect',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings,
      original,
      summaries,
      bursts: results.map((r) => ({ name: r.name, bursts: r.bursts })),
      goals,
    }, loadAtStart);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    for (const n of nodes) await n.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
