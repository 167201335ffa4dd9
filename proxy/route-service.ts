/**
 * The route table's core: validation, the in-memory table the hot path reads, persistence and
 * sharing through a RecordStore, and last_activity bookkeeping.
 *
 * The in-memory RouteTable answers every lookup; the store only persists routes and carries
 * other processes' changes (pub/sub, plus a periodic full re-read to recover missed messages).
 * last_activity moves in memory on every request or WebSocket chunk and is written to the store
 * coalesced, every `activityFlushMs`, for the routes that changed only.
 */
import { MAX_IGNORE_TESTED_LENGTH, parseActivityIgnore } from '../shared/activity-ignore.js';
import { BadRequest, NotFound, ServiceUnavailable } from '../shared/errors.js';
import { jsonDepth, MAX_JSON_DEPTH } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { openStore, type RecordStore, type Unsubscribe } from '../shared/store.js';
import type { RouteData, RouteTableClient } from '../shared/types.js';
import { cleanPath, RouteTable } from './route-table.js';

/** Where a route sends its traffic, parsed once when the route is added. */
export interface Target {
  href: string;
  /**
   * `scheme://host[:port]` (port only when not the default): the key of the target's kept-alive
   * connections, and its host part recognises the target's own redirects. The same string as
   * `href` when the target has no path, as most have: one string fewer per route.
   */
  origin: string;
  https: boolean;
  /** Without IPv6 brackets, as node:http wants it. */
  hostname: string;
  port: number;
  /** The target's path without its trailing slash ('' for the root), prepended to requests. */
  path: string;
  /** A Unix socket target (`http+unix://%2Frun%2Fapp.sock`, as configurable-http-proxy takes): its path. */
  socketPath?: string;
}

/** configurable-http-proxy's spellings of HTTP over a Unix socket; the socket path is the URL's host, percent-encoded. */
const UNIX_SOCKET_SCHEMES = new Set(['http+unix:', 'unix+http:']);

export interface RouteEntry {
  prefix: string;
  target: Target;
  /** The route's data says `"strip_prefix": true` (issue 16): the app is served at `/`, not under the prefix. */
  stripPrefix: boolean;
  /** Requests whose path (after the prefix) matches one of these don't count as activity (`"activity_ignore"`). */
  activityIgnore: RegExp[] | undefined;
  /**
   * The route's other fields as the client stored them (not target, not last_activity); undefined
   * when it stored none, as most clients do: one object fewer per route.
   */
  extra: Readonly<Record<string, unknown>> | undefined;
  /** Milliseconds since the epoch. */
  lastActivity: number;
  /** Set when lastActivity moved since the last flush. */
  dirty: boolean;
}

/** Longest route path accepted: no real prefix comes near it, and it bounds the trie's depth. */
export const MAX_ROUTE_PATH = 2048;
/** Largest route record (JSON bytes): one route must not be able to bloat GET /api/routes for everyone. */
export const MAX_ROUTE_BYTES = 64 * 1024;

/** Target host names by value, so the routes to one host (every container of a node) share one string. */
const hostnames = new Map<string, string>();
/** Past this many distinct hosts, new ones are simply not shared: a flood of them cannot grow the map. */
const MAX_SHARED_HOSTNAMES = 1024;

function sharedHostname(name: string): string {
  const known = hostnames.get(name);
  if (known !== undefined) return known;
  if (hostnames.size < MAX_SHARED_HOSTNAMES) hostnames.set(name, name);
  return name;
}

export function parseTarget(value: unknown): Target {
  if (typeof value !== 'string') throw new BadRequest("Must specify 'target' as string");
  const text = value.trim();
  if (text === '') throw new BadRequest("'target' is empty; give a URL such as http://10.0.0.5:8888");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BadRequest(`'target' is not a valid URL: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const path = url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
  if (UNIX_SOCKET_SCHEMES.has(url.protocol)) {
    let socketPath: string;
    try {
      socketPath = decodeURIComponent(url.host);
    } catch {
      throw new BadRequest("'target' socket path is not valid percent-encoding");
    }
    if (!socketPath.startsWith('/')) throw new BadRequest("'target' must name an absolute socket path, percent-encoded: http+unix://%2Frun%2Fapp.sock");
    return { href: text, origin: `http+unix://${url.host}`, https: false, hostname: 'localhost', port: 80, path, socketPath };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BadRequest(`'target' must be an http://, https:// or http+unix:// URL, got ${JSON.stringify(url.protocol)}`);
  }
  if (url.hostname === '') throw new BadRequest("'target' has no host");
  const https = url.protocol === 'https:';
  return {
    href: text,
    origin: url.origin === text ? text : url.origin,
    https,
    hostname: sharedHostname(url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname),
    port: url.port === '' ? (https ? 443 : 80) : Number(url.port),
    path,
  };
}

