/** Numbers for benchmarks: percentiles, medians, table printing and the JSON result files. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Percentile `p` (0..100) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** The middle value; for an even count the mean of the two middle ones (with 2 rounds, not the better one). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Prints rows as an aligned text table (first column left-aligned, the rest right-aligned). */
export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) =>
    r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n${title}\n${line(cells[0]!)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of cells.slice(1)) process.stdout.write(line(r) + '\n');
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export interface Goal {
  name: string;
  met: boolean;
  /** What was measured, in words with the figures. */
  detail: string;
  /** The figure in each round, when the goal is judged on a figure measured once a round. */
  rounds?: number[];
  /** (max - min) / median of `rounds`, in percent. */
  spreadPct?: number;
  /** The median is nearer the threshold than the spread between rounds: read the rounds, not the verdict. */
  close?: boolean;
  /** False when the peer the goal is judged against was not measured (then `met` means nothing). */
  judged?: boolean;
}

/** (max - min) / median of `values`, in percent: how far rounds of one figure disagree. */
export function spreadPct(values: readonly number[]): number {
  if (values.length < 2) return 0;
  return round(((Math.max(...values) - Math.min(...values)) / Math.abs(median(values))) * 100, 1);
}

const comparisons = {
  '<': (v: number, t: number) => v < t,
  '<=': (v: number, t: number) => v <= t,
  '>=': (v: number, t: number) => v >= t,
};

/**
 * A goal on a figure measured once a round, judged on its median over rounds. When the median
 * misses or beats the threshold by less (relative to the threshold) than the rounds spread, the
 * verdict is a coin toss on this machine: the goal is marked close and its detail quotes every
 * round and how many met it.
 */
export function goalOverRounds(name: string, perRound: readonly number[], compare: keyof typeof comparisons, threshold: number, unit: string, context = ''): Goal {
  const m = median(perRound);
  const spread = spreadPct(perRound);
  const marginPct = (Math.abs(m - threshold) / Math.abs(threshold)) * 100;
  const close = perRound.length > 1 && marginPct < spread;
  const metRounds = perRound.filter((v) => comparisons[compare](v, threshold)).length;
  const figure = (v: number) => `${formatNumber(v)}${unit}`;
  const rounds = `rounds ${perRound.map(figure).join(' / ')}, spread ${spread}%`;
  const detail = `${figure(m)} (median of ${perRound.length}; goal ${compare} ${figure(threshold)})${context ? `; ${context}` : ''}; ${rounds}${close ? `; CLOSE: decided by less than the spread, met in ${metRounds} of ${perRound.length} rounds` : ''}`;
  return { name, met: comparisons[compare](m, threshold), detail, rounds: perRound.map((v) => round(v, 3)), spreadPct: spread, close };
}

/** [MET ], [MISS], [ -- ] when not judged; a ? marks a goal decided by less than the spread between rounds. */
export function goalMark(g: Goal): string {
  return `[${g.judged === false ? ' -- ' : g.met ? 'MET ' : 'MISS'}${g.close ? '?' : ''}]`;
}

export function printGoals(goals: Goal[]): void {
  process.stdout.write('\nGoals\n');
  for (const g of goals) process.stdout.write(`  ${goalMark(g)} ${g.name}: ${g.detail}\n`);
}

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** The load average over the last minute and how many tasks run now, from /proc/loadavg. */
function procLoadavg(): { loadavg1m: number; running: number } {
  const [one, , , tasks] = readFileSync('/proc/loadavg', 'utf8').split(' ');
  return { loadavg1m: Number(one), running: Number(tasks!.split('/')[0]) };
}

/** Busy and total CPU ticks of the whole machine so far, from /proc/stat. */
function procCpuTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** The machine's load while a bench runs: figures from a busy 2-core machine are read with it. */
export function machineLoad(): { cpus: number; loadavg1m: number } {
  return { cpus: cpus().length, loadavg1m: procLoadavg().loadavg1m };
}

/** Prints the load now; call at the start and the end of a bench. */
export function noteLoad(when: string): { cpus: number; loadavg1m: number } {
  const load = machineLoad();
  process.stdout.write(`machine load ${when}: ${load.loadavg1m} (1 min average) on ${load.cpus} CPUs\n`);
  return load;
}

export interface LoadMark {
  loadavg1m: number;
  ticks: { busy: number; total: number };
}

/** The machine's load over one measured figure: load average at its start and end, and how busy every CPU was meanwhile. */
export interface LoadSpan {
  loadavg1mStart: number;
  loadavg1mEnd: number;
  /** Share of all CPUs busy (any process, ours included) between start and end. */
  cpuBusyPct: number;
}

export function loadMark(): LoadMark {
  return { loadavg1m: procLoadavg().loadavg1m, ticks: procCpuTicks() };
}

export function loadSince(start: LoadMark): LoadSpan {
  const now = procCpuTicks();
  const total = now.total - start.ticks.total;
  return {
    loadavg1mStart: start.loadavg1m,
    loadavg1mEnd: procLoadavg().loadavg1m,
    cpuBusyPct: total > 0 ? round(((now.busy - start.ticks.busy) / total) * 100, 0) : NaN,
  };
}

/** Runs one measurement and notes the machine's load over it. */
export async function withLoad<T>(measure: () => Promise<T>): Promise<{ value: T; load: LoadSpan }> {
  const start = loadMark();
  const value = await measure();
  return { value, load: loadSince(start) };
}

export function describeLoad(load: LoadSpan): string {
  return `load ${load.loadavg1mStart}->${load.loadavg1mEnd}, CPUs ${load.cpuBusyPct}% busy`;
}

/** Writes bench/results/<name>.json (with the load at start and end) and says where. */
export function writeResults(name: string, summary: Record<string, unknown>, loadAtStart: { cpus: number; loadavg1m: number }): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}.json`);
  const machine = { cpus: loadAtStart.cpus, loadavg1mAtStart: loadAtStart.loadavg1m, loadavg1mAtEnd: noteLoad('at the end').loadavg1m };
  writeFileSync(file, JSON.stringify({ ...summary, machine }, null, 2) + '\n');
  process.stdout.write(`\nresults: ${file}\n`);
  return file;
}
