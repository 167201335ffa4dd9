/**
 * The forwarding engine: node:http's server for visitors, undici's client (one kept-alive
 * connection a request in flight, as node:http's keep-alive agent) for HTTP to targets, and a raw
 * socket relay for WebSocket upgrades once the target's 101 is through (handshake by node:http).
 * Every error path ends in an answer or a closed connection, and a client that goes away aborts
 * its upstream request so no socket is left behind. Weighed against http-proxy-3 and node:http's
 * own client behind this same interface (bench/README.md, "Forwarding engine"): the library drops
 * some upgrade requests unanswered; node:http's client costs about a third more CPU a request.
 */
import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv4, type BlockList, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { buildConnector, Client, errors as undiciErrors, type Dispatcher } from 'undici';
import { BadRequest, HttpError } from '../shared/errors.js';
import { rewriteResponseHeaders, type ResponseRewrite } from './response-rewrite.js';
import type { Target } from './route-service.js';
import { relay } from './socket-relay.js';
import { ClientFrameScanner } from './ws-frames.js';

/** The target answered something that cannot be passed on. */
export class BadGateway extends HttpError {
  constructor(message: string) {
    super(502, message);
  }
}

export interface ForwardOptions {
  /** Add X-Forwarded-For/Proto/Host/Port (CHP's default; off with --no-x-forward). */
  xForward: boolean;
  /** Prepend the target's own path (off with --no-prepend-path). */
  prependPath: boolean;
  /** Keep the route's prefix in the forwarded path (off with --no-include-prefix). */
  includePrefix: boolean;
  /** The route's first segment is the host, not part of the URL. */
  hostRouting: boolean;
  customHeaders: Record<string, string>;
  /** ms to wait for the target; undefined waits as long as the client does. */
  proxyTimeoutMs: number | undefined;
  /** ms of client inactivity after which the request is dropped (CHP's --timeout). */
  clientTimeoutMs: number | undefined;
  /** When set: `Content-Security-Policy: frame-ancestors <this>` and no X-Frame-Options on responses. */
  frameAncestors: string | undefined;
  /** The public port speaks TLS (for X-Forwarded-Proto). */
  publicTls: boolean;
  /** Peers whose X-Forwarded-Proto is believed (--trusted-proxy); undefined: none. */
  trustedProxies: BlockList | undefined;
}

/** The route a request matched, as the forwarder needs it. */
export interface ForwardRoute {
  /** The route's own (clean) path, e.g. `/user/abc`. */
  prefix: string;
  target: Target;
  /** The route's data says `"strip_prefix": true`: the app is served at `/`, not under the prefix. */
  stripPrefix: boolean;
}

/** What a forwarded request reports back: traffic (for last_activity) and failure before any answer. */
export interface ForwardHooks {
  activity(): void;
  /**
   * Nothing was sent to the client yet and nothing will be: the target could not be reached or did
   * not answer in time (a plain Error: 503), or the exchange cannot be relayed (an HttpError: its status).
   */
  failed(err: Error): void;
}

export class ProxyTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`target did not answer within ${ms} ms`);
  }
}

/** Request headers never forwarded as they are: they describe this hop's connection only. */
const HOP_BY_HOP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'proxy-authorization', 'te', 'trailer']);
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer']);

function portOf(req: IncomingMessage, tls: boolean): string {
  const host = req.headers.host;
  const match = host ? /:(\d+)$/.exec(host) : null;
  return match ? match[1]! : tls ? '443' : '80';
}

function appendForwarded(headers: OutgoingHttpHeaders, name: string, value: string): void {
  const existing = headers[name];
  headers[name] = existing ? `${String(existing)},${value}` : value;
}

/** Drops any frame-ancestors directive from an upstream CSP so ours is the one that applies. */
function withoutFrameAncestors(csp: string): string {
  return csp
    .split(';')
    .filter((directive) => !/^\s*frame-ancestors(\s|$)/i.test(directive))
    .join(';')
    .trim();
}

