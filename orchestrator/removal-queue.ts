/**
 * The one place containers are removed from. Bounded concurrency (this engine once deadlocked when
 * two clients removed the same containers at once), duplicates ignored, and a removal that hangs is
 * abandoned after a timeout and tried again later, so a slow engine never holds up claims or refills.
 */
import type { Logger } from '../shared/log.js';

export interface RemovalQueueOptions {
  concurrency: number;
  timeoutMs: number;
  retryDelayMs: number;
  /** Gives up on a container after this many attempts (it is found again by the next heal pass). */
  maxAttempts: number;
}

export class RemovalQueue {
  private readonly pending: Array<{ key: string; attempt: number }> = [];
  private readonly known = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly remove: (key: string, signal: AbortSignal) => Promise<void>,
    private readonly onRemoved: (key: string, ok: boolean) => void,
    private readonly log: Logger,
    private readonly options: RemovalQueueOptions,
  ) {}

  /** Queues `key` (an engine container id) unless it is already queued or in flight. */
  add(key: string): void {
    if (this.closed || this.known.has(key)) return;
    this.known.add(key);
    this.pending.push({ key, attempt: 1 });
    this.pump();
  }

  get size(): number {
    return this.known.size;
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.pending.length > 0) {
      const job = this.pending.shift()!;
      this.running++;
      void this.runOne(job.key, job.attempt).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.pending.length === 0 && this.timers.size === 0) {
          for (const resolve of this.idleWaiters.splice(0)) resolve();
        }
      });
    }
  }

  private async runOne(key: string, attempt: number): Promise<void> {
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    try {
      await Promise.race([
        this.remove(key, signal),
        new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error(`removal took over ${this.options.timeoutMs} ms`)), { once: true })),
      ]);
      this.known.delete(key);
      this.onRemoved(key, true);
    } catch (err) {
      if (attempt >= this.options.maxAttempts || this.closed) {
        this.log.error({ err, container: key, attempt }, 'giving up removing container; the next heal pass will find it');
        this.known.delete(key);
        this.onRemoved(key, false);
        return;
      }
      this.log.warn({ err, container: key, attempt }, 'container removal failed; retrying later');
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.pending.push({ key, attempt: attempt + 1 });
        this.pump();
      }, this.options.retryDelayMs * attempt);
      this.timers.add(timer);
    }
  }

  /** Resolves once nothing is queued, in flight or waiting for a retry. */
  idle(): Promise<void> {
    if (this.running === 0 && this.pending.length === 0 && this.timers.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retries; removals in flight finish on their own. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
