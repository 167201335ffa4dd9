/**
 * The node registry: which nodes exist (persisted in the record store, so a restart keeps them),
 * whether each is up (polled GET /api/stats with a timeout; any failure marks it down at once) and
 * draining, and the load records the chooser weighs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { BadRequest, Conflict, NotFound } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { openStore, type RecordStore, type Unsubscribe } from '../shared/store.js';
import type { NodeStats } from '../shared/types.js';
import { choose, freeCapacity, newLoad, recordPoll, remaining, unsend, type NodeLoad } from './choose.js';
import type { NodeSpec } from './config.js';

/** What the store keeps per node. */
export interface NodeRecord {
  id: string;
  url: string;
  /** Set by the operator: no new visitors; the node's current visitors keep working. */
  draining: boolean;
  addedAt: string;
}

/** The fields of a node's /api/stats the redirector reads; tmpnb's nodes send only the first four. */
export type ReportedStats = Pick<NodeStats, 'available' | 'capacity'> & Partial<Omit<NodeStats, 'available' | 'capacity'>>;

export interface NodeState {
  record: NodeRecord;
  load: NodeLoad;
  up: boolean;
  stats: ReportedStats | undefined;
  lastPoll: string | undefined;
  lastError: string | undefined;
  polling: boolean;
}

