/**
 * The orchestrator's two HTTP servers, kept thin: parse, call the Orchestrator, map typed errors.
 *
 * Public (the proxy's default target): GET /spawn/<path>, POST /api/spawn[/], GET /api/wait/<ticket>,
 * GET /api/stats[/], /stats, and a loading page for every other path.
 * Admin (ADMIN_AUTH_TOKEN): GET /api/pools, GET /api/pools/<name>, POST /api/pools/<name>/{resize,
 * refresh,drain,empty,resume,claim}, GET /api/stats, GET /api/stats/history, GET /metrics; the status
 * page (GET / or /status) needs no token itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BadRequest, ConfigError, Forbidden, HttpError, MethodNotAllowed, NotFound } from '../shared/errors.js';
import { closeServer, listenOn } from '../shared/net.js';
import { decodePath, hasToken, parseJsonObject, readBody, sendError, sendJson } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { createRegistry } from '../shared/metrics.js';
import { clientAddress, clientKey, trustedProxies } from '../shared/client-address.js';
import { affinityCookie, readCookie } from '../shared/cookies.js';
import { statusPageHtml } from '../shared/status-page.js';
import type { RouteTableClient } from '../shared/types.js';
import type { ContainerBackend } from './backend.js';
import type { OrchestratorConfig } from './config.js';
import { FileClaimJournal } from './claim-journal.js';
import { DockerBackend } from './docker-backend.js';
import { HttpProbe } from './probe.js';
import { InstanceTaken } from './instance-owner.js';
import { Orchestrator, type ClaimContext } from './orchestrator.js';
import { fullPage, loadingPage, waitingPage } from './pages.js';

export interface RunningOrchestrator {
  /** Public handler: the proxy's default target. */
  url: string;
  adminUrl: string;
  orchestrator: Orchestrator;
  close(): Promise<void>;
}

const LONG_POLL_MS = 10_000;

function packageVersion(): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // Compiled (dist/orchestrator) or source (orchestrator): one of the two paths exists.
    }
  }
  return 'unknown';
}

/** `/a//b` and backslashes must not turn the redirect into another site (`//evil`). */
function safePath(path: string): string {
  return '/' + path.replace(/\\/g, '/').replace(/^\/+/, '');
}

function splitUrl(req: IncomingMessage): { path: string; query: string } {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  return { path: q === -1 ? raw : raw.slice(0, q), query: q === -1 ? '' : raw.slice(q + 1) };
}

function sendHtml(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(302, { ...headers, Location: location, 'Cache-Control': 'no-store', 'Content-Length': 0 });
  res.end();
}

/** The cookie that brings a returning visitor back to their own container. */
const VISITOR_COOKIE = 'nbpool_visitor';

/** The spawn path a loading page continues to: `/user/<stale id>/x` -> `/spawn/x`, `/tree` -> `/spawn/tree`. */
function spawnPathFor(path: string): string {
  const stale = /^\/user\/[^/]+(\/.*)?$/.exec(path);
  const rest = stale ? (stale[1] ?? '/') : path;
  return '/spawn' + safePath(rest);
}