/** True when a request to `url` (the route's prefix included) is one the route says not to count as activity. */
export function ignoresActivity(entry: RouteEntry, url: string): boolean {
  const patterns = entry.activityIgnore;
  if (patterns === undefined || url.length > MAX_IGNORE_TESTED_LENGTH) return false;
  const rest = url.startsWith(entry.prefix) && entry.prefix !== '/' ? url.slice(entry.prefix.length) || '/' : url;
  return patterns.some((pattern) => pattern.test(rest));
}

/** How long an API change waits for the store: a store that is down must not leave the client hanging. */
export const STORE_TIMEOUT_MS = 5000;

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A store that cannot be reached is the server's trouble, not the client's: 503, route table unchanged. */
async function storeCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(call(), STORE_TIMEOUT_MS);
  } catch (err) {
    throw new ServiceUnavailable(`route store unavailable: ${(err as Error).message}`, 1);
  }
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string') throw new BadRequest('route path must be a string');
  if (path.length > MAX_ROUTE_PATH) throw new BadRequest(`route path longer than ${MAX_ROUTE_PATH} characters`);
  return cleanPath(path);
}

/**
 * Validates a route's data into a plain JSON copy without last_activity: anything that would not
 * survive JSON (cycles, BigInt) or that nests too deep or weighs too much is a 400 now rather than
 * a broken GET /api/routes later.
 */
function sanitizeData(data: unknown): Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new BadRequest('route data must be a JSON object');
  let text: string;
  try {
    text = JSON.stringify(data);
  } catch (err) {
    throw new BadRequest(`route data is not JSON-serializable: ${(err as Error).message}`);
  }
  if (text.length > MAX_ROUTE_BYTES) throw new BadRequest(`route data larger than ${MAX_ROUTE_BYTES} bytes`);
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new BadRequest(`route data nests deeper than ${MAX_JSON_DEPTH} levels`);
  const copy = JSON.parse(text) as Record<string, unknown>;
  delete copy.last_activity;
  return copy;
}

/** A route's fields but target (kept as its Target's href), or undefined when there are none. */
function extraFields(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  // Rest, not assignment: a field named __proto__ stays a plain field.
  const { target: _target, ...extra } = fields;
  return Object.keys(extra).length > 0 ? extra : undefined;
}

function isMemory(url: string | undefined): boolean {
  return url === undefined || url === '' || url === 'memory' || url === 'memory:';
}

/**
 * The default, in-memory backend: nothing else reads it and nothing survives a restart, so the
 * route table itself is the store. A MemoryStore would hold a second copy of every route (about
 * 40% more memory per route at 100,000 routes) for no reader.
 */
class TableOnlyStore<T> implements RecordStore<T> {
  async get(): Promise<undefined> {
    return undefined;
  }
  async all(): Promise<Map<string, T>> {
    return new Map();
  }
  async put(): Promise<void> {}
  async putMany(): Promise<void> {}
  async delete(): Promise<boolean> {
    return false;
  }
  async watch(): Promise<Unsubscribe> {
    return async () => {};
  }
  async close(): Promise<void> {}
}

/** What the activity flush writes: kept apart from the routes so it can never write a deleted route back. */
interface ActivityRecord {
  last_activity: string;
}

export interface RouteServiceOptions {
  /** The first path segment of every route is a host name (CHP's --host-routing). */
  hostRouting: boolean;
  activityFlushMs: number;
  resyncMs: number;
  log: Logger;
}

export class RouteService {
  private readonly table = new RouteTable<RouteEntry>();
  private dirty: RouteEntry[] = [];
  /** Bumped on every change, so a periodic re-read that raced with one is discarded. */
  private generation = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unwatch: Unsubscribe[] = [];
  private closed = false;
  /** No shared store: the in-memory table is the only copy (the default, and every route of `nbpool up`). */
  private readonly tableOnly: boolean;

  private constructor(
    private readonly store: RecordStore<RouteData>,
    /** last_activity by route path, written by the coalesced flush only. */
    private readonly activity: RecordStore<ActivityRecord>,
    private readonly options: RouteServiceOptions,
  ) {
    this.tableOnly = store instanceof TableOnlyStore;
  }

