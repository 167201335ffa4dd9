/**
 * The running proxy: public port (HTTP/WebSocket forwarding), REST API port, optional metrics
 * port, all over one RouteService. `startProxy` is what `nbpool proxy` runs and what `nbpool up`
 * embeds (it then drives routes in-process through `routes`, with no network hop).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, STATUS_CODES, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { Router } from '@koa/router';
import { BadRequest, ConfigError, HttpError } from '../shared/errors.js';
import { escapeHtml } from '../shared/html.js';
import { closeServer, listenOn } from '../shared/net.js';
import { decodePath } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { createRegistry } from '../shared/metrics.js';
import { withOptionFile } from '../shared/config.js';
import { redactedStoreUrl } from '../shared/store.js';
import type { RouteTableClient } from '../shared/types.js';
import { apiApp, methodNotAllowed, metricsRoute, notFound, serverFor } from '../shared/web.js';
import { routesApi } from './api.js';
import { loadTls, type ProxyConfig } from './config.js';
import { NodeForwarder, type Forwarder, type ForwardHooks } from './forward.js';
import { createProxyMetrics } from './metrics.js';
import { ignoresActivity, LocalRouteTableClient, parseTarget, RouteService, type RouteEntry } from './route-service.js';
import { isLoopback, trustedProxies } from './trusted-proxies.js';

export interface RunningProxy {
  /** In-process route table client: the REST API's semantics and validation, no network. */
  routes: RouteTableClient;
  /** Where visitors connect, with the port actually bound (e.g. http://127.0.0.1:8000). */
  publicUrl: string;
  apiUrl: string;
  /** Set when --metrics-port is given. */
  metricsUrl: string | undefined;
  metrics: Registry;
  /**
   * Requests routed to `target` are handed to `handler` in this process instead of over loopback
   * HTTP (`nbpool up`: the orchestrator, the default target, so an unrouted visitor's claim skips
   * a hop). WebSocket upgrades to it still go over the network; nothing there is on a claim path.
   */
  serveInProcess(target: string, handler: RequestListener): void;
  /** Stops accepting, lets requests in flight finish, flushes last_activity, closes the store. */
  close(): Promise<void>;
}

/** How long close() lets requests in flight finish before cutting them. */
const CLOSE_GRACE_MS = 5000;

