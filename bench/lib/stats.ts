/** Numbers for benchmarks: percentiles, medians, table printing and the JSON result files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Percentile `p` (0..100) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
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

function formatNumber(n: number): string {
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
}

export function printGoals(goals: Goal[]): void {
  process.stdout.write('\nGoals\n');
  for (const g of goals) process.stdout.write(`  [${g.met ? 'MET ' : 'MISS'}] ${g.name}: ${g.detail}\n`);
}

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** The machine's load while a bench runs: figures from a busy 2-core machine are read with it. */
export function machineLoad(): { cpus: number; loadavg1m: number } {
  return { cpus: cpus().length, loadavg1m: round(loadavg()[0]!, 2) };
}

/** Prints the load now; call at the start and the end of a bench. */
export function noteLoad(when: string): { cpus: number; loadavg1m: number } {
  const load = machineLoad();
  process.stdout.write(`machine load ${when}: ${load.loadavg1m} (1 min average) on ${load.cpus} CPUs\n`);
  return load;
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
