import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { ConfigError } from '../errors.js';
import { redactedStoreUrl, type RecordStore, type Unsubscribe } from '../store.js';

function newClient(url: string, startupWaitMs: number, waiting?: (reason: string) => void) {
  let connected = false;
  let told = false;
  const giveUpAt = Date.now() + startupWaitMs;
  const client = createClient({
    url,
    // While disconnected, commands fail at once (a clear 503 upstream) instead of queueing: a queued
    // command would run after a reconnect, before the restart check, against a restarted server.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 5000,
      // Reconnect forever once we have been connected. Before that, retry only for a bounded
      // start-up wait (Redis often starts beside us), so a wrong URL is one clear error, not a hang.
      reconnectStrategy: (retries: number, cause: Error) => {
        if (connected) return Math.min(retries * 100, 2000);
        if (Date.now() >= giveUpAt) return cause;
        if (!told) waiting?.(cause.message);
        told = true;
        return Math.min(100 + retries * 100, 1000);
      },
    },
  });
  client.on('ready', () => {
    connected = true;
  });
  return client;
}
type Client = ReturnType<typeof newClient>;

interface ChangeMessage {
  origin: string;
  id: string;
  value: unknown;
}

/**
 * Records in one Redis hash (`nbpool:<namespace>`); every write is also published on
 * `nbpool:<namespace>:changes` so other processes sharing the hash see it at once.
 */
export class RedisStore<T> implements RecordStore<T> {
  private readonly origin = randomUUID();
  private subscriber: Client | undefined;
  private closing: Promise<void> | undefined;
  /** The server's run_id: a new one after a reconnect means Redis restarted. */
  private runId = '';
  /** The restart check after a reconnect; every command waits for it. */
  private restartCheck: Promise<void> = Promise.resolve();
  private readonly restores: Array<() => Iterable<[string, T]>> = [];

  private constructor(
    private readonly client: Client,
    private readonly key: string,
  ) {
    client.on('ready', () => {
      this.restartCheck = this.checkRestart().catch(() => undefined);
    });
  }

  private async serverRunId(): Promise<string> {
    return /run_id:(\w+)/.exec(await this.client.info('server'))?.[1] ?? '';
  }

  /** After a reconnect: a restarted server holding none of our records gets them written back. */
  private async checkRestart(): Promise<void> {
    const runId = await this.serverRunId();
    if (runId === this.runId) return;
    this.runId = runId;
    if ((await this.client.exists(this.key)) === 0) for (const records of this.restores) await this.write(records());
  }

  /**
   * Every command waits for the restart check, then fails at once while Redis is away. node-redis
   * queues MULTI transactions even with `disableOfflineQueue` and sends them on reconnect ahead of
   * the restart check: a write queued that way would land in a restarted, empty Redis first, and the
   * check would then find our hash present and skip writing the table back.
   */
  private async connected(): Promise<void> {
    await this.restartCheck;
    if (!this.client.isReady) throw new Error('Redis is not connected');
  }

  onEmptyRestart(records: () => Iterable<[string, T]>): void {
    this.restores.push(records);
  }

  static async open<T>(url: string, namespace: string, startupWaitMs: number, waiting?: (reason: string) => void): Promise<RedisStore<T>> {
    const client = newClient(url, startupWaitMs, waiting);
    // Without a listener node-redis would throw on every connection error; it reconnects by itself.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      throw new ConfigError(`cannot connect to Redis at ${redactedStoreUrl(url)}: ${(err as Error).message}`);
    }
    const store = new RedisStore<T>(client, `nbpool:${namespace}`);
    store.runId = await store.serverRunId();
    return store;
  }

  private get channel(): string {
    return `${this.key}:changes`;
  }

  async get(id: string): Promise<T | undefined> {
    await this.connected();
    const text = await this.client.hGet(this.key, id);
    return text == null ? undefined : (JSON.parse(text) as T);
  }

  async all(): Promise<Map<string, T>> {
    await this.connected();
    const hash = await this.client.hGetAll(this.key);
    const records = new Map<string, T>();
    for (const [id, text] of Object.entries(hash)) {
      try {
        records.set(id, JSON.parse(text) as T);
      } catch {
        // A record someone else wrote by hand and broke must not hide the others.
      }
    }
    return records;
  }

  async put(id: string, value: T): Promise<void> {
    await this.putMany([[id, value]]);
  }

  async putMany(entries: Iterable<[string, T]>): Promise<void> {
    await this.connected();
    await this.write(entries);
  }

  private async write(entries: Iterable<[string, T]>): Promise<void> {
    const multi = this.client.multi();
    let count = 0;
    for (const [id, value] of entries) {
      multi.hSet(this.key, id, JSON.stringify(value));
      multi.publish(this.channel, JSON.stringify({ origin: this.origin, id, value } satisfies ChangeMessage));
      count++;
    }
    if (count > 0) await multi.exec();
  }

  async delete(id: string): Promise<boolean> {
    await this.connected();
    const removed = await this.client.hDel(this.key, id);
    if (removed > 0) await this.client.publish(this.channel, JSON.stringify({ origin: this.origin, id, value: null } satisfies ChangeMessage));
    return removed > 0;
  }

  async watch(onChange: (id: string, value: T | undefined) => void): Promise<Unsubscribe> {
    if (!this.subscriber) {
      this.subscriber = this.client.duplicate();
      this.subscriber.on('error', () => {});
      await this.subscriber.connect();
    }
    const listener = (message: string) => {
      let change: ChangeMessage;
      try {
        change = JSON.parse(message) as ChangeMessage;
      } catch {
        return;
      }
      if (change.origin === this.origin || typeof change.id !== 'string') return;
      onChange(change.id, change.value === null ? undefined : (change.value as T));
    };
    await this.subscriber.subscribe(this.channel, listener);
    return async () => {
      await this.subscriber?.unsubscribe(this.channel, listener);
    };
  }

  /** Idempotent: a second close waits for the first instead of quitting a closed client (which hangs). */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([this.subscriber?.quit(), this.client.quit()]).then(() => undefined);
    return this.closing;
  }
}
