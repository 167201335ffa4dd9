/**
 * The programs' HTTP APIs on koa + @koa/router: one way to build an app and the middleware every
 * API shares (request log, typed errors to JSON or HTML, token auth, CORS, JSON bodies with a size
 * limit, 405 for a known path asked with another method, /metrics, HTML pages and redirects).
 *
 * Each server declares its routes in one place and composes them with `apiApp`. The proxy's public
 * data path never goes through here: koa is for the APIs and visitor pages only.
 */
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import Koa from 'koa';
import type { Layer, Router } from '@koa/router';
import type { Registry } from 'prom-client';
import { BadRequest, Forbidden, HttpError, MethodNotAllowed, NotFound, statusOf } from './errors.js';
import { decodePath, hasToken, parseJsonObject, readBody } from './http.js';
import type { Logger } from './log.js';

export type Middleware = Koa.Middleware;
export type Context = Koa.ParameterizedContext;

declare module 'koa' {
  interface Request {
    /** The parsed JSON object, set by `jsonBody`. */
    body?: Record<string, unknown>;
  }
}

/** What an app is composed of: middleware, or a router's routes. */
export type AppPart = Middleware | ReturnType<Router['routes']>;

/** A koa app: request log, typed errors to JSON, then `parts` in order. */
export function apiApp(log: Logger, ...parts: AppPart[]): Koa {
  const app = new Koa();
  // Errors are answered by `errors` below; what reaches koa itself is a socket failing mid-reply.
  app.on('error', (err: Error) => log.debug({ err: err.message }, 'response failed'));
  app.use(requestLog(log));
  app.use(errors(log));
  app.use(originForm);
  // A router's routes take a context the router itself completes (params, matched).
  for (const part of parts) app.use(part as Middleware);
  return app;
}

/** A node:http server answering with `app`. */
export function serverFor(app: Koa): Server {
  return createServer(app.callback());
}

/** One debug line per request; refusals for a missing or wrong token at info, for the operator. */
function requestLog(log: Logger): Middleware {
  const entry = (ctx: Context, started: number) => ({ method: ctx.method, url: ctx.url.slice(0, 200), status: ctx.status, ms: Math.round((performance.now() - started) * 100) / 100 });
  return async (ctx, next) => {
    const started = performance.now();
    // On the claim path: nothing is built for a line the log level drops.
    const debug = log.isLevelEnabled('debug');
    await next();
    if (ctx.status === 403) log.info(entry(ctx, started), 'request refused: missing or wrong token');
    else if (debug) log.debug(entry(ctx, started), 'request');
  };
}

/**
 * An absolute-form request target (`GET http://host/path?q`) is reduced to its path and query, so
 * routes and handlers only ever see `/path?q`; a target that is neither is a 400.
 */
const originForm: Middleware = (ctx, next) => {
  if (ctx.url.charCodeAt(0) !== 47 /* / */) {
    let url: URL;
    try {
      url = new URL(ctx.url);
    } catch {
      throw new BadRequest(`bad request target ${JSON.stringify(ctx.url.slice(0, 200))}`);
    }
    ctx.url = url.pathname + url.search;
  }
  return next();
};

/**
 * Typed errors to their status, headers and a JSON `{status, message}`; anything else is a 500,
 * logged with its stack. Typed errors are answers (a full pool, a draining node, a client gone),
 * said to the client and counted where they arise, not logged again here as failures.
 */
function errors(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const status = statusOf(err);
      if (!(err instanceof HttpError)) log.error({ err, method: ctx.method, url: ctx.url.slice(0, 200) }, 'request failed');
      if (ctx.headerSent || !ctx.writable) {
        ctx.res.destroy();
        return;
      }
      if (err instanceof HttpError) ctx.set(err.headers);
      ctx.status = status;
      ctx.body = err instanceof HttpError ? { status, message: err.message, ...err.details } : { status, message: 'internal error' };
    }
  };
}

/**
 * For visitor pages: typed errors that `render` turns into a page are answered as HTML (the status
 * and headers it gives); the others go on to the JSON answer.
 */
export function htmlErrors(render: (err: HttpError, ctx: Context) => { status: number; html: string; headers?: Record<string, string> } | undefined): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const page = err instanceof HttpError ? render(err, ctx) : undefined;
      if (!page) throw err;
      sendHtml(ctx, page.status, page.html, page.headers);
    }
  };
}

/** `Authorization: token <t>` (or Bearer) must carry `token`; 403 otherwise. */
export function requireToken(token: string | undefined): Middleware {
  return (ctx, next) => {
    if (!hasToken(ctx.req, token)) throw new Forbidden();
    return next();
  };
}

