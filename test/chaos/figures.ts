/**
 * The chaos suite's figures: each test merges its own key into bench/results/chaos.json (tests
 * run in parallel, so the read-merge-write is done under a lock directory).
 */
import { mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';

const FILE = new URL('../../bench/results/chaos.json', import.meta.url).pathname;
const LOCK = `${FILE}.lock`;

export interface ChaosFigures {
  /** Visitors who had a container and lost it (goal 0 outside a dead host). */
  visitors_lost: number;
  /** Containers left on the engine that no orchestrator knows (goal 0). */
  containers_leaked: number;
  /** From the fault's end (or the restart) to everything served again. */
  seconds_to_recover: number;
  [other: string]: unknown;
}

export async function recordFigures(key: string, figures: ChaosFigures): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      if (attempt > 100) rmdirSync(LOCK); // a run killed while holding it
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    let all: Record<string, unknown> = {};
    try {
      all = JSON.parse(readFileSync(FILE, 'utf8')) as Record<string, unknown>;
    } catch {
      // First figures of a fresh checkout.
    }
    all[key] = { ...figures, measured_at: new Date().toISOString(), load: loadavg()[0]!.toFixed(1) };
    const sorted = Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b)));
    writeFileSync(`${FILE}.tmp`, JSON.stringify(sorted, null, 2) + '\n');
    renameSync(`${FILE}.tmp`, FILE);
  } finally {
    rmdirSync(LOCK);
  }
}

/** Seconds since `start` (performance.now() or Date.now() milliseconds), 0.1 s resolution. */
export function secondsSince(start: number, now = Date.now()): number {
  return Math.round((now - start) / 100) / 10;
}