function publicHandler(orch: Orchestrator, config: OrchestratorConfig, log: Logger) {
  const cors: Record<string, string> = config.allowOrigin
    ? { 'Access-Control-Allow-Origin': config.allowOrigin, 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type, Authorization', 'Access-Control-Max-Age': '600' }
    : {};

  const trusted = trustedProxies(config.trustedProxy);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = splitUrl(req);
    const client = clientKey(clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trusted));
    const params = new URLSearchParams(query);
    const method = req.method ?? 'GET';
    const isApi = path.startsWith('/api/');
    if (isApi) for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);

    if (isApi && method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    if (path === '/api/stats' || path === '/api/stats/') {
      if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowed(['GET']);
      sendJson(res, 200, orch.stats());
      return;
    }
    if (path === '/stats' || path === '/stats/') {
      redirect(res, '/api/stats');
      return;
    }
    if (path === '/api/spawn' || path === '/api/spawn/') {
      if (method !== 'POST') throw new MethodNotAllowed(['POST']);
      const text = await readBody(req, 64 * 1024);
      const body = text.trim() ? parseJsonObject(text) : {};
      const pool = typeof body.pool === 'string' ? body.pool : (params.get('pool') ?? undefined);
      if (body.path !== undefined && typeof body.path !== 'string') throw new BadRequest('"path" must be a string');
      const context: ClaimContext = { path: body.path ? safePath(body.path as string) : '', query, client };
      const claim = await orch.claimOrWait(pool, context, config.spawnWait * 1000);
      sendJson(res, 200, { url: claim.url, id: claim.id, pool: claim.pool, ...(claim.token ? { token: claim.token } : {}) });
      return;
    }
    const wait = /^\/api\/wait\/([A-Za-z0-9]{1,64})$/.exec(path);
    if (wait) {
      const view = await orch.waitTicket(wait[1]!, LONG_POLL_MS);
      if (view.state === 'ready') sendJson(res, 200, { ready: true, url: view.url });
      else if (view.state === 'waiting') sendJson(res, 200, { ready: false, position: view.position, waiting: view.waiting });
      else sendJson(res, 410, { status: 410, message: 'no container became free in time; please try again in a little while' }, { 'Retry-After': '30' });
      return;
    }
    if (isApi) throw new NotFound(`no API ${path}`);
    if (method !== 'GET' && method !== 'HEAD') {
      throw new NotFound(`nothing at ${path.slice(0, 200)}: this session is gone; reload the page to get a new one`);
    }
    const spawn = /^\/spawn(\/.*)?$/.exec(path);
    // HEAD (link checkers, prefetchers) never takes a container.
    if (!spawn || method === 'HEAD') {
      const next = spawnPathFor(path);
      sendHtml(res, 200, loadingPage(next + (query ? `?${query}` : '')));
      return;
    }
    const rest = spawn[1] && spawn[1] !== '/' ? safePath(spawn[1]) : '';
    const context: ClaimContext = { path: rest, query, client };
    const pool = params.get('pool') ?? undefined;
    const ticket = params.get('ticket');
    const returning = readCookie(req, VISITOR_COOKIE);
    const ownUrl = returning && !ticket ? orch.returningVisitorUrl(returning, context) : undefined;
    if (ownUrl) return redirect(res, ownUrl);
    const cookieLife = config.cullMax > 0 ? config.cullMax : 86_400;
    const claimed = (visitorId: string, url: string) => redirect(res, url, { 'Set-Cookie': affinityCookie(req, VISITOR_COOKIE, visitorId, cookieLife) });
    try {
      if (ticket) {
        const view = orch.ticketView(ticket);
        if (view.state === 'ready') return claimed(view.visitorId, view.url);
        if (view.state === 'waiting') return sendHtml(res, 200, waitingPage(ticket, req.url ?? '/', view.position));
        // Gone (expired or unknown): start over as a new visitor.
      }
      const claim = await orch.claimNow(pool, context);
      if (claim) return claimed(claim.id, claim.url);
      const id = orch.enqueueTicket(pool, context);
      const retry = new URLSearchParams(query);
      retry.set('ticket', id);
      const view = orch.ticketView(id);
      sendHtml(res, 200, waitingPage(id, `/spawn${rest}?${retry}`, view.state === 'waiting' ? view.position : 0));
    } catch (err) {
      if (err instanceof HttpError && (err.status === 503 || err.status === 429)) {
        const retryAfter = Number(err.headers['Retry-After'] ?? 30);
        sendHtml(res, 503, fullPage(err.message, retryAfter), { 'Retry-After': String(retryAfter) });
        return;
      }
      throw err;
    }
  }

  return (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => sendError(res, err, log));
  };
}