/** A node as /api/stats and the admin API show it. */
export interface NodeView {
  id: string;
  url: string;
  up: boolean;
  draining: boolean;
  /** Draining and no visitor left on it (claimed 0): safe to remove. */
  drained: boolean;
  available: number;
  capacity: number;
  room: number;
  /** Room left after the visitors sent since the last poll. */
  remaining: number;
  claimed: number | undefined;
  waiting: number | undefined;
  sent: number;
  last_poll: string | undefined;
  error: string | undefined;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Longer node URLs are refused: every redirect carries one. */
const MAX_NODE_URL_LENGTH = 2048;
/**
 * Sent with the redirector's own /api/stats: a node whose stats carry this redirector's id is the
 * redirector itself (added by mistake under one of its names), and would send visitors in a loop.
 */
export const REDIRECTOR_ID_HEADER = 'x-nbpool-redirector';

/**
 * Checks and normalises a node base URL: http(s), a host, no credentials (they would leak into
 * every redirect), no query or fragment; trailing slashes dropped so `url + path` is the target.
 */
export function normalizeNodeUrl(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new BadRequest(`node URL must be a non-empty string, got ${JSON.stringify(raw)}`);
  if (raw.length > MAX_NODE_URL_LENGTH) throw new BadRequest(`node URL must be at most ${MAX_NODE_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new BadRequest(`node URL ${JSON.stringify(raw)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadRequest(`node URL ${JSON.stringify(raw)} must use http or https`);
  if (url.hostname === '') throw new BadRequest(`node URL ${JSON.stringify(raw)} has no host`);
  if (url.username || url.password) throw new BadRequest(`node URL ${JSON.stringify(raw)} must not carry credentials`);
  if (url.search || url.hash) throw new BadRequest(`node URL ${JSON.stringify(raw)} must not have a query or fragment`);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** A short id that stays the same for the same URL, across restarts and redirectors. */
export function nodeIdFor(url: string): string {
  return 'n-' + createHash('sha256').update(url).digest('hex').slice(0, 8);
}

export function checkNodeId(id: unknown): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new BadRequest(`node id must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(id)}`);
  }
  return id;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Validates a /api/stats body: an object with numeric `available` and `capacity` at least. */
export function parseStats(body: unknown): ReportedStats {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('stats are not a JSON object');
  const s = body as Record<string, unknown>;
  if (!finite(s.available) || !finite(s.capacity)) throw new Error('stats lack numeric "available" and "capacity"');
  if (s.room !== undefined && !finite(s.room)) throw new Error('stats "room" is not a number');
  return s as unknown as ReportedStats;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, NodeState>();
  /** The chooser's records, in a plain array so a choice walks no Map iterator. */
  private loads: NodeLoad[] = [];
  private timer: NodeJS.Timeout | undefined;
  private unwatch: Unsubscribe | undefined;
  private statsTimeoutMs = 2000;

  /** This redirector's id, sent as REDIRECTOR_ID_HEADER with its own stats. */
  readonly selfId = randomUUID();

  private constructor(
    private readonly store: RecordStore<NodeRecord>,
    private readonly log: Logger,
  ) {}

  static async open(storeUrl: string, log: Logger): Promise<NodeRegistry> {
    const store = await openStore<NodeRecord>(storeUrl, 'nodes', { log, name: 'state store' });
    const registry = new NodeRegistry(store, log);
    for (const [id, record] of await store.all()) registry.track({ ...record, id });
    // Another redirector sharing a Redis store adds, drains or removes nodes: follow it.
    registry.unwatch = await store.watch((id, record) => {
      if (record === undefined) registry.untrack(id);
      else registry.track({ ...record, id });
    });
    return registry;
  }

  list(): NodeState[] {
    return [...this.nodes.values()];
  }

  get(id: string): NodeState {
    const node = this.nodes.get(id);
    if (!node) throw new NotFound(`no node ${JSON.stringify(id)}`);
    return node;
  }

  findByUrl(url: string): NodeState | undefined {
    for (const node of this.nodes.values()) if (node.record.url === url) return node;
    return undefined;
  }

  /**
   * Adds a node; `existing: 'keep'` returns an already known URL unchanged (flags at start,
   * tmpnb's idempotent POST /hosts) where the admin API answers 409.
   */
  async add(spec: NodeSpec, existing: 'keep' | 'conflict' = 'conflict'): Promise<{ node: NodeState; created: boolean }> {
    const url = normalizeNodeUrl(spec.url);
    const id = spec.id === undefined ? nodeIdFor(url) : checkNodeId(spec.id);
    const sameUrl = this.findByUrl(url);
    if (sameUrl) {
      if (existing === 'keep') return { node: sameUrl, created: false };
      throw new Conflict(`node ${url} is already known as ${sameUrl.record.id}`);
    }
    if (this.nodes.has(id)) throw new Conflict(`node id ${JSON.stringify(id)} is already used by ${this.nodes.get(id)!.record.url}`);
    const record: NodeRecord = { id, url, draining: false, addedAt: new Date().toISOString() };
    await this.store.put(id, record);
    const node = this.track(record);
    this.log.info({ node: id, url }, 'node added');
    if (this.timer) void this.poll(node);
    return { node, created: true };
  }

  async remove(id: string): Promise<NodeRecord> {
    const node = this.get(id);
    await this.store.delete(id);
    this.untrack(id);
    this.log.info({ node: id, url: node.record.url }, 'node removed');
    return node.record;
  }

  async setDraining(id: string, draining: boolean): Promise<NodeState> {
    const node = this.get(id);
    const record = { ...node.record, draining };
    await this.store.put(id, record);
    node.record = record;
    this.refreshEligible(node);
    this.log.info({ node: id, draining }, draining ? 'node draining' : 'node no longer draining');
    return node;
  }

  /** The node for the next visitor, or undefined when all are down, draining or full. */
  choose(): NodeState | undefined {
    const load = choose(this.loads);
    return load && this.nodes.get(load.id);
  }

  /** Takes a node out of the running until its next successful poll (e.g. its spawn API failed). */
  markDown(id: string, error: string): void {
    const node = this.nodes.get(id);
    if (!node) return;
    if (node.up) this.log.warn({ node: id, url: node.record.url, error }, 'node down');
    node.up = false;
    node.lastError = error;
    this.refreshEligible(node);
  }

  /** A visitor counted as sent took no room after all (the node refused that client alone). */
  unsend(id: string): void {
    const load = this.nodes.get(id)?.load;
    if (load) unsend(load);
  }

  /** The node refused a visitor as full: no more until its next poll shows room. */
  markFull(id: string): void {
    const load = this.nodes.get(id)?.load;
    if (load) load.free = load.sent - load.sentAtPoll;
  }

  /** Polls every node now and then every `periodMs`; a poll still running is not doubled. */
  startPolling(periodMs: number, timeoutMs: number): Promise<void> {
    this.statsTimeoutMs = timeoutMs;
    this.timer = setInterval(() => void this.pollAll(), periodMs);
    this.timer.unref();
    return this.pollAll();
  }

  pollAll(): Promise<void> {
    return Promise.all(this.list().map((node) => this.poll(node))).then(() => undefined);
  }

  view(node: NodeState): NodeView {
    const s = node.stats;
    const draining = node.record.draining || s?.draining === true;
    return {
      id: node.record.id,
      url: node.record.url,
      up: node.up,
      draining,
      drained: draining && node.up && (s?.claimed ?? 0) === 0,
      available: s?.available ?? 0,
      capacity: s?.capacity ?? 0,
      room: node.up && s ? freeCapacity(s) : 0,
      remaining: node.load.eligible ? Math.max(0, remaining(node.load)) : 0,
      claimed: s?.claimed,
      waiting: s?.waiting,
      sent: node.load.sent,
      last_poll: node.lastPoll,
      error: node.lastError,
    };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.unwatch?.();
    await this.store.close();
  }

  private async poll(node: NodeState): Promise<void> {
    if (node.polling) return;
    node.polling = true;
    const sentWhenPollLeft = node.load.sent;
    try {
      const res = await fetch(`${node.record.url}/api/stats`, {
        signal: AbortSignal.timeout(this.statsTimeoutMs),
        headers: { accept: 'application/json' },
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`GET /api/stats answered ${res.status}`);
      }
      if (res.headers.get(REDIRECTOR_ID_HEADER) === this.selfId) {
        await res.body?.cancel();
        throw new Error('this URL is this redirector itself, not a node: its visitors would be sent back here');
      }
      const stats = parseStats(await res.json());
      if (this.nodes.get(node.record.id) !== node) return; // removed while polling
      if (!node.up) this.log.info({ node: node.record.id, url: node.record.url }, 'node up');
      node.stats = stats;
      node.up = true;
      node.lastError = undefined;
      recordPoll(node.load, freeCapacity(stats), sentWhenPollLeft);
      this.refreshEligible(node);
    } catch (err) {
      const error = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${this.statsTimeoutMs} ms` : describe(err);
      this.markDown(node.record.id, error);
    } finally {
      node.lastPoll = new Date().toISOString();
      node.polling = false;
    }
  }

  private track(record: NodeRecord): NodeState {
    const known = this.nodes.get(record.id);
    if (known) {
      known.record = record;
      this.refreshEligible(known);
      return known;
    }
    const node: NodeState = { record, load: newLoad(record.id), up: false, stats: undefined, lastPoll: undefined, lastError: 'not polled yet', polling: false };
    this.nodes.set(record.id, node);
    this.loads = [...this.nodes.values()].map((n) => n.load);
    if (this.timer) void this.poll(node);
    return node;
  }

  private untrack(id: string): void {
    if (!this.nodes.delete(id)) return;
    this.loads = [...this.nodes.values()].map((n) => n.load);
  }

  private refreshEligible(node: NodeState): void {
    node.load.eligible = node.up && !node.record.draining && node.stats?.draining !== true;
  }
}

/** fetch's errors hide the useful part (ECONNREFUSED, ...) in `cause`. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}
