/**
 * bench:redirect (issue 10): our redirector beside a plain weighted-random redirector and, when
 * BENCH_TMPNB_REDIRECTOR_DIR names a checkout of it, the original tmpnb-redirector, all in front
 * of the same three stand-in nodes (rooms 100, 200, 700) in one run, alternated over rounds:
 * redirect latency p50/p99 (sequential and 16 at once) and a burst of 1,000 visitors (spread
 * against capacity shares), path and query checked on every answer. Env: BENCH_ROUNDS (3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nbpoolBin, ourNodeArgs, ourProgramExists, repoRoot } from './lib/peers.js';
import { freePort, startProc, waitListening, type Proc } from './lib/procs.js';
import { defaultRedirectSettings, runRedirectBench, type RedirectorPeer } from './lib/redirect-run.js';
import { startStandInNode, type StandInNode } from './lib/standin-nodes.js';
import { goalOverRounds, median, noteLoad, printGoals, round, writeResults, type Goal } from './lib/stats.js';
import { startTmpnbRedirector, tmpnbRedirectorCheckout } from './lib/tmpnb.js';

async function main(): Promise<void> {
  if (!ourProgramExists('redirector')) throw new Error('nbpool is not built (npm run build) or `nbpool redirector` is not available: nothing to measure');
  const original = tmpnbRedirectorCheckout();
  if ('skip' in original) process.stdout.write(`original tmpnb-redirector not measured: ${original.skip}\n`);
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

    if ('dir' in original) {
      const proc = await startTmpnbRedirector(original.dir, dir, nodes.map((n) => n.url), settings.statsPeriod);
      procs.push(proc);
      peers.push({ name: 'tmpnb-redirector', url: proc.url });
    }

    const port = await freePort();
    const adminPort = await freePort();
    const ours = startProc('ours', process.execPath, [
      ...ourNodeArgs, nbpoolBin, 'redirector', '--ip', '127.0.0.1', '--port', String(port), '--admin-ip', '127.0.0.1', '--admin-port', String(adminPort),
      ...nodes.flatMap((n) => ['--node', n.url]), '--stats-period', String(settings.statsPeriod), '--stats-timeout', '1',
      '--state-store', 'memory:', '--log-level', 'warn',
    ], { ADMIN_AUTH_TOKEN: 'bench' });
    procs.push(ours);
    await waitListening(ours, port);
    peers.push({ name: 'ours', url: `http://127.0.0.1:${port}` });

    const { summaries, results } = await runRedirectBench(peers, nodes, settings);
    const result = (name: string) => results.find((r) => r.name === name);
    const oursSummary = summaries.find((s) => s.name === 'ours')!;
    const oursResult = result('ours')!;
    const base = result('weighted random')!;
    const orig = result('tmpnb-redirector');
    const perRound = (r: typeof base, what: 'p50Ms' | 'p99Ms') => r.sequential.map((x) => x[what]);
    const ms = (r: typeof base, what: 'p50Ms' | 'p99Ms') => `${round(median(perRound(r, what)), 3)} ms (${perRound(r, what).join(' / ')})`;
    const ratio = (what: 'p50Ms' | 'p99Ms', peer: typeof base) => perRound(oursResult, what).map((v, i) => v / perRound(peer, what)[i]!);
    const against = (what: 'p50Ms' | 'p99Ms') => `ours ${ms(oursResult, what)}, ${orig ? `tmpnb-redirector ${ms(orig, what)}, ` : ''}weighted-random baseline ${ms(base, what)}`;
    const goals: Goal[] = orig
      ? [
          goalOverRounds('sequential p50 at most half the original tmpnb-redirector\'s (same round)', ratio('p50Ms', orig), '<=', 0.5, 'x', against('p50Ms')),
          goalOverRounds('sequential p99 at most the original\'s (same round)', ratio('p99Ms', orig), '<=', 1, 'x', against('p99Ms')),
        ]
      : [
          { name: 'sequential p50 at most half the original tmpnb-redirector\'s', met: false, judged: false, detail: `not judged: ${'skip' in original ? original.skip : ''}; ${against('p50Ms')}` },
          goalOverRounds('sequential p50 within 1.5x the weighted-random baseline\'s (same round; the original not measured)', ratio('p50Ms', base), '<=', 1.5, 'x', against('p50Ms')),
        ];
    goals.push(
      { name: 'burst: largest deviation from capacity share <= 2% in every round', met: oursSummary.burstMaxDeviationPctWorst <= 2, detail: `worst ${oursSummary.burstMaxDeviationPctWorst}% (rounds ${oursResult.bursts.map((b) => b.maxDeviationPct).join(' / ')}%); ${summaries.filter((x) => x.name !== 'ours').map((x) => `${x.name} worst ${x.burstMaxDeviationPctWorst}%`).join(', ')}` },
      { name: 'path and query always kept, every answer a redirect', met: oursSummary.pathOrQueryLost === 0 && oursSummary.bad === 0, detail: `${oursSummary.pathOrQueryLost} lost, ${oursSummary.bad} other answers, of ${oursSummary.requests}${orig ? `; tmpnb-redirector lost ${summaries.find((x) => x.name === 'tmpnb-redirector')!.pathOrQueryLost} of ${summaries.find((x) => x.name === 'tmpnb-redirector')!.requests}` : ''}` },
    );
    printGoals(goals);
    process.stdout.write('\n----- paste into README (bench:redirect) -----\n');
    process.stdout.write(redirectMarkdown(results, summaries, goals));
    process.stdout.write('-----\n');
    writeResults('redirect', {
      bench: 'redirect',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings,
      original: 'dir' in original ? { measured: true, what: 'jupyter/tmpnb-redirector redirector.py (BENCH_TMPNB_REDIRECTOR_DIR) on Debian tornado 6 via bench/lib/run-original.py, same run' } : { measured: false, why: original.skip },
      summaries,
      rounds: results.map((r) => ({ name: r.name, sequential: r.sequential, concurrent: r.concurrent })),
      bursts: results.map((r) => ({ name: r.name, bursts: r.bursts })),
      goals,
    }, loadAtStart);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    for (const n of nodes) await n.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures as a Markdown table (median over rounds, then each round), ready for the README. */
function redirectMarkdown(results: Awaited<ReturnType<typeof runRedirectBench>>['results'], summaries: Awaited<ReturnType<typeof runRedirectBench>>['summaries'], goals: Goal[]): string {
  const rounds = (xs: number[]) => `${round(median(xs), 3)} (${xs.join(' / ')})`;
  const lines = [
    '| median (round 1 / 2 / ...) | sequential p50, ms | sequential p99, ms | worst deviation from capacity share | path and query kept |',
    '|---|---|---|---|---|',
    ...results.map((r) => {
      const s = summaries.find((x) => x.name === r.name)!;
      return `| ${r.name} | ${rounds(r.sequential.map((x) => x.p50Ms))} | ${rounds(r.sequential.map((x) => x.p99Ms))} | ${s.burstMaxDeviationPctWorst}% | ${s.requests - s.pathOrQueryLost} of ${s.requests} |`;
    }),
    '',
    ...goals.map((g) => `- ${g.judged === false ? 'not judged' : g.met ? '**met**' : '**missed**'}${g.close ? ' (close)' : ''}: ${g.name}: ${g.detail}`),
    '',
  ];
  return lines.join('\n');
}

await main();
