/**
 * The orchestrator's two HTTP servers as koa apps, kept thin: parse, call the Orchestrator, map
 * typed errors. Routes are declared in `publicApp` and `adminApp`.
 *
 * Public (the proxy's default target): GET /spawn/<path>, POST /api/spawn[/], GET /api/wait/<ticket>,
 * GET /api/stats[/], /stats, and a loading page for every other path.
 * Admin (ADMIN_AUTH_TOKEN): GET /api/pools, GET /api/pools/<name>, POST /api/pools/<name>/{resize,
 * refresh,drain,empty,resume,claim}, GET /api/stats, GET /api/stats/history, GET /metrics; the status
 * page (GET / or /status) needs no token itself.
 */
import type Koa from 'koa';
import { Router, type RouterContext } from '@koa/router';
import { BadRequest, Gone, NotFound, type HttpError } from '../shared/errors.js';
import { closeServer, listenOn } from '../shared/net.js';
import type { Logger } from '../shared/log.js';
import { createRegistry } from '../shared/metrics.js';
import { affinityCookie, readCookie } from '../shared/cookies.js';
import { statusPageHtml } from '../shared/status-page.js';
import type { RouteTableClient } from '../shared/types.js';
import { VERSION } from '../shared/version.js';
import {
  apiApp,
  cors,
  htmlErrors,
  jsonBody,
  methodNotAllowed,
  metricsRoute,
  notFound,
  redirect,
  requireToken,
  sendHtml,
  serverFor,
  staticPage,
  wellFormedPath,
  type Context,
  type Middleware,
} from '../shared/web.js';
import type { ContainerBackend } from './backend.js';
import type { OrchestratorConfig } from './config.js';
import { DockerBackend } from './docker-backend.js';
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
const BODY_LIMIT = 64 * 1024;

/** `/a//b` and backslashes must not turn the redirect into another site (`//evil`). */
function safePath(path: string): string {
  return '/' + path.replace(/\\/g, '/').replace(/^\/+/, '');
}

/** The cookie that brings a returning visitor back to their own container. */
const VISITOR_COOKIE = 'nbpool_visitor';

/** The spawn path a loading page continues to: `/user/<stale id>/x` -> `/spawn/x`, `/tree` -> `/spawn/tree`. */
function spawnPathFor(path: string): string {
  const stale = /^\/user\/[^/]+(\/.*)?$/.exec(path);
  const rest = stale ? (stale[1] ?? '/') : path;
  return '/spawn' + safePath(rest);
}

/** The loading page, which moves on to /spawn with the same path and query. */
function loading(ctx: Context): void {
  sendHtml(ctx, 200, loadingPage(spawnPathFor(ctx.path) + (ctx.querystring ? `?${ctx.querystring}` : '')));
}

/** A visitor turned away for now (the node is full or shutting down) gets a page, not JSON. */
function busyPage(err: HttpError) {
  if (err.status !== 503 && err.status !== 429) return undefined;
  const retryAfter = Number(err.headers['Retry-After'] ?? 30);
  return { status: 503, html: fullPage(err.message, retryAfter), headers: { 'Retry-After': String(retryAfter) } };
}