/**
 * For APIs whose routes take parameters from the path: malformed percent-encoding is a 400 (the
 * router alone would hand the raw text on as if it were a name).
 */
export const wellFormedPath: Middleware = (ctx, next) => {
  decodePath(ctx.path);
  return next();
};

export interface CorsOptions {
  /** Access-Control-Allow-Origin; empty: no CORS headers at all. */
  origin: string;
  /** The paths that take part (all by default). */
  paths?: RegExp;
  methods: string;
  headers: string;
  maxAgeSeconds?: number;
}

/**
 * CORS as tmpnb sends it: the headers on every answer (errors included), and a preflight
 * (OPTIONS) answered 204 here. A specific origin adds `Vary: Origin` for caches.
 */
export function cors({ origin, paths, methods, headers, maxAgeSeconds = 600 }: CorsOptions): Middleware {
  if (!origin) return (_ctx, next) => next();
  const set: Record<string, string> = {
    'Access-Control-Allow-Origin': origin,
    'Access-Control-Allow-Methods': methods,
    'Access-Control-Allow-Headers': headers,
    'Access-Control-Max-Age': String(maxAgeSeconds),
    ...(origin === '*' ? {} : { Vary: 'Origin' }),
  };
  return (ctx, next) => {
    if (paths && !paths.test(ctx.path)) return next();
    ctx.set(set);
    if (ctx.method !== 'OPTIONS') return next();
    ctx.status = 204;
    return undefined;
  };
}

/**
 * Reads the body (up to `limit` bytes, 413 beyond) as a JSON object into `ctx.request.body`; bad
 * JSON is a 400. With `emptyIsObject` an empty body reads as `{}`.
 */
export function jsonBody({ limit, emptyIsObject = false, keys }: { limit?: number; emptyIsObject?: boolean; keys?: readonly string[] } = {}): Middleware {
  return async (ctx, next) => {
    const text = await readBody(ctx.req, limit);
    const body = emptyIsObject && text.trim() === '' ? {} : parseJsonObject(text);
    // A key the handler does not read was meant to do something: taking it silently would mislead.
    const unknown = keys && Object.keys(body).find((key) => !keys.includes(key));
    if (unknown !== undefined) {
      throw new BadRequest(`unknown key ${JSON.stringify(unknown)}; ${keys!.length ? `this takes ${keys!.map((k) => JSON.stringify(k)).join(', ')}` : 'this takes no body'}`);
    }
    ctx.request.body = body;
    await next();
  };
}

/**
 * After a router: a path that matched a route but not with this method is a 405 naming the methods
 * it takes (HEAD goes with GET and is not listed).
 */
export function methodNotAllowed(): Middleware {
  return (ctx, next) => {
    const matched = (ctx as { matched?: Layer[] }).matched ?? [];
    const allowed = new Set(matched.flatMap((layer) => layer.methods).filter((m) => m !== 'HEAD'));
    if (allowed.size > 0) throw new MethodNotAllowed([...allowed]);
    return next();
  };
}

/** The last part of an app: nothing here, with a message saying what is. */
export function notFound(message: (ctx: Context) => string): Middleware {
  return (ctx) => {
    throw new NotFound(message(ctx));
  };
}

/** GET /metrics: the registry's Prometheus text. */
export function metricsRoute(registry: Registry): Middleware {
  return async (ctx) => {
    const text = await registry.metrics();
    ctx.type = registry.contentType;
    ctx.body = text;
  };
}

/** An HTML answer that no cache keeps. */
export function sendHtml(ctx: Context, status: number, html: string, headers: Record<string, string> = {}): void {
  ctx.set(headers);
  ctx.set('Cache-Control', 'no-store');
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = html;
}

/** A page that never changes (rendered once): GET and HEAD. */
export function staticPage(html: string): Middleware {
  return (ctx) => sendHtml(ctx, 200, html);
}

/** An answer with no body and `Content-Length: 0` (koa would turn a null body into a 204). */
export function emptyReply(ctx: Context, status: number): void {
  ctx.body = null;
  ctx.status = status;
  ctx.length = 0;
}

/**
 * Aborted when the client hangs up before its answer is sent: for handlers that wait (a place in
 * line), so nothing is done for a caller who is gone. (A request's own 'close' fires once its body
 * is read, so the response's tells.)
 */
export function hangUpSignal(ctx: Context): AbortSignal {
  const controller = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** 302 to `location` with no body, never cached. */
export function redirect(ctx: Context, location: string, headers: Record<string, string> = {}): void {
  ctx.set(headers);
  ctx.set('Location', location);
  ctx.set('Cache-Control', 'no-store');
  emptyReply(ctx, 302);
}