  static async open(storeUrl: string | undefined, options: RouteServiceOptions): Promise<RouteService> {
    if (isMemory(storeUrl)) return new RouteService(new TableOnlyStore(), new TableOnlyStore(), options);
    const opening = { log: options.log, name: 'route store' };
    const store = await openStore<RouteData>(storeUrl, 'routes', opening);
    let activity: RecordStore<ActivityRecord> | undefined;
    try {
      activity = await openStore<ActivityRecord>(storeUrl, 'route-activity', opening);
      const service = new RouteService(store, activity, options);
      store.onEmptyRestart?.(() => service.recordsToRestore());
      service.unwatch.push(await store.watch((id, value) => service.applyRemote(id, value)));
      service.unwatch.push(await activity.watch((id, value) => service.applyActivity(id, value)));
      await service.resync(true);
      service.every(options.resyncMs, () => service.resync(false));
      service.every(options.activityFlushMs, () => service.flushActivity());
      return service;
    } catch (err) {
      await Promise.allSettled([store.close(), activity?.close()]);
      throw err;
    }
  }

  private every(ms: number, task: () => Promise<void>): void {
    let running = false;
    // Said once per outage (a store that is down fails every period), and once when it is back.
    let failing = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      task()
        .then(
          () => {
            if (failing) this.options.log.warn('route store reachable again; syncing');
            failing = false;
          },
          (err: unknown) => {
            if (!failing) this.options.log.warn({ err }, 'route store sync failed; serving from the table and retrying');
            failing = true;
          },
        )
        .finally(() => (running = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  get size(): number {
    return this.table.size;
  }

  /**
   * A change written through to the shared store, bounded by its timeout. With none (the table is
   * the store) nothing is built or waited for: that is every claim of `nbpool up`.
   */
  private toStore<T>(call: () => Promise<T>, withoutStore: T): Promise<T> | T {
    return this.tableOnly ? withoutStore : storeCall(call);
  }

  /** The hot path: the route for a request, by its decoded path (and host with host routing). */
  match(path: string): RouteEntry | undefined {
    return this.table.match(path)?.value;
  }

  /**
   * Records traffic on a route; written to a shared store at the next flush. With none, the table
   * is all there is to update: listing a touched route for a flush would only cost every request
   * to a route not yet touched (most of them, with 100,000 routes) a push and a date string.
   */
  touch(entry: RouteEntry, now = Date.now()): void {
    entry.lastActivity = now;
    if (!entry.dirty && !this.tableOnly) {
      entry.dirty = true;
      this.dirty.push(entry);
    }
  }

  async add(path: unknown, data: unknown): Promise<void> {
    const prefix = checkPath(path);
    const fields = sanitizeData(data);
    const target = parseTarget(fields.target);
    if (this.options.hostRouting && prefix !== '/') fields.host = prefix.split('/')[1];
    const entry: RouteEntry = { prefix, target, stripPrefix: fields.strip_prefix === true, activityIgnore: parseActivityIgnore(fields.activity_ignore), extra: extraFields(fields), lastActivity: Date.now(), dirty: false };
    await this.toStore(() => this.store.put(prefix, this.record(entry)), undefined);
    this.generation++;
    this.table.set(prefix, entry);
  }

  /** True when the route existed. */
  async remove(path: unknown): Promise<boolean> {
    const prefix = checkPath(path);
    const existed = this.table.has(prefix);
    const removedFromStore = await this.toStore(() => this.store.delete(prefix), false);
    // Not awaited: a leftover activity record is harmless and the next resync removes it.
    void this.activity.delete(prefix).catch(() => {});
    this.generation++;
    this.table.delete(prefix);
    return existed || removedFromStore;
  }

  get(path: unknown): RouteData {
    const entry = this.table.get(checkPath(path));
    if (!entry) throw new NotFound(`no route at ${JSON.stringify(cleanPath(path as string))}`);
    return this.record(entry);
  }

  /** Every route, or those idle since before `inactiveSince`, as CHP's GET /api/routes returns them. */
  list(inactiveSince?: Date): Record<string, RouteData> {
    const cutoff = inactiveSince?.getTime();
    const result: Record<string, RouteData> = {};
    for (const { prefix, value } of this.table.entries()) {
      if (cutoff !== undefined && !(value.lastActivity < cutoff)) continue;
      result[prefix] = this.record(value);
    }
    return result;
  }

  private record(entry: RouteEntry): RouteData {
    return { target: entry.target.href, ...entry.extra, last_activity: new Date(entry.lastActivity).toISOString() };
  }

  /** A record from the store (another process, or our own earlier run) into an entry; undefined if unusable. */
  private entryFrom(prefix: string, record: RouteData, previous: RouteEntry | undefined): RouteEntry | undefined {
    try {
      const fields = sanitizeData(record);
      const target = previous !== undefined && previous.target.href === fields.target ? previous.target : parseTarget(fields.target);
      const stamp = Date.parse(String(record.last_activity));
      const lastActivity = Math.max(previous?.lastActivity ?? 0, Number.isFinite(stamp) ? stamp : 0) || Date.now();
      return { prefix, target, stripPrefix: fields.strip_prefix === true, activityIgnore: parseActivityIgnore(fields.activity_ignore), extra: extraFields(fields), lastActivity, dirty: false };
    } catch (err) {
      this.options.log.warn({ prefix, err: (err as Error).message }, 'ignoring unusable route record in the store');
      return undefined;
    }
  }

  private applyRemote(id: string, record: RouteData | undefined): void {
    if (this.closed) return;
    const prefix = cleanPath(id);
    this.generation++;
    if (record === undefined) {
      this.table.delete(prefix);
      return;
    }
    const previous = this.table.get(prefix);
    const entry = this.entryFrom(prefix, record, previous);
    if (!entry) return;
    if (previous) {
      // Update in place: requests in flight hold the entry and keep touching it.
      previous.target = entry.target;
      previous.stripPrefix = entry.stripPrefix;
      previous.activityIgnore = entry.activityIgnore;
      previous.extra = entry.extra;
      previous.lastActivity = entry.lastActivity;
    } else {
      this.table.set(prefix, entry);
    }
  }

  private applyActivity(id: string, record: ActivityRecord | undefined): void {
    const entry = this.table.get(cleanPath(id));
    const stamp = record ? Date.parse(record.last_activity) : NaN;
    if (entry && stamp > entry.lastActivity) entry.lastActivity = stamp;
  }

  /**
   * Re-reads the whole table from the store. A periodic re-read that raced with a change is
   * dropped (the next one applies); it also removes activity records left by deleted routes.
   */
  private async resync(initial: boolean): Promise<void> {
    const before = this.generation;
    const [records, activities] = await Promise.all([this.store.all(), this.activity.all()]);
    if (this.closed || (!initial && this.generation !== before)) return;
    for (const { prefix } of [...this.table.entries()]) {
      if (!records.has(prefix)) this.table.delete(prefix);
    }
    for (const [id, record] of records) this.applyRemote(id, record);
    const orphans: string[] = [];
    for (const [id, record] of activities) {
      if (records.has(id)) this.applyActivity(id, record);
      else orphans.push(id);
    }
    for (const id of orphans) await this.activity.delete(id);
  }

  /** The shared store restarted without its data: our table is written back rather than lost. */
  private recordsToRestore(): Array<[string, RouteData]> {
    this.generation++;
    const records: Array<[string, RouteData]> = [...this.table.entries()].map(({ prefix, value }) => [prefix, this.record(value)]);
    this.options.log.warn({ routes: records.length }, 'route store restarted empty; writing the route table back');
    return records;
  }

  /** Writes last_activity of the routes that saw traffic since the last flush. */
  async flushActivity(): Promise<void> {
    if (this.dirty.length === 0) return;
    const batch = this.dirty;
    this.dirty = [];
    const writes: Array<[string, ActivityRecord]> = [];
    for (const entry of batch) {
      entry.dirty = false;
      // A route deleted or replaced since its traffic has nothing to record.
      if (this.table.get(entry.prefix) === entry) writes.push([entry.prefix, { last_activity: new Date(entry.lastActivity).toISOString() }]);
    }
    try {
      await this.activity.putMany(writes);
    } catch (err) {
      // Keep them for the next flush: the store may be back by then.
      for (const entry of batch) this.touch(entry, entry.lastActivity);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const timer of this.timers) clearInterval(timer);
    try {
      await withTimeout(this.flushActivity(), STORE_TIMEOUT_MS);
    } catch (err) {
      this.options.log.warn({ err }, 'could not write the last activity of routes on close');
    } finally {
      this.closed = true;
      // Bounded: a store that is down must not hold up shutdown.
      await withTimeout(
        Promise.allSettled([...this.unwatch.map((stop) => stop()), this.store.close(), this.activity.close()]),
        STORE_TIMEOUT_MS,
      ).catch(() => this.options.log.warn('route store did not close in time'));
    }
  }
}

/** The in-process RouteTableClient `nbpool up` hands the orchestrator: the REST API's semantics, no network. */
export class LocalRouteTableClient implements RouteTableClient {
  constructor(private readonly service: RouteService) {}

  addRoute(path: string, data: RouteData): Promise<void> {
    return this.service.add(path, data);
  }

  async deleteRoute(path: string): Promise<void> {
    await this.service.remove(path);
  }

  async getRoutes(inactiveSince?: Date): Promise<Record<string, RouteData>> {
    if (inactiveSince !== undefined && !Number.isFinite(inactiveSince.getTime())) throw new BadRequest('inactiveSince is not a valid date');
    return this.service.list(inactiveSince);
  }
}
