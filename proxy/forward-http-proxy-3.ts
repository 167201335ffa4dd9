/**
 * http-proxy-3 (configurable-http-proxy 5's engine) behind the same Forwarder interface, route
 * table, activity tracking and header policy as NodeForwarder, so the two can be measured side by
 * side (bench/proxy.ts). The library routes nothing and sets no headers of its own here: we hand it
 * the upstream path and our policy's request headers, and rewrite its response headers by our
 * policy before it copies them.
 */
import { Agent as HttpAgent, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyServer } from 'http-proxy-3';
import { BadRequest } from '../shared/errors.js';
import { forwardedRequestHeaders, ProxyTimeoutError, relayedResponseHeaders, upstreamPath, type ForwardHooks, type ForwardOptions, type Forwarder } from './forward.js';
import type { Target } from './route-service.js';

/** A flat [name, value, ...] list as a header object, repeated names as arrays (Set-Cookie). */
function headerObject(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  }
  return out;
}

export class HttpProxy3Forwarder implements Forwarder {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
  private readonly proxy = new ProxyServer({ xfwd: false, prependPath: false, secure: false, ws: true });
  /** The hooks of each request in flight, for the library's server-wide events. */
  private readonly hooks = new WeakMap<IncomingMessage, ForwardHooks>();
  /** The client's own Connection header (its request headers are replaced by what goes upstream). */
  private readonly clientConnection = new WeakMap<IncomingMessage, string | undefined>();
  /** The upstream request of each request in flight, to abort on our client timeout. */
  private readonly upstream = new WeakMap<IncomingMessage, ClientRequest>();
  /** Upgrades the target accepted: a later error closes the socket rather than answering on it. */
  private readonly upgraded = new WeakSet<IncomingMessage>();

  constructor(private readonly options: ForwardOptions) {
    this.proxy.on('proxyRes', (proxyRes, req, res) => {
      this.hooks.get(req)?.activity();
      proxyRes.headers = headerObject(relayedResponseHeaders(proxyRes.rawHeaders, this.options));
      // The library answers with the Connection header it finds on the request: the client's, not ours.
      const connection = this.clientConnection.get(req);
      if (connection !== undefined) proxyRes.headers.connection = connection;
      proxyRes.on('end', () => this.hooks.get(req)?.activity());
      // Not done by the library: the target died mid-response, so close the client's connection
      // rather than leave it waiting for the rest forever.
      proxyRes.on('close', () => {
        if (!proxyRes.complete) res.destroy();
      });
    });
    this.proxy.on('proxyReq', (proxyReq, req) => this.upstream.set(req, proxyReq));
    this.proxy.on('proxyReqWs', (proxyReq, req, socket) => {
      proxyReq.on('upgrade', (_res, proxySocket: Socket) => {
        this.upgraded.add(req);
        const hooks = this.hooks.get(req);
        if (!hooks) return;
        hooks.activity();
        // After the library's own 'upgrade' listener has piped the sockets: a 'data' listener added
        // before that starts the flow too early and the first frames never reach the pipe.
        process.nextTick(() => {
          socket.on('data', hooks.activity);
          proxySocket.on('data', hooks.activity);
        });
      });
    });
    // Errors without a per-call callback (none expected): never let them crash the process.
    this.proxy.on('error', () => {});
  }

  /** Rewrites the request the library will copy: our upstream path and our request headers. */
  private prepare(req: IncomingMessage, prefix: string, target: Target, upgrade: boolean): OutgoingHttpHeaders {
    const headers = forwardedRequestHeaders(req, upgrade, this.options);
    req.url = upstreamPath(req.url ?? '/', prefix, target, this.options);
    return headers;
  }

  private targetOf(target: Target) {
    return { protocol: target.https ? 'https:' : 'http:', host: target.hostname, hostname: target.hostname, port: target.port };
  }

  web(req: IncomingMessage, res: ServerResponse, prefix: string, target: Target, hooks: ForwardHooks): void {
    const headers = this.prepare(req, prefix, target, false);
    this.clientConnection.set(req, req.headers.connection);
    req.headers = headers as IncomingMessage['headers'];
    this.hooks.set(req, hooks);
    try {
      this.proxy.web(
        req,
        res,
        {
          target: this.targetOf(target),
          agent: target.https ? this.httpsAgent : this.httpAgent,
          proxyTimeout: this.options.proxyTimeoutMs,
        },
        (err) => {
          if (res.headersSent || res.destroyed) res.destroy();
          else hooks.failed(err);
        },
      );
    } catch (err) {
      // node:http refuses what its own parser let in (e.g. some bytes in the path): the client's request is at fault.
      hooks.failed(new BadRequest(`cannot forward this request: ${(err as Error).message}`));
      return;
    }
    // CHP's --timeout as NodeForwarder applies it (the library's own drops the connection unanswered).
    const idleMs = this.options.clientTimeoutMs;
    if (idleMs !== undefined) {
      res.setTimeout(idleMs, () => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        this.upstream.get(req)?.destroy();
        hooks.failed(new ProxyTimeoutError(idleMs));
      });
    }
  }

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, prefix: string, target: Target, hooks: ForwardHooks): void {
    const headers = this.prepare(req, prefix, target, true);
    req.headers = headers as IncomingMessage['headers'];
    this.hooks.set(req, hooks);
    try {
      this.proxy.ws(req, socket, head, { target: this.targetOf(target), agent: false }, (err) => {
        if (this.upgraded.has(req)) socket.destroy();
        else hooks.failed(err);
      });
    } catch (err) {
      hooks.failed(new BadRequest(`cannot forward this request: ${(err as Error).message}`));
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
