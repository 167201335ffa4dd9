/**
 * bench:demand (issue 16). A trace replay in SIMULATED time through the orchestrator's real pool
 * state machine (PoolCore) and demand core (DemandCore), with MODELLED containers (see
 * lib/demand-sim.ts): a quiet hour, a lecture of 60 arriving within a minute, a second lecture
 * ten minutes later, a slow trickle. Fixed pool sizes 5, 20 and 60 (and 10, the smallest that is
 * enough in every round here) against `auto`, several rounds
 * (seeds) of the same trace shape: hit rate per phase (visitors served by a warm container at once)
 * and warm-container-seconds spent.
 * Writes bench/results/demand.json and docs/demand.svg (hand-written SVG).
 * Env: BENCH_ROUNDS (5), BENCH_START_CPU_MS (1000), BENCH_CORES (2), BENCH_CAPACITY (200).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultAutoMax } from '../orchestrator/config.js';
import { DEFAULT_DEMAND_POLICY } from '../orchestrator/demand.js';
import { lectureTrace, replay, type HostModel, type ReplayResult, type Sizing } from './lib/demand-sim.js';
import { median, noteLoad, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const host: HostModel = {
  createMs: 300,
  startCpuMs: Number(process.env.BENCH_START_CPU_MS ?? 1000),
  cores: Number(process.env.BENCH_CORES ?? 2),
  removeMs: 1000,
  capacity: Number(process.env.BENCH_CAPACITY ?? 200),
  maxParallelStarts: 8,
};
const autoSizing = { min: 1, max: defaultAutoMax(host.capacity, 1), hitRate: 0.95 };
const sizings: Array<{ name: string; sizing: Sizing }> = [
  { name: 'fixed 5', sizing: { fixed: 5 } },
  { name: 'fixed 10', sizing: { fixed: 10 } },
  { name: 'fixed 20', sizing: { fixed: 20 } },
  { name: 'fixed 60', sizing: { fixed: 60 } },
  { name: 'auto', sizing: { auto: autoSizing } },
];
const PHASES = ['quiet hour', 'lecture 1', 'lecture 2', 'trickle'];
const GOAL_HIT_RATE = 0.95;

const loadAtStart = noteLoad('at the start');
const started = Date.now();
process.stdout.write(
  `bench:demand: ${rounds} rounds of the trace, simulated time; modelled host: ${host.cores} CPUs for starts, ` +
    `a start = ${host.createMs} ms engine call + ${host.startCpuMs} ms CPU shared by all starting at once, capacity ${host.capacity}\n`,
);

const results = new Map<string, ReplayResult[]>();
for (const { name, sizing } of sizings) {
  const list: ReplayResult[] = [];
  for (let seed = 1; seed <= rounds; seed++) list.push(replay(lectureTrace(seed), sizing, host));
  results.set(name, list);
}

const pct = (x: number) => round(x * 100, 1);
const spread = (xs: number[]) => ({ median: round(median(xs), 3), min: round(Math.min(...xs), 3), max: round(Math.max(...xs), 3) });
const summary = sizings.map(({ name }) => {
  const list = results.get(name)!;
  const phases: Record<string, ReturnType<typeof spread>> = {};
  for (const phase of PHASES) phases[phase] = spread(list.map((r) => r.phases[phase]!.hitRate));
  const lecture2 = list.map((r) => r.phases['lecture 2']!.hitRate);
  return {
    name,
    hitRate: phases,
    lecture2WaitMaxMs: Math.max(...list.map((r) => r.phases['lecture 2']!.waitMaxMs)),
    roundsReachingGoal: lecture2.filter((h) => h >= GOAL_HIT_RATE).length,
    warmContainerSeconds: spread(list.map((r) => round(r.warmContainerSeconds, 0))),
    spareContainerSeconds: spread(list.map((r) => round(r.spareContainerSeconds, 0))),
  };
});

printTable(
  'Hit rate per phase (median over rounds, min-max), warm-container-seconds (median, min-max)',
  ['pool size', ...PHASES, 'lecture 2 >= 95%', 'warm container-s', 'warm + starting'],
  summary.map((s) => [
    s.name,
    ...PHASES.map((p) => `${pct(s.hitRate[p]!.median)}% (${pct(s.hitRate[p]!.min)}-${pct(s.hitRate[p]!.max)})`),
    `${s.roundsReachingGoal}/${rounds} rounds`,
    `${s.warmContainerSeconds.median} (${s.warmContainerSeconds.min}-${s.warmContainerSeconds.max})`,
    s.spareContainerSeconds.median,
  ]),
);

const auto = summary.find((s) => s.name === 'auto')!;
const reliableFixed = summary.filter((s) => s.name !== 'auto' && s.roundsReachingGoal === rounds);
const sometimesFixed = summary.filter((s) => s.name !== 'auto' && s.roundsReachingGoal > 0 && s.roundsReachingGoal < rounds);
const goals: Goal[] = [
  {
    name: 'auto reaches >= 95% hit rate on the second lecture in every round',
    met: auto.roundsReachingGoal === rounds,
    detail: `${auto.roundsReachingGoal}/${rounds} rounds; lecture 2 hit rate ${pct(auto.hitRate['lecture 2']!.min)}-${pct(auto.hitRate['lecture 2']!.max)}%`,
  },
  {
    name: 'auto spends fewer warm-container-seconds than any fixed size that reaches it (in every round)',
    met: auto.roundsReachingGoal === rounds && reliableFixed.every((s) => auto.warmContainerSeconds.max < s.warmContainerSeconds.min),
    detail:
      `auto ${auto.warmContainerSeconds.median} (worst round ${auto.warmContainerSeconds.max}); ` +
      reliableFixed.map((s) => `${s.name} ${s.warmContainerSeconds.median} (${round(s.warmContainerSeconds.median / auto.warmContainerSeconds.median, 1)}x)`).join(', ') +
      (sometimesFixed.length ? `; reaching it only in some rounds: ${sometimesFixed.map((s) => `${s.name} (${s.roundsReachingGoal}/${rounds}, ${s.warmContainerSeconds.median})`).join(', ')}` : ''),
  },
];
printGoals(goals);

const svgFile = writePlot(results);
writeResults(
  'demand',
  {
    bench: 'demand',
    date: new Date().toISOString(),
    seconds: round((Date.now() - started) / 1000, 1),
    method:
      'simulated time through the real PoolCore and DemandCore; containers modelled (start = engine call + CPU shared by concurrent starts), not run',
    host,
    trace: 'quiet hour (6 visitors), lecture 1 (60 within a minute at 60 min), lecture 2 (60 within a minute at 70 min), trickle (1 per 2 min on average, 72-102 min)',
    auto: autoSizing,
    policy: DEFAULT_DEMAND_POLICY,
    rounds,
    sizings: summary,
    plot: svgFile,
    goals,
  },
  loadAtStart,
);

/** docs/demand.svg: round 1 over time; in use above, warm (and auto's target) below. */
function writePlot(all: Map<string, ReplayResult[]>): string {
  const W = 900;
  const left = 50;
  const right = 150;
  const plotW = W - left - right;
  const panels = [
    { top: 40, height: 150, max: 130, title: 'in use (claimed), auto run', series: [{ key: 3, run: 'auto', color: '#2563eb', dash: '' }] },
    {
      top: 240,
      height: 220,
      max: 25,
      title: 'warm containers (fixed 60 is off this scale)',
      series: [
        { key: 1, run: 'fixed 5', color: '#9ca3af', dash: '' },
        { key: 1, run: 'fixed 20', color: '#f59e0b', dash: '' },
        { key: 1, run: 'auto', color: '#16a34a', dash: '' },
        { key: 4, run: 'auto', color: '#dc2626', dash: '4 3' },
      ],
    },
  ];
  const tEnd = Math.max(...all.get('auto')![0]!.series.map((s) => s[0]));
  const x = (t: number) => left + (t / tEnd) * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} 525" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="525" fill="#fff"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="600">bench:demand, round 1: simulated trace through PoolCore + DemandCore (modelled containers)</text>`,
  ];
  for (const panel of panels) {
    const y = (v: number) => panel.top + panel.height - (Math.min(v, panel.max) / panel.max) * panel.height;
    parts.push(`<text x="${left}" y="${panel.top - 6}" font-weight="600">${panel.title}</text>`);
    parts.push(`<rect x="${left}" y="${panel.top}" width="${plotW}" height="${panel.height}" fill="none" stroke="#e5e7eb"/>`);
    for (const v of [0, panel.max / 2, panel.max]) {
      parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#6b7280">${round(v, 0)}</text>`);
    }
    for (let m = 0; m * 60 <= tEnd; m += 10) {
      parts.push(`<line x1="${x(m * 60)}" x2="${x(m * 60)}" y1="${panel.top}" y2="${panel.top + panel.height}" stroke="#f3f4f6"/>`);
      parts.push(`<text x="${x(m * 60)}" y="${panel.top + panel.height + 14}" text-anchor="middle" fill="#6b7280">${m} min</text>`);
    }
    panel.series.forEach((s, i) => {
      const points = all.get(s.run)![0]!.series.map((p) => `${round(x(p[0]), 1)},${round(y(p[s.key]!), 1)}`).join(' ');
      const label = s.key === 4 ? `${s.run} target` : s.key === 3 ? 'in use' : `${s.run} warm`;
      parts.push(`<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="1.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
      parts.push(`<line x1="${left + plotW + 12}" x2="${left + plotW + 32}" y1="${panel.top + 12 + i * 18}" y2="${panel.top + 12 + i * 18}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
      parts.push(`<text x="${left + plotW + 38}" y="${panel.top + 16 + i * 18}">${label}</text>`);
    });
  }
  parts.push(
    `<text x="${left}" y="496" fill="#374151">warm container-seconds, median of ${rounds} rounds: ${summary.map((s) => `${s.name} ${s.warmContainerSeconds.median}`).join(' · ')}</text>`,
    `<text x="${left}" y="514" fill="#374151">lecture 2 hit rate: ${summary.map((s) => `${s.name} ${pct(s.hitRate['lecture 2']!.min)}-${pct(s.hitRate['lecture 2']!.max)}%`).join(' · ')}</text>`,
    '</svg>',
  );
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'demand.svg');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, parts.join('\n') + '\n');
  process.stdout.write(`plot: ${file}\n`);
  return 'docs/demand.svg';
}