/** The path sent to the target: prefix stripped or not, target path prepended or not (CHP's rules, and strip_prefix per route). */
export function upstreamPath(url: string, route: ForwardRoute, options: ForwardOptions): string {
  const prefix = route.prefix;
  let rest = url;
  if (!options.includePrefix || route.stripPrefix) {
    let segments = 0;
    for (let i = 1; i < prefix.length; i++) if (prefix.charCodeAt(i) === 47) segments++;
    if (prefix.length > 1) segments++;
    if (options.hostRouting && prefix.length > 1) segments--;
    let cut = 0;
    for (let s = 0; s < segments; s++) {
      const slash = url.indexOf('/', cut + 1);
      const query = url.indexOf('?', cut + 1);
      const end = Math.min(slash === -1 ? url.length : slash, query === -1 ? url.length : query);
      cut = end;
      if (end === url.length || end === query) break;
    }
    rest = url.slice(cut);
  }
  if (rest === '' || rest.charCodeAt(0) !== 47) rest = '/' + rest;
  return options.prependPath && route.target.path !== '' ? route.target.path + rest : rest;
}

/** The route's prefix as it appears in the visitor's URL (without the host segment under host routing); undefined for the root. */
function visiblePrefix(prefix: string, hostRouting: boolean): string | undefined {
  const visible = hostRouting ? prefix.slice(prefix.indexOf('/', 1) === -1 ? prefix.length : prefix.indexOf('/', 1)) : prefix;
  return visible.length > 1 ? visible : undefined;
}

/** The IP as BlockList wants it: IPv4-mapped IPv6 addresses as plain IPv4. */
function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return { address: address.slice(7), family: 'ipv4' };
  return { address, family: isIPv4(address) ? 'ipv4' : 'ipv6' };
}

/** The visitor reached us over HTTPS: TLS here, or a trusted front says so in X-Forwarded-Proto. */
export function visitorOnHttps(req: IncomingMessage, options: ForwardOptions): boolean {
  if (options.publicTls) return true;
  if (options.trustedProxies === undefined) return false;
  const proto = req.headers['x-forwarded-proto'];
  if (typeof proto !== 'string') return false;
  // The nearest front appends last: its word is the last entry.
  const comma = proto.lastIndexOf(',');
  if ((comma === -1 ? proto : proto.slice(comma + 1)).trim().toLowerCase() !== 'https') return false;
  const remote = req.socket.remoteAddress;
  if (remote === undefined) return false;
  const { address, family } = plainAddress(remote);
  return options.trustedProxies.check(address, family);
}

/** The header rewrites this response needs, or undefined when there are none. */
function responseRewrite(req: IncomingMessage, route: ForwardRoute, options: ForwardOptions): ResponseRewrite | undefined {
  const prefix = route.stripPrefix ? visiblePrefix(route.prefix, options.hostRouting) : undefined;
  const crossSiteCookies = visitorOnHttps(req, options);
  if (prefix === undefined && !crossSiteCookies) return undefined;
  const origin = route.target.origin;
  return { prefix, targetHost: origin.slice(origin.indexOf('//') + 2), crossSiteCookies };
}

/** The headers sent to the target: hop-by-hop ones dropped, X-Forwarded-* and custom ones added. */
export function forwardedRequestHeaders(req: IncomingMessage, upgrade: boolean, options: ForwardOptions): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const source = req.headers;
  for (const name in source) {
    if (HOP_BY_HOP_REQUEST.has(name)) continue;
    headers[name] = source[name];
  }
  if (upgrade) {
    headers.connection = 'Upgrade';
    headers.upgrade = source.upgrade;
  }
  if (options.xForward) {
    const tls = options.publicTls;
    appendForwarded(headers, 'x-forwarded-for', req.socket.remoteAddress ?? '');
    appendForwarded(headers, 'x-forwarded-port', portOf(req, tls));
    appendForwarded(headers, 'x-forwarded-proto', upgrade ? (tls ? 'wss' : 'ws') : tls ? 'https' : 'http');
    if (!headers['x-forwarded-host'] && source.host) headers['x-forwarded-host'] = source.host;
  }
  const custom = options.customHeaders;
  for (const name in custom) headers[name] = custom[name];
  return headers;
}

