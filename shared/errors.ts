/**
 * Typed errors. Cores throw these; thin HTTP handlers map them to status codes with `statusOf`,
 * so a client's mistake is always a 4xx with a clear message and never a 500.
 */
import type { ClientLimitReason } from './types.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    /** Fields added to the JSON answer next to `status` and `message`, for programs that read it. */
    readonly details: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequest extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

export class Forbidden extends HttpError {
  constructor(message = 'forbidden: missing or wrong token') {
    super(403, message);
  }
}

export class NotFound extends HttpError {
  constructor(message: string) {
    super(404, message);
  }
}

export class MethodNotAllowed extends HttpError {
  constructor(allowed: readonly string[]) {
    super(405, `method not allowed; use ${allowed.join(', ')}`, { Allow: allowed.join(', ') });
  }
}

export class Conflict extends HttpError {
  constructor(message: string) {
    super(409, message);
  }
}

/** Something that existed for a while and no longer does (an expired ticket). */
export class Gone extends HttpError {
  constructor(message: string, headers: Record<string, string> = {}) {
    super(410, message, headers);
  }
}

export class PayloadTooLarge extends HttpError {
  constructor(limit: number) {
    super(413, `request body larger than ${limit} bytes`);
  }
}

/**
 * Capacity is exhausted for now, or (with a `reason`) this client has had its share;
 * `retryAfterSeconds` tells the client when to come back.
 */
export class TooManyRequests extends HttpError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    reason?: ClientLimitReason,
  ) {
    super(429, message, { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) }, reason ? { reason } : {});
  }
}

export class ServiceUnavailable extends HttpError {
  constructor(message: string, retryAfterSeconds?: number) {
    super(503, message, retryAfterSeconds === undefined ? {} : { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}

/** The client went away before its answer (nginx's 499): nothing can be sent, and it is nobody's fault here. */
export class ClientGone extends HttpError {
  constructor(message: string) {
    super(499, message);
  }
}

/** Bad configuration (flags, environment, config file): the program prints it in one line and exits 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The status an error maps to: its own for HttpError, 500 for anything unexpected. */
export function statusOf(err: unknown): number {
  return err instanceof HttpError ? err.status : 500;
}