function publicApp(orch: Orchestrator, config: OrchestratorConfig, log: Logger): Koa {
  const cookieLife = config.cullMax > 0 ? config.cullMax : 86_400;

  /** GET /spawn/<path>: a returning visitor's own container, a fresh one, or a place in line. */
  async function spawn(ctx: RouterContext): Promise<void> {
    // HEAD (link checkers, prefetchers) never takes a container.
    if (ctx.method === 'HEAD') return loading(ctx);
    const sub = ctx.path.slice('/spawn'.length);
    const rest = sub && sub !== '/' ? safePath(sub) : '';
    const query = ctx.querystring;
    const params = new URLSearchParams(query);
    const context: ClaimContext = { path: rest, query };
    const ticket = params.get('ticket');
    const returning = readCookie(ctx.req, VISITOR_COOKIE);
    const ownUrl = returning && !ticket ? orch.returningVisitorUrl(returning, context) : undefined;
    if (ownUrl) return redirect(ctx, ownUrl);
    const claimed = (visitorId: string, url: string) => redirect(ctx, url, { 'Set-Cookie': affinityCookie(ctx.req, VISITOR_COOKIE, visitorId, cookieLife) });
    if (ticket) {
      const view = orch.ticketView(ticket);
      if (view.state === 'ready') return claimed(view.visitorId, view.url);
      if (view.state === 'waiting') return sendHtml(ctx, 200, waitingPage(ticket, ctx.url, view.position));
      // Gone (expired or unknown): start over as a new visitor.
    }
    const pool = params.get('pool') ?? undefined;
    const claim = await orch.claimNow(pool, context);
    if (claim) return claimed(claim.id, claim.url);
    const id = orch.enqueueTicket(pool, context);
    const retry = new URLSearchParams(query);
    retry.set('ticket', id);
    const view = orch.ticketView(id);
    sendHtml(ctx, 200, waitingPage(id, `/spawn${rest}?${retry}`, view.state === 'waiting' ? view.position : 0));
  }

  const api = new Router({ sensitive: true });
  api.get('/api/stats', (ctx) => {
    ctx.body = orch.stats();
  });
  api.all('/stats', (ctx) => redirect(ctx, '/api/stats'));
  api.post('/api/spawn', jsonBody({ limit: BODY_LIMIT, emptyIsObject: true }), async (ctx) => {
    const body = ctx.request.body!;
    if (body.path !== undefined && typeof body.path !== 'string') throw new BadRequest('"path" must be a string');
    const pool = typeof body.pool === 'string' ? body.pool : (new URLSearchParams(ctx.querystring).get('pool') ?? undefined);
    const context: ClaimContext = { path: body.path ? safePath(body.path as string) : '', query: ctx.querystring };
    const claim = await orch.claimOrWait(pool, context, config.spawnWait * 1000);
    ctx.body = { url: claim.url, id: claim.id, pool: claim.pool, ...(claim.token ? { token: claim.token } : {}) };
  });
  api.all(/^\/api\/wait\/([A-Za-z0-9]{1,64})$/, async (ctx) => {
    const view = await orch.waitTicket(ctx.captures![0]!, LONG_POLL_MS);
    if (view.state === 'ready') ctx.body = { ready: true, url: view.url };
    else if (view.state === 'waiting') ctx.body = { ready: false, position: view.position, waiting: view.waiting };
    else throw new Gone('no container became free in time; please try again in a little while', { 'Retry-After': '30' });
  });

  const pages = new Router({ sensitive: true });
  pages.all('/api/{*rest}', (ctx) => {
    throw new NotFound(`no API ${ctx.path}`);
  });
  pages.get('/spawn{/*rest}', htmlErrors(busyPage), spawn);
  pages.get('{/*rest}', loading);

  return apiApp(
    log,
    cors({ origin: config.allowOrigin, paths: /^\/api\//, methods: 'GET, POST, OPTIONS', headers: 'Content-Type, Authorization' }),
    api.routes(),
    methodNotAllowed(),
    pages.routes(),
    notFound((ctx) => `nothing at ${ctx.path.slice(0, 200)}: this session is gone; reload the page to get a new one`),
  );
}

function adminApp(orch: Orchestrator, config: OrchestratorConfig, registry: ReturnType<typeof createRegistry>, log: Logger): Koa {
  // The page itself holds no data; it sends the token (from the URL fragment) on its API calls.
  const page = new Router({ sensitive: true });
  page.get(['/', '/status'], staticPage(statusPageHtml({ title: `nbpool orchestrator ${config.instance}`, historyPath: '/api/stats/history', statsPath: '/api/stats' })));

  const body = jsonBody({ limit: BODY_LIMIT, emptyIsObject: true });
  /** A pool action: runs `act` on the named pool and answers the pool's figures (plus what `act` returns). */
  const action = (act: (name: string, body: Record<string, unknown>) => object | void): Middleware[] => [
    body,
    (ctx) => {
      const name = (ctx as RouterContext).params.name!;
      const extra = act(name, ctx.request.body!);
      ctx.body = { ...orch.poolStats(name), ...extra };
    },
  ];

  const api = new Router({ sensitive: true });
  api.get('/metrics', metricsRoute(registry));
  api.get('/api/stats', (ctx) => {
    ctx.body = orch.stats();
  });
  api.get('/api/stats/history', (ctx) => {
    ctx.body = orch.history.toJSON();
  });
  api.get('/api/pools', (ctx) => {
    const pools: Record<string, unknown> = {};
    for (const name of orch.core.poolNames()) pools[name] = orch.poolStats(name);
    ctx.body = { pools };
  });
  api.get('/api/pools/:name', (ctx) => {
    ctx.body = orch.poolStats(ctx.params.name!);
  });
  api.post('/api/pools/:name/resize', ...action((name, b) => {
    if (!('size' in b)) throw new BadRequest('send {"size": N}');
    orch.resize(name, b.size);
  }));
  api.post('/api/pools/:name/refresh', ...action((name) => ({ generation: orch.refresh(name) })));
  api.post('/api/pools/:name/drain', ...action((name) => orch.drain(name, false)));
  api.post('/api/pools/:name/empty', ...action((name) => orch.drain(name, true)));
  api.post('/api/pools/:name/resume', ...action((name) => orch.resume(name)));
  api.post('/api/pools/:name/claim', body, async (ctx) => {
    const b = ctx.request.body!;
    if (b.path !== undefined && typeof b.path !== 'string') throw new BadRequest('"path" must be a string');
    if (b.query !== undefined && typeof b.query !== 'string') throw new BadRequest('"query" must be a string');
    const context: ClaimContext = { path: b.path ? safePath(b.path as string) : '', query: (b.query as string | undefined) ?? '' };
    ctx.body = await orch.claimOrWait(ctx.params.name!, context, config.spawnWait * 1000);
  });
  api.post('/api/pools/:name/:action', (ctx) => {
    throw new NotFound(`no pool action ${JSON.stringify(ctx.params.action)}; actions: resize, refresh, drain, empty, resume, claim`);
  });

  return apiApp(
    log,
    page.routes(),
    requireToken(config.adminAuthToken),
    wellFormedPath,
    api.routes(),
    methodNotAllowed(),
    notFound((ctx) => `no admin API ${ctx.path.slice(0, 200)}; see GET /api/pools`),
  );
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
  const orch = new Orchestrator(config, {
    routes: deps.routes,
    log: deps.log,
    backend: deps.backend ?? new DockerBackend(),
    registry,
    version: VERSION,
  });
  await orch.start();
  const publicServer = serverFor(publicApp(orch, config, deps.log));
  const adminServer = serverFor(adminApp(orch, config, registry, deps.log));
  publicServer.keepAliveTimeout = 65_000;
  let url: string;
  let adminUrl: string;
  try {
    url = `http://${await listenOn(publicServer, config.port, config.ip)}`;
    adminUrl = `http://${await listenOn(adminServer, config.adminPort, config.adminIp)}`;
  } catch (err) {
    await orch.stop();
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
        await Promise.all([closeServer(publicServer, 0), closeServer(adminServer, 0)]);
      })();
      return closing;
    },
  };
}