/**
 * The target's response headers as a flat [name, value, ...] list: hop-by-hop and (optionally)
 * framing headers removed, Location and Set-Cookie rewritten as the route and the visitor need.
 */
export function relayedResponseHeaders(req: IncomingMessage, raw: readonly string[], route: ForwardRoute, options: ForwardOptions): string[] {
  const out: string[] = [];
  const frameAncestors = options.frameAncestors;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(lower)) continue;
    if (frameAncestors !== undefined) {
      if (lower === 'x-frame-options') continue;
      if (lower === 'content-security-policy') {
        const rest = withoutFrameAncestors(raw[i + 1]!);
        if (rest !== '') out.push(name, rest);
        continue;
      }
    }
    out.push(name, raw[i + 1]!);
  }
  if (frameAncestors !== undefined) out.push('Content-Security-Policy', `frame-ancestors ${frameAncestors}`);
  const rewrite = responseRewrite(req, route, options);
  if (rewrite !== undefined) rewriteResponseHeaders(out, rewrite, req.headers.host);
  return out;
}

/** What the proxy server needs of a forwarding engine. */
export interface Forwarder {
  web(req: IncomingMessage, res: ServerResponse, route: ForwardRoute, hooks: ForwardHooks): void;
  /** Forwards a WebSocket (or any) upgrade. */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: ForwardRoute, hooks: ForwardHooks): void;
  close(): void;
}

/** Request headers undici sets itself from the body it is given (and refuses to be handed). */
const SET_BY_CLIENT = ['transfer-encoding', 'expect'];

/** A request for which undici refuses to build the upstream request: the client's request is at fault. */
function refusedRequest(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
}

