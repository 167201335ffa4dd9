/**
 * The one queue of engine work that is off the claim path: removals and claim markers. Bounded
 * concurrency (this engine once deadlocked when two clients removed the same containers at once),
 * duplicates ignored by key, and a job that hangs is abandoned after a timeout and tried again later,
 * so a slow engine never holds up claims or refills.
 */
import type { Logger } from '../shared/log.js';

export interface EngineQueueOptions {
  concurrency: number;
  timeoutMs: number;
  retryDelayMs: number;
  /** Gives up on a job after this many attempts (a removal is found again by the next reconcile). */
  maxAttempts: number;
  /** A failure the caller has already told the operator about (the engine is gone): logged at debug. */
  alreadyTold?: (err: unknown) => boolean;
}

export interface EngineJob {
  /** What the job does; it must honour the signal (aborted at the timeout). */
  run(signal: AbortSignal): Promise<void>;
  /** Called once, when the job succeeded or was given up. */
  done?(ok: boolean): void;
  /** Jumps the line (claim markers: a crash before they land could hand a container out twice). */
  urgent?: boolean;
}

interface Queued {
  key: string;
  job: EngineJob;
  attempt: number;
}

export class EngineQueue {
  private readonly pending: Queued[] = [];
  private readonly known = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly options: EngineQueueOptions,
  ) {}

  /** Queues a job under `key` (e.g. `remove:<container id>`) unless that key is queued or in flight. */
  add(key: string, job: EngineJob): void {
    if (this.closed || this.known.has(key)) return;
    this.known.add(key);
    const queued = { key, job, attempt: 1 };
    if (job.urgent) this.pending.unshift(queued);
    else this.pending.push(queued);
    this.pump();
  }

  get size(): number {
    return this.known.size;
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.pending.length > 0) {
      const queued = this.pending.shift()!;
      this.running++;
      void this.runOne(queued).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.pending.length === 0 && this.timers.size === 0) {
          for (const resolve of this.idleWaiters.splice(0)) resolve();
        }
      });
    }
  }

  private async runOne(queued: Queued): Promise<void> {
    const { key, job, attempt } = queued;
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    try {
      await Promise.race([
        job.run(signal),
        new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error(`took over ${this.options.timeoutMs} ms`)), { once: true })),
      ]);
      this.known.delete(key);
      job.done?.(true);
    } catch (err) {
      if (attempt >= this.options.maxAttempts || this.closed) {
        this.log[this.options.alreadyTold?.(err) ? 'debug' : 'error']({ err, job: key, attempt }, 'giving up an engine job; the next reconcile pass finds what it left');
        this.known.delete(key);
        job.done?.(false);
        return;
      }
      this.log[this.options.alreadyTold?.(err) ? 'debug' : 'warn']({ err, job: key, attempt }, 'engine job failed; retrying later');
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.pending.push({ key, job, attempt: attempt + 1 });
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

  /** Stops retries; jobs in flight finish on their own. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
