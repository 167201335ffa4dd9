/**
 * Whether the orchestrator may trust what it knows of the container engine. Two signals can say the
 * engine is gone: its event stream broke (backend `watch`), or a call failed to connect at all
 * (a refused or reset connection; the engine closes its API before its event stream when it stops,
 * so calls usually notice first). The link is down while either says so, and up again only when
 * both have recovered: the stream reconnected, and a check call (`probe`) went through.
 * `lost` and `restored` are called once per outage, so an operator reads one line each way.
 */

/** Errors that mean "no engine there", not "the engine refused this request". */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN']);

export function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  // An HTTP answer (dockerode's statusCode) is the engine speaking: never a lost connection.
  if ('statusCode' in err && typeof (err as { statusCode: unknown }).statusCode === 'number') return false;
  const code = (err as { code?: unknown }).code;
  return (typeof code === 'string' && CONNECTION_ERRORS.has(code)) || /socket hang up/.test((err as Error).message ?? '');
}

export type EngineSignal = 'events' | 'calls';

export interface EngineLinkHandlers {
  lost(err: Error): void;
  restored(): void;
}

export class EngineLink {
  private readonly down = new Set<EngineSignal>();

  constructor(private readonly handlers: EngineLinkHandlers) {}

  get trusted(): boolean {
    return this.down.size === 0;
  }

  /** Whether `signal` currently says the engine is gone. */
  isDown(signal: EngineSignal): boolean {
    return this.down.has(signal);
  }

  fail(signal: EngineSignal, err: Error): void {
    const wasTrusted = this.trusted;
    this.down.add(signal);
    if (wasTrusted) this.handlers.lost(err);
  }

  recover(signal: EngineSignal): void {
    if (!this.down.delete(signal)) return;
    if (this.trusted) this.handlers.restored();
  }
}