/** The socket failed under a request before any answer: on a kept-alive connection the target had just closed. */
function socketFailed(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

/** undici's response parser refused what the target sent. */
function unparsable(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
}

/**
 * Kept-alive upstream connections: one undici Client (one connection, no pipelining) a request in
 * flight, idle ones kept per target origin and reused last-in first-out, as node:http's keep-alive
 * agent does. (undici's own Pool opens connections ahead of need and leaves them idle.)
 */
class UpstreamConnections {
  private readonly idle = new Map<string, Client[]>();
  /** One connector for every connection, so TLS sessions to a target are resumed across them. */
  private readonly connect = buildConnector({});

  constructor(private readonly timeoutMs: number) {}

  take(target: Target): { origin: string; client: Client } {
    const origin = target.origin;
    const client = this.idle.get(origin)?.pop();
    if (client !== undefined) return { origin, client };
    const settings = { pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs };
    const fresh = target.socketPath === undefined
      ? new Client(origin, { ...settings, connect: this.connect })
      : new Client('http://localhost', { ...settings, socketPath: target.socketPath });
    // The target closed the connection (its idle timeout, the container gone): nothing left to reuse.
    fresh.on('disconnect', () => this.forget(origin, fresh));
    return { origin, client: fresh };
  }

  /** A request ended cleanly: its connection waits for the next request to this target. */
  giveBack(origin: string, client: Client): void {
    if (client.closed || client.destroyed) return;
    let idle = this.idle.get(origin);
    if (idle === undefined) this.idle.set(origin, (idle = []));
    idle.push(client);
  }

  /** Closes a connection whose exchange failed or was cut. */
  discard(client: Client): void {
    void client.destroy();
  }

  /** An idle connection the target closed leaves the list; one in use is dealt with by its exchange. */
  private forget(origin: string, client: Client): void {
    const idle = this.idle.get(origin);
    const at = idle?.indexOf(client) ?? -1;
    if (at === -1) return;
    idle!.splice(at, 1);
    if (idle!.length === 0) this.idle.delete(origin);
    void client.destroy();
  }

  close(): void {
    for (const idle of this.idle.values()) for (const client of idle) void client.destroy();
    this.idle.clear();
  }
}

/**
 * HTTP through undici's client (its dispatch API), WebSocket handshakes through node:http then a
 * raw relay. undici's client costs far less than node:http's per request (bench/README.md,
 * "Forwarding engine"); node:http's server side is kept for the visitors.
 */
export class NodeForwarder implements Forwarder {
  private readonly connections: UpstreamConnections;

  constructor(private readonly options: ForwardOptions) {
    this.connections = new UpstreamConnections(options.proxyTimeoutMs ?? 0);
  }

  private send(target: Target, method: string, path: string, headers: OutgoingHttpHeaders): ClientRequest {
    const options = { hostname: target.hostname, port: target.port, socketPath: target.socketPath, method, path, headers, agent: false as const };
    const upstream = target.https ? httpsRequest(options) : httpRequest(options);
    const ms = this.options.proxyTimeoutMs;
    if (ms !== undefined) upstream.setTimeout(ms, () => upstream.destroy(new ProxyTimeoutError(ms)));
    return upstream;
  }

  web(req: IncomingMessage, res: ServerResponse, route: ForwardRoute, hooks: ForwardHooks): void {
    const method = req.method ?? 'GET';
    const path = upstreamPath(req.url ?? '/', route, this.options);
    const headers = forwardedRequestHeaders(req, false, this.options);
    for (const name of SET_BY_CLIENT) delete headers[name];
    const bodyless = req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0');
    const options = this.options;
    const connections = this.connections;
    let abort: ((err?: Error) => void) | undefined;
    /** Why the exchange must end (client gone, client idle): applied as soon as undici hands over its abort. */
    let cancelled: Error | undefined;
    let answered = false;
    /**
     * Whether this exchange is a person's activity: as in configurable-http-proxy, only an answer
     * below 300 counts, so a stale tab polling into 404s, or redirected to a login, looks idle.
     */
    let counts = false;
    /** The client's answer is settled here (an error page for an answer node:http cannot repeat): undici's error after it changes nothing. */
    let settled = false;

    const attempt = (retry: boolean) => {
      const handler: Dispatcher.DispatchHandlers = {
        onConnect(abortRequest) {
          abort = abortRequest;
          if (cancelled !== undefined) abortRequest(cancelled);
        },
        onHeaders(statusCode, rawHeaders, resume, statusText) {
          // 1xx informational answers (103 Early Hints, a stray 100) are not relayed: node:http's server would end the exchange on them.
          if (statusCode < 200) return true;
          answered = true;
          if (res.destroyed || res.headersSent) {
            abort?.();
            return false;
          }
          counts = statusCode < 300;
          if (counts) hooks.activity();
          const raw = new Array<string>(rawHeaders.length);
          for (let i = 0; i < rawHeaders.length; i++) raw[i] = rawHeaders[i]!.toString('latin1');
          try {
            res.writeHead(statusCode, statusText || undefined, relayedResponseHeaders(req, raw, route, options));
          } catch (err) {
            // Node refuses to repeat some header the target sent (invalid characters): a bad gateway,
            // answered before the abort, whose error then finds the exchange settled.
            settled = true;
            // The failed writeHead kept the target's reason phrase; the error page must not reuse it.
            res.statusMessage = '';
            hooks.failed(new BadGateway(`the target's response cannot be relayed: ${(err as Error).message}`));
            abort?.();
            return false;
          }
          res.on('drain', resume);
          return true;
        },
        onData(chunk) {
          return res.write(chunk);
        },
        onComplete() {
          connections.giveBack(origin, client);
          res.end();
          if (counts) hooks.activity();
        },
        onError(err) {
          connections.discard(client);
          if (settled) return;
          if (answered || res.destroyed) {
            // The target died mid-response (or the client left): close the client's connection now rather than leave it waiting.
            res.destroy();
            return;
          }
          if (refusedRequest(err)) {
            hooks.failed(new BadRequest(`cannot forward this request: ${err.message}`));
            return;
          }
          // A kept-alive socket the target closed while idle: safe to retry a request without a body once.
          if (retry && bodyless && cancelled === undefined && socketFailed(err)) {
            attempt(false);
            return;
          }
          if (cancelled !== undefined) hooks.failed(cancelled);
          else if (unparsable(err)) hooks.failed(new BadGateway(`the target's response cannot be parsed: ${err.message}`));
          else if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) hooks.failed(new ProxyTimeoutError(options.proxyTimeoutMs ?? 0));
          else hooks.failed(err);
        },
      };
      abort = undefined;
      const { origin, client } = connections.take(route.target);
      client.dispatch({ method: method as Dispatcher.HttpMethod, path, headers: headers as IncomingHttpHeaders, body: bodyless ? null : req }, handler);
    };
    attempt(true);
    const cancel = (why: Error) => {
      cancelled = why;
      abort?.(why);
    };
    // The client went away (or timed out) before the end: abort upstream so no socket leaks.
    res.on('close', () => {
      if (!res.writableFinished) cancel(new Error('the client went away'));
    });
    const idleMs = options.clientTimeoutMs;
    if (idleMs !== undefined) {
      res.setTimeout(idleMs, () => {
        if (answered) res.destroy();
        else cancel(new ProxyTimeoutError(idleMs));
      });
    }
  }

  /** Handshake through node:http, then a raw two-way pipe. */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: ForwardRoute, hooks: ForwardHooks): void {
    const target = route.target;
    const path = upstreamPath(req.url ?? '/', route, this.options);
    let upstream: ClientRequest;
    try {
      upstream = this.send(target, req.method ?? 'GET', path, forwardedRequestHeaders(req, true, this.options));
    } catch (err) {
      hooks.failed(new BadRequest(`cannot forward this request: ${(err as Error).message}`));
      return;
    }
    let upgraded = false;
    const abortHandshake = () => {
      if (!upgraded) upstream.destroy();
    };
    socket.on('error', abortHandshake);
    socket.on('close', abortHandshake);
    if (head.length > 0) socket.unshift(head);

    upstream.on('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
      upgraded = true;
      if (socket.destroyed) {
        upstreamSocket.destroy();
        return;
      }
      // The standard reason phrase, not the target's: the phrase means nothing, and one with control
      // characters would go to the client as it came.
      let text = 'HTTP/1.1 101 Switching Protocols\r\n';
      const raw = upstreamRes.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
      socket.write(text + '\r\n');
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      hooks.activity();
      const closeBoth = () => {
        socket.destroy();
        upstreamSocket.destroy();
      };
      socket.on('error', closeBoth);
      upstreamSocket.on('error', closeBoth);
      socket.on('close', closeBoth);
      upstreamSocket.on('close', closeBoth);
      // Frames go out as they come: no Nagle delay on either side, no idle timeout on a live socket.
      upstreamSocket.setNoDelay(true);
      upstreamSocket.setTimeout(0);
      (socket as Socket).setNoDelay?.(true);
      (socket as Socket).setTimeout?.(0);
      // Activity is what the visitor sends, pings and pongs aside: frame headers only, payloads skipped.
      const frames = String(req.headers.upgrade).toLowerCase() === 'websocket' ? new ClientFrameScanner() : undefined;
      relay(socket, upstreamSocket, (chunk) => {
        if (frames === undefined || frames.scan(chunk)) hooks.activity();
      });
      relay(upstreamSocket, socket);
    });

    // The target answered without upgrading: relay that answer, then close.
    upstream.on('response', (upstreamRes) => {
      upgraded = true;
      if (socket.destroyed) {
        upstreamRes.destroy();
        return;
      }
      let text = `HTTP/1.1 ${upstreamRes.statusCode} ${STATUS_CODES[upstreamRes.statusCode!] ?? ''}\r\n`;
      const headers = relayedResponseHeaders(req, upstreamRes.rawHeaders, route, this.options);
      for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      socket.write(text + 'Connection: close\r\n\r\n');
      upstreamRes.pipe(socket);
      upstreamRes.on('close', () => {
        if (upstreamRes.complete) (socket as Socket).destroySoon();
        else socket.destroy();
      });
    });

    upstream.on('error', (err) => {
      if (upgraded) return;
      // As on the HTTP path: an answer that cannot be parsed is the target's fault (502), not its absence (503).
      hooks.failed(unparsable(err) ? new BadGateway(`the target's response cannot be parsed: ${err.message}`) : err);
    });
    upstream.end();
  }

  close(): void {
    this.connections.close();
  }
}