function adminHandler(orch: Orchestrator, config: OrchestratorConfig, registry: ReturnType<typeof createRegistry>, log: Logger) {
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path } = splitUrl(req);
    const method = req.method ?? 'GET';
    // The page itself holds no data; it sends the token (from the URL fragment) on its API calls.
    if ((path === '/' || path === '/status') && (method === 'GET' || method === 'HEAD')) {
      const html = statusPageHtml({ title: `nbpool orchestrator ${config.instance}`, historyPath: '/api/stats/history', statsPath: '/api/stats' });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(html) });
      res.end(html);
      return;
    }
    if (!hasToken(req, config.adminAuthToken)) throw new Forbidden();
    if (path === '/metrics') {
      if (method !== 'GET') throw new MethodNotAllowed(['GET']);
      const text = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType }).end(text);
      return;
    }
    if (path === '/api/stats' || path === '/api/stats/') {
      if (method !== 'GET') throw new MethodNotAllowed(['GET']);
      return sendJson(res, 200, orch.stats());
    }
    if (path === '/api/stats/history') {
      if (method !== 'GET') throw new MethodNotAllowed(['GET']);
      return sendJson(res, 200, orch.history.toJSON());
    }
    if (path === '/api/pools' || path === '/api/pools/') {
      if (method !== 'GET') throw new MethodNotAllowed(['GET']);
      const pools: Record<string, unknown> = {};
      for (const name of orch.core.poolNames()) pools[name] = orch.poolStats(name);
      return sendJson(res, 200, { pools });
    }
    const match = /^\/api\/pools\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(path);
    if (!match) throw new NotFound(`no admin API ${path.slice(0, 200)}; see GET /api/pools`);
    const name = decodePath(match[1]!);
    const action = match[2];
    if (!action) {
      if (method !== 'GET') throw new MethodNotAllowed(['GET']);
      return sendJson(res, 200, orch.poolStats(name));
    }
    if (method !== 'POST') throw new MethodNotAllowed(['POST']);
    const text = await readBody(req, 64 * 1024);
    const body = text.trim() ? parseJsonObject(text) : {};
    switch (action) {
      case 'resize':
        if (!('size' in body)) throw new BadRequest('send {"size": N}');
        orch.resize(name, body.size);
        return sendJson(res, 200, orch.poolStats(name));
      case 'refresh': {
        const generation = orch.refresh(name);
        return sendJson(res, 200, { ...orch.poolStats(name), generation });
      }
      case 'drain':
        orch.drain(name, false);
        return sendJson(res, 200, orch.poolStats(name));
      case 'empty':
        orch.drain(name, true);
        return sendJson(res, 200, orch.poolStats(name));
      case 'resume':
        orch.resume(name);
        return sendJson(res, 200, orch.poolStats(name));
      case 'claim': {
        if (body.path !== undefined && typeof body.path !== 'string') throw new BadRequest('"path" must be a string');
        if (body.query !== undefined && typeof body.query !== 'string') throw new BadRequest('"query" must be a string');
        const claim = await orch.claimOrWait(name, { path: body.path ? safePath(body.path as string) : '', query: (body.query as string | undefined) ?? '' }, config.spawnWait * 1000);
        return sendJson(res, 200, claim);
      }
      default:
        throw new NotFound(`no pool action ${JSON.stringify(action)}; actions: resize, refresh, drain, empty, resume, claim`);
    }
  }
  return (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => sendError(res, err, log));
  };
}

/** Sole ownership of the instance on the engine, or one clear line saying who has it. */
async function acquireInstance(backend: ContainerBackend, instance: string): Promise<() => Promise<void>> {
  try {
    return await backend.acquireInstance(instance);
  } catch (err) {
    if (!(err instanceof InstanceTaken)) throw err;
    throw new ConfigError(`${err.message}; give this one its own --instance NAME (if that one is gone for good: ${err.clearHint})`);
  }
}

/**
 * Starts the orchestrator: adopts this instance's containers, fills the pools, and serves the
 * public handler and the admin API on their (possibly ephemeral) ports.
 */
export async function startOrchestrator(
  config: OrchestratorConfig,
  deps: { routes: RouteTableClient; log: Logger; backend?: ContainerBackend },
): Promise<RunningOrchestrator> {
  const registry = createRegistry('orchestrator');
  const backend = deps.backend ?? new DockerBackend();
  const release = await acquireInstance(backend, config.instance);
  const orch = new Orchestrator(config, {
    routes: deps.routes,
    log: deps.log,
    backend,
    probe: new HttpProbe(),
    journal: new FileClaimJournal(config.claimsJournal ?? join('.nbpool', `claims-${config.instance}.log`)),
    registry,
    version: packageVersion(),
  });
  try {
    await orch.start();
  } catch (err) {
    await release();
    throw err;
  }
  const publicServer = createServer(publicHandler(orch, config, deps.log));
  const adminServer = createServer(adminHandler(orch, config, registry, deps.log));
  publicServer.keepAliveTimeout = 65_000;
  let url: string;
  let adminUrl: string;
  try {
    url = `http://${await listenOn(publicServer, config.port, config.ip)}`;
    adminUrl = `http://${await listenOn(adminServer, config.adminPort, config.adminIp)}`;
  } catch (err) {
    await orch.stop();
    await release();
    publicServer.close();
    adminServer.close();
    throw err;
  }
  deps.log.info({ url, adminUrl, instance: config.instance, pools: config.pools.map((p) => `${p.name}:${p.size}`), capacity: config.capacity }, 'orchestrator ready');
  let closing: Promise<void> | undefined;
  return {
    url,
    adminUrl,
    orchestrator: orch,
    close() {
      closing ??= (async () => {
        await orch.stop();
        // Long polls would hold shutdown for seconds: cut every connection at once.
        await Promise.all([closeServer(publicServer, 0), closeServer(adminServer, 0), release()]);
      })();
      return closing;
    },
  };
}