function builtinErrorPage(code: number): string {
  const title = `${code}: ${code === 404 ? 'No Route' : code === 503 ? 'Proxy Target Missing' : escapeHtml(STATUS_CODES[code] ?? 'Error')}`;
  const detail = code === 404 ? 'No route matches this address.' : code === 503 ? 'The upstream service is unavailable.' : '';
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n<body><h1>${title}</h1><p>${detail}</p><hr><p>nbpool proxy</p></body></html>\n`;
}

/** Error pages as CHP serves them: from --error-target, else --error-path files, else built in. */
class ErrorPages {
  private readonly files = new Map<number, Buffer | undefined>();

  constructor(
    private readonly errorTarget: string | undefined,
    private readonly errorPath: string | undefined,
    private readonly log: Logger,
  ) {
    // A mistyped --error-path would otherwise serve the built-in pages without a word.
    if (errorPath !== undefined) {
      withOptionFile('--error-path', errorPath, (dir) => {
        if (!statSync(dir).isDirectory()) throw new ConfigError(`--error-path ${dir}: not a directory`);
        readdirSync(dir);
      });
    }
  }

  private file(code: number): Buffer | undefined {
    if (!this.errorPath) return undefined;
    if (!this.files.has(code)) {
      let page: Buffer | undefined;
      for (const name of [`${code}.html`, 'error.html']) {
        try {
          page = readFileSync(join(this.errorPath, name));
          break;
        } catch {
          // Try the next name; none found means the built-in page.
        }
      }
      this.files.set(code, page);
    }
    return this.files.get(code);
  }

  private builtin(code: number, res: ServerResponse): void {
    const page = this.file(code) ?? builtinErrorPage(code);
    res.writeHead(code, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(page) });
    res.end(page);
  }

  send(code: number, req: IncomingMessage, res: ServerResponse): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (!this.errorTarget) {
      this.builtin(code, res);
      return;
    }
    const url = new URL(this.errorTarget.replace(/\/?$/, '/') + String(code));
    url.searchParams.set('url', req.url ?? '/');
    const ask = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const pageReq = ask(url, { method: 'GET', timeout: 5000 }, (page) => {
      if (res.headersSent || res.destroyed) {
        page.resume();
        return;
      }
      const headers: Record<string, string> = {};
      for (const name of ['content-type', 'content-encoding']) {
        const value = page.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      res.writeHead(code, headers);
      page.pipe(res);
      page.on('close', () => {
        if (!page.complete) res.destroy();
      });
    });
    pageReq.on('timeout', () => pageReq.destroy(new Error('error target timed out')));
    pageReq.on('error', (err) => {
      this.log.warn({ err: err.message, errorTarget: this.errorTarget }, 'error target failed; serving the built-in page');
      if (!res.headersSent && !res.destroyed) this.builtin(code, res);
    });
    res.on('close', () => pageReq.destroy());
    pageReq.end();
  }
}

/** A bare HTTP answer on a socket that asked for an upgrade, then close. */
function replyOnSocket(socket: Duplex, code: number, message: string): void {
  if (socket.destroyed) return;
  const body = message + '\n';
  socket.end(
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  (socket as Socket).destroySoon?.();
}

/** A reverse proxy opens no tunnels: answer CONNECT with 405 instead of dropping the connection. */
function refuseConnect(server: Server): void {
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    replyOnSocket(socket, 405, 'CONNECT is not supported here');
  });
}

/** The decoded path a request is routed by; the host is its first segment with host routing. */
function routingPath(req: IncomingMessage, hostRouting: boolean): string {
  let url = req.url ?? '/';
  if (url.charCodeAt(0) !== 47 /* / */) {
    // Absolute-form request target (GET http://host/path): route by its path.
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new BadRequest('request target must be a path starting with /');
    }
    url = parsed.pathname + parsed.search;
    req.url = url;
  }
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  if (path.includes('%')) path = decodePath(path);
  if (!hostRouting) return path;
  const host = req.headers.host ?? '';
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return '/' + (end <= 0 ? host : host.slice(0, end)) + path;
}

/** The --metrics-port server: GET /metrics and nothing else. */
function metricsOnly(registry: Registry, log: Logger): Server {
  const router = new Router();
  router.get('/metrics', metricsRoute(registry));
  return serverFor(apiApp(log, router.routes(), methodNotAllowed(), notFound(() => 'only GET /metrics here')));
}

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  // Files the options name are checked before the store is opened, so a typo leaves nothing to close.
  const tlsFiles = loadTls(config);
  const tls = tlsFiles !== undefined;
  const errorPages = new ErrorPages(config.errorTarget, config.errorPath, log);
  const service = await RouteService.open(config.storageBackend, {
    hostRouting: config.hostRouting,
    activityFlushMs: config.activityFlushMs,
    resyncMs: config.resyncMs,
    log: log.child({ component: 'routes' }),
  });
  const registry = createRegistry('proxy');
  const metrics = createProxyMetrics(registry, () => service.size);
  const forwarder: Forwarder = new NodeForwarder({
    xForward: !config.noXForward,
    prependPath: !config.noPrependPath,
    includePrefix: !config.noIncludePrefix,
    hostRouting: config.hostRouting,
    customHeaders: config.customHeaders,
    proxyTimeoutMs: config.proxyTimeout,
    clientTimeoutMs: config.timeout,
    frameAncestors: config.frameAncestors,
    publicTls: tls,
    trustedProxies: trustedProxies(config.trustedProxy),
  });
  // Visitors reach a non-loopback address directly over plain HTTP unless a front on another
  // machine stands before it (loopback fronts, `nbpool up`'s default, cannot reach them there).
  const remoteFront = config.trustedProxy.some((entry) => !isLoopback(entry.split('/')[0]));
  if (!tls && !remoteFront && !isLoopback(config.ip)) {
    log.warn({ ip: config.ip ?? 'all interfaces' }, 'plain HTTP on a non-loopback address: cross-site embedding (a notebook in a publisher\'s iframe) needs HTTPS, at this proxy (--ssl-key/--ssl-cert) or at a front named by --trusted-proxy');
  }
  const upgraded = new Set<Duplex>();
  let inProcess: { href: string; handler: RequestListener } | undefined;

  if (config.defaultTarget) await service.add('/', { target: config.defaultTarget });

  const noActivity = () => {};
  const hooksFor = (entry: RouteEntry, req: IncomingMessage, failed: (err: Error) => void): ForwardHooks => ({
    activity: ignoresActivity(entry, req.url ?? '/') ? noActivity : () => service.touch(entry),
    failed,
  });

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    res.on('finish', () => metrics.request(res.statusCode, (performance.now() - started) / 1000));
    if (req.url === '/_chp_healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 15 }).end('{"status":"OK"}');
      return;
    }
    let entry: RouteEntry | undefined;
    try {
      entry = service.match(routingPath(req, config.hostRouting));
    } catch (err) {
      const body = (err as Error).message + '\n';
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
      return;
    }
    if (!entry) {
      errorPages.send(404, req, res);
      return;
    }
    if (inProcess && entry.target.href === inProcess.href) {
      void inProcess.handler(req, res);
      return;
    }
    forwarder.web(
      req,
      res,
      entry,
      hooksFor(entry, req, (err) => {
        const status = err instanceof HttpError ? err.status : 503;
        log.warn({ url: req.url?.slice(0, 200), target: entry.target.href, err: err.message, status }, 'request not forwarded');
        errorPages.send(status, req, res);
      }),
    );
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    let entry: RouteEntry | undefined;
    try {
      entry = service.match(routingPath(req, config.hostRouting));
    } catch (err) {
      replyOnSocket(socket, 400, (err as Error).message);
      return;
    }
    if (!entry) {
      replyOnSocket(socket, 404, 'no route matches this address');
      return;
    }
    upgraded.add(socket);
    metrics.websocketOpened();
    socket.once('close', () => {
      upgraded.delete(socket);
      metrics.websocketClosed();
    });
    forwarder.ws(
      req,
      socket,
      head,
      entry,
      hooksFor(entry, req, (err) => {
        const status = err instanceof HttpError ? err.status : 503;
        log.warn({ url: req.url?.slice(0, 200), target: entry.target.href, err: err.message, status }, 'upgrade not forwarded');
        replyOnSocket(socket, status, status === 503 ? 'the upstream service is unavailable' : err.message);
      }),
    );
  };

  const publicServer: Server = tls
    ? createHttpsServer(tlsFiles, onRequest)
    : createHttpServer(onRequest);
  publicServer.keepAliveTimeout = config.keepAliveTimeout;
  publicServer.headersTimeout = Math.max(60_000, config.keepAliveTimeout + 1000);
  publicServer.on('upgrade', onUpgrade);
  refuseConnect(publicServer);

  const handleApi = routesApi(service, config.authToken, log.child({ component: 'api' })).callback();
  const apiServer = createHttpServer((req, res) => {
    res.on('finish', () => metrics.apiRequest(res.statusCode));
    void handleApi(req, res);
  });
  refuseConnect(apiServer);

  const servers: Server[] = [];
  try {
    const publicAddress = await listenOn(publicServer, config.port, config.ip);
    servers.push(publicServer);
    const apiAddress = await listenOn(apiServer, config.apiPort, config.apiIp);
    servers.push(apiServer);
    let metricsUrl: string | undefined;
    if (config.metricsPort !== undefined) {
      const metricsServer = metricsOnly(registry, log);
      const metricsAddress = await listenOn(metricsServer, config.metricsPort, config.metricsIp);
      servers.push(metricsServer);
      metricsUrl = `http://${metricsAddress}/metrics`;
    }
    const publicUrl = `${tls ? 'https' : 'http'}://${publicAddress}`;
    const apiUrl = `http://${apiAddress}`;
    log.info({ publicUrl, apiUrl, metricsUrl, routes: service.size, storage: redactedStoreUrl(config.storageBackend) }, 'proxy listening');

    let closing: Promise<void> | undefined;
    return {
      routes: new LocalRouteTableClient(service),
      publicUrl,
      apiUrl,
      metricsUrl,
      metrics: registry,
      serveInProcess(target, handler) {
        inProcess = { href: parseTarget(target).href, handler };
      },
      close() {
        closing ??= (async () => {
          const closed = Promise.all(servers.map((server) => closeServer(server, CLOSE_GRACE_MS)));
          // An open WebSocket never "finishes": end them now rather than wait out the grace period.
          for (const socket of upgraded) socket.destroy();
          await closed;
          forwarder.close();
          await service.close();
          log.info('proxy stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    await Promise.all(servers.map((server) => closeServer(server, 0)));
    forwarder.close();
    await service.close();
    throw err;
  }
}
