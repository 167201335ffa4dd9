/**
 * A small keyed store of JSON records, shared by the three programs: the proxy keeps its route
 * table in one, the redirector its node list. One interface, one file per backend, chosen by URL:
 * `memory:` (default), `file:///path/to/file.json`, `redis://host:port[/db]`.
 */
import { fileURLToPath } from 'node:url';
import { ConfigError } from './errors.js';
import type { Logger } from './log.js';

export type Unsubscribe = () => Promise<void>;

export interface RecordStore<T> {
  get(id: string): Promise<T | undefined>;
  /** Every record, as a fresh Map the caller may keep. */
  all(): Promise<Map<string, T>>;
  put(id: string, value: T): Promise<void>;
  /** Writes many records in one round trip where the backend allows it. */
  putMany(entries: Iterable<[string, T]>): Promise<void>;
  /** True when a record was removed. */
  delete(id: string): Promise<boolean>;
  /**
   * Calls `onChange` for changes made through other store instances (other processes sharing the
   * backend), so in-memory copies stay in sync. Memory and file stores have no other writers.
   */
  watch(onChange: (id: string, value: T | undefined) => void): Promise<Unsubscribe>;
  /**
   * Shared backends that can restart without their data (Redis without persistence): when the
   * backend comes back holding none of our records, `records()` (the caller's in-memory copy) is
   * written back before any other read or write goes through, so nothing is dropped.
   */
  onEmptyRestart?(records: () => Iterable<[string, T]>): void;
  close(): Promise<void>;
}

/** How long a shared store that does not answer yet is retried at start, by default. */
export const STORE_STARTUP_WAIT_MS = 15_000;

/** A store URL fit for a log line: a password in it (redis://:secret@host) is masked. */
export function redactedStoreUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export interface OpenStoreOptions {
  /** How long a shared backend that does not answer yet is retried before it is a clear error. */
  startupWaitMs?: number;
  /** Warned once, at the first failed attempt, which store is waited for and why (so the operator is not left with silence). */
  log?: Pick<Logger, 'warn'>;
  /** What the store is to the operator, for that warning: "route store". */
  name?: string;
}

/**
 * Opens the store named by `url`, holding the records of `namespace` (e.g. `routes`). A shared
 * backend that does not answer yet is retried for `startupWaitMs`, then it is a clear error.
 */
export async function openStore<T>(url: string | undefined, namespace: string, { startupWaitMs = STORE_STARTUP_WAIT_MS, log, name = 'store' }: OpenStoreOptions = {}): Promise<RecordStore<T>> {
  const spec = url && url !== '' ? url : 'memory:';
  if (spec === 'memory' || spec === 'memory:') {
    const { MemoryStore } = await import('./stores/memory.js');
    return new MemoryStore<T>();
  }
  let parsed: URL;
  try {
    parsed = new URL(spec);
  } catch {
    throw new ConfigError(`store ${JSON.stringify(redactedStoreUrl(spec))} is not a valid URL: use memory:, file:///path or redis://host:port`);
  }
  if (parsed.protocol === 'file:') {
    let path: string;
    try {
      path = fileURLToPath(parsed);
    } catch (err) {
      throw new ConfigError(`store ${JSON.stringify(spec)}: ${(err as Error).message} (an absolute path: file:///path/to/file.json)`);
    }
    const { FileStore } = await import('./stores/file.js');
    return FileStore.open<T>(path);
  }
  if (parsed.protocol === 'redis:' || parsed.protocol === 'rediss:') {
    // The Redis client throws a TypeError of its own for these, after the program has started.
    if (!/^\/?\d*$/.test(parsed.pathname)) throw new ConfigError(`store ${JSON.stringify(redactedStoreUrl(spec))}: the database is a number (redis://host:port/0)`);
    const { RedisStore } = await import('./stores/redis.js');
    const waiting = (reason: string) => log?.warn({ store: redactedStoreUrl(spec), reason, giveUpAfterS: startupWaitMs / 1000 }, `waiting for the ${name}`);
    return RedisStore.open<T>(spec, namespace, startupWaitMs, waiting);
  }
  throw new ConfigError(`unknown store ${JSON.stringify(spec)}: use memory:, file:///path or redis://host:port`);
}
