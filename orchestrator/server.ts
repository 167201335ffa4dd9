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
import { createServer, type RequestListener } from 'node:http';
import { join } from 'node:path';
import type Koa from 'koa';
import { Router, type RouterContext } from '@koa/router';
import { BadRequest, ConfigError, Gone, NotFound, type HttpError } from '../shared/errors.js';
import { withOptionFile } from '../shared/config.js';
import { closeServer, listenOn } from '../shared/net.js';
import type { Logger } from '../shared/log.js';
import { createRegistry } from '../shared/metrics.js';
import { clientAddress, clientKey, trustedProxies } from '../shared/client-address.js';
import { affinityCookie, readCookie } from '../shared/cookies.js';
import { statusPageHtml } from '../shared/status-page.js';
import type { RouteTableClient } from '../shared/types.js';
import { VERSION } from '../shared/version.js';
import {
  apiApp,
  cors,
  hangUpSignal,
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
import type { OrchestratorConfig, PoolConfig } from './config.js';
import { FileClaimJournal, type ClaimJournal } from './claim-journal.js';
import { DockerBackend } from './docker-backend.js';
import { HttpProbe } from './probe.js';
import { InstanceTaken } from './instance-owner.js';
import { Orchestrator } from './orchestrator.js';
import { elsewherePage, fullPage, loadingPage, notFoundPage, overSharePage, stoppedPage, waitingPage } from './pages.js';
import { TicketDesk } from './tickets.js';
import { visitorIdOfPath, type ClaimContext } from './visitor.js';

export interface RunningOrchestrator {
  /** Public handler: the proxy's default target. */
  url: string;
  adminUrl: string;
  orchestrator: Orchestrator;
  /** The public handler itself, for a proxy in the same process (`nbpool up`): what `url` serves. */
  handle: RequestListener;
  close(): Promise<void>;
}

const LONG_POLL_MS = 10_000;
const BODY_LIMIT = 64 * 1024;

/**
 * A path inside a visitor's container, made canonical: leading slashes and backslashes cannot turn
 * the redirect into another site (`//evil`), dot segments (`..`, `%2e%2e`) cannot lead out of
 * `/user/<id>/`, and characters a URL may not hold are percent-encoded.
 */
function safePath(path: string): string {
  return new URL(path.replace(/\\/g, '/').replace(/^\/*/, '/'), 'http://visitor').pathname;
}

/** A `path` given in a JSON body: a string holding no query or fragment, which would end up inside the visitor's URL. */
function bodyPath(value: unknown): string {
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string') throw new BadRequest('"path" must be a string');
  if (/[?#]/.test(value)) throw new BadRequest('"path" must be a path without "?" or "#": a query goes in the query string');
  return safePath(value);
}

/** The cookie that brings a returning visitor back to their own container. */
const VISITOR_COOKIE = 'nbpool_visitor';

/**
 * Where a loading page continues to: `/user/<stale id>/x` -> `/spawn/x`, `/tree` -> `/spawn/tree`,
 * and a named pool's entry path `/shiny/x` -> `/spawn/x?pool=shiny` (query kept). Returns the pool too.
 */
export function spawnUrlFor(path: string, query: string, pools: readonly PoolConfig[]): { url: string; pool: PoolConfig } {
  const stale = /^\/user\/[^/]+(\/.*)?$/.exec(path);
  let pool = pools[0]!;
  let rest = stale ? (stale[1] ?? '/') : path;
  if (!stale) {
    for (const p of pools) {
      const entry = p.entryPath;
      if (entry !== '/' && (path + '/').startsWith(entry) && entry.length > pool.entryPath.length) pool = p;
    }
    if (pool !== pools[0]) rest = path.slice(pool.entryPath.length - 1) || '/';
  }
  const params = new URLSearchParams(query);
  if (pool !== pools[0]) params.set('pool', pool.name);
  const search = params.toString();
  return { url: '/spawn' + safePath(rest) + (search ? `?${search}` : ''), pool };
}

/**
 * The loading page, which moves on to /spawn (for the pool whose entry path this is) with the same
 * path and query; a visitor whose container stopped is told so first.
 */
function loading(ctx: Context, orch: Orchestrator, pools: readonly PoolConfig[]): void {
  const next = spawnUrlFor(ctx.path, ctx.querystring, pools);
  const id = visitorIdOfPath(ctx.path);
  const stopped = id ? orch.stoppedReason(id) : undefined;
  if (stopped) return sendHtml(ctx, 410, stoppedPage(stopped, next.url, next.pool.noun));
  sendHtml(ctx, 200, loadingPage(next.url, next.pool.noun));
}

/** A visitor turned away (the node is full or shutting down, or the link names no pool here) gets a page, not JSON. */
function visitorErrorPage(noun: (ctx: Context) => string) {
  return (err: HttpError, ctx: Context) => {
    if (err.status === 404) return { status: 404, html: notFoundPage(err.message) };
    if (err.status !== 503 && err.status !== 429) return undefined;
    const retryAfter = Number(err.headers['Retry-After'] ?? 30);
    const headers = { 'Retry-After': String(retryAfter) };
    if (err.details.reason !== undefined) return { status: 429, html: overSharePage(err.message, retryAfter, noun(ctx)), headers };
    return { status: 503, html: fullPage(err.message, retryAfter, noun(ctx)), headers };
  };
}

function publicApp(orch: Orchestrator, tickets: TicketDesk, config: OrchestratorConfig, log: Logger): Koa {
  const cookieLife = config.cullMax > 0 ? config.cullMax : 86_400;
  const trusted = trustedProxies(config.trustedProxy);
  /** Who asks, for fair shares: the address a trusted proxy names, else the socket's. */
  const clientOf = (ctx: Context) => clientKey(clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for'], trusted));
  const nounOf = (ctx: Context) => {
    const pool = new URLSearchParams(ctx.querystring).get('pool');
    return config.pools.find((p) => p.name === pool)?.noun ?? config.pools[0]!.noun;
  };

  /** GET /spawn/<path>: a returning visitor's own container, a fresh one, or a place in line. */
  async function spawn(ctx: RouterContext): Promise<void> {
    // HEAD (link checkers, prefetchers) never takes a container.
    if (ctx.method === 'HEAD') return loading(ctx, orch, config.pools);
    const sub = ctx.path.slice('/spawn'.length);
    const rest = sub && sub !== '/' ? safePath(sub) : '';
    const query = ctx.querystring;
    const params = new URLSearchParams(query);
    const context: ClaimContext = { path: rest, query, client: clientOf(ctx) };
    const noun = nounOf(ctx);
    const ticket = params.get('ticket');
    const returning = readCookie(ctx.req, VISITOR_COOKIE);
    const ownUrl = returning && !ticket ? orch.returningVisitorUrl(returning, context) : undefined;
    if (ownUrl) return redirect(ctx, ownUrl);
    const claimed = (visitorId: string, url: string) => redirect(ctx, url, { 'Set-Cookie': affinityCookie(ctx.req, VISITOR_COOKIE, visitorId, cookieLife) });
    if (ticket) {
      const view = tickets.view(ticket);
      if (view.state === 'ready') return claimed(view.visitorId, view.url);
      if (view.state === 'waiting') return sendHtml(ctx, 200, waitingPage(ticket, ctx.url, view.position, noun));
      // Gone (expired or unknown): start over as a new visitor.
    }
    if (orch.engineLost && config.entryUrl) {
      // Nothing can start here now: back to the public link, whose next choice is another node.
      params.delete('ticket');
      const search = params.toString();
      return sendHtml(ctx, 200, elsewherePage(`${config.entryUrl.replace(/\/+$/, '')}${rest || '/'}${search ? `?${search}` : ''}`, noun));
    }
    const pool = params.get('pool') ?? undefined;
    const claim = await orch.claimNow(pool, context);
    if (claim) return claimed(claim.id, claim.url);
    const id = tickets.open(pool, context);
    const retry = new URLSearchParams(query);
    retry.set('ticket', id);
    const view = tickets.view(id);
    sendHtml(ctx, 200, waitingPage(id, `/spawn${rest}?${retry}`, view.state === 'waiting' ? view.position : 0, noun));
  }

  const api = new Router({ sensitive: true });
  api.get('/api/stats', (ctx) => {
    ctx.body = orch.stats();
  });
  api.all('/stats', (ctx) => redirect(ctx, '/api/stats'));
  api.post('/api/spawn', jsonBody({ limit: BODY_LIMIT, emptyIsObject: true }), async (ctx) => {
    const body = ctx.request.body!;
    if (body.pool !== undefined && typeof body.pool !== 'string') throw new BadRequest('"pool" must be a string: a pool\'s name');
    const pool = (body.pool as string | undefined) ?? new URLSearchParams(ctx.querystring).get('pool') ?? undefined;
    const context: ClaimContext = { path: bodyPath(body.path), query: ctx.querystring, client: clientOf(ctx) };
    const claim = await orch.claimOrWait(pool, context, config.spawnWait * 1000, hangUpSignal(ctx));
    ctx.body = { url: claim.url, id: claim.id, pool: claim.pool, ...(claim.token ? { token: claim.token } : {}) };
  });
  api.get(/^\/api\/wait\/([A-Za-z0-9]{1,64})$/, async (ctx) => {
    const view = await tickets.wait(ctx.captures![0]!, LONG_POLL_MS);
    if (view.state === 'ready') ctx.body = { ready: true, url: view.url };
    else if (view.state === 'waiting') ctx.body = { ready: false, position: view.position, waiting: view.waiting };
    else throw new Gone('no container became free in time; please try again in a little while', { 'Retry-After': '30' });
  });

  const pages = new Router({ sensitive: true });
  pages.all('/api/{*rest}', (ctx) => {
    throw new NotFound(`no API ${ctx.path}`);
  });
  pages.get('/spawn{/*rest}', htmlErrors(visitorErrorPage(nounOf)), spawn);
  pages.get('{/*rest}', (ctx) => loading(ctx, orch, config.pools));

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

  const body = (keys: readonly string[]) => jsonBody({ limit: BODY_LIMIT, emptyIsObject: true, keys });
  /** A pool action: runs `act` on the named pool and answers the pool's figures (plus what `act` returns). */
  const action = (act: (name: string, body: Record<string, unknown>) => object | void, keys: readonly string[] = []): Middleware[] => [
    body(keys),
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
  }, ['size']));
  api.post('/api/pools/:name/refresh', ...action((name) => ({ generation: orch.refresh(name) })));
  api.post('/api/pools/:name/drain', ...action((name) => orch.drain(name, false)));
  api.post('/api/pools/:name/empty', ...action((name) => orch.drain(name, true)));
  api.post('/api/pools/:name/resume', ...action((name) => orch.resume(name)));
  api.post('/api/pools/:name/claim', body(['path', 'query']), async (ctx) => {
    const b = ctx.request.body!;
    if (b.query !== undefined && typeof b.query !== 'string') throw new BadRequest('"query" must be a string');
    const context: ClaimContext = { path: bodyPath(b.path), query: (b.query as string | undefined) ?? '' };
    ctx.body = await orch.claimOrWait(ctx.params.name!, context, config.spawnWait * 1000, hangUpSignal(ctx));
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
 * The claim journal at --claims-journal (default `<state dir>/claims-<instance>.log`), opened now: a
 * path that cannot be written is one clear line at start, naming the option that chose it, not a
 * failed claim later.
 */
export function openClaimJournal(config: Pick<OrchestratorConfig, 'claimsJournal' | 'instance' | 'stateDir'>): ClaimJournal {
  const [option, file] = config.claimsJournal !== undefined
    ? ['--claims-journal', config.claimsJournal]
    : ['--state-dir', join(config.stateDir, `claims-${config.instance}.log`)];
  return withOptionFile(option, file, (path) => new FileClaimJournal(path));
}

/** Sole ownership of the instance on the engine, or one clear line saying who has it. */
async function acquireInstance(backend: ContainerBackend, instance: string): Promise<() => Promise<void>> {
  try {
    return await backend.acquireInstance(instance);
  } catch (err) {
    if (err instanceof InstanceTaken) throw new ConfigError(`${err.message}; give this one its own --instance NAME (if that one is gone for good: ${err.clearHint})`);
    // The first engine call of all: an engine that cannot be reached here is one line, not a stack trace.
    const where = process.env.DOCKER_HOST ? ` at DOCKER_HOST=${process.env.DOCKER_HOST}` : '';
    throw new ConfigError(`cannot reach the container engine${where}: ${(err as Error).message}`);
  }
}

/**
 * Starts the orchestrator: adopts this instance's containers, fills the pools, and serves the
 * public handler and the admin API on their (possibly ephemeral) ports.
 */
export async function startOrchestrator(
  config: OrchestratorConfig,
  deps: { routes: RouteTableClient; log: Logger; backend?: ContainerBackend; journal?: ClaimJournal },
): Promise<RunningOrchestrator> {
  const registry = createRegistry('orchestrator');
  const backend = deps.backend ?? new DockerBackend();
  // Before the instance is taken: a journal path that cannot be written stops the start with nothing to undo.
  const journal = deps.journal ?? openClaimJournal(config);
  const release = await acquireInstance(backend, config.instance);
  const orch = new Orchestrator(config, {
    routes: deps.routes,
    log: deps.log,
    backend,
    probe: new HttpProbe(),
    journal,
    registry,
    version: VERSION,
  });
  try {
    await orch.start();
  } catch (err) {
    await release();
    throw err;
  }
  const tickets = new TicketDesk(orch);
  const handle = publicApp(orch, tickets, config, deps.log).callback();
  const publicServer = createServer(handle);
  const adminServer = serverFor(adminApp(orch, config, registry, deps.log));
  publicServer.keepAliveTimeout = 65_000;
  let url: string;
  let adminUrl: string;
  try {
    url = `http://${await listenOn(publicServer, config.port, config.ip)}`;
    adminUrl = `http://${await listenOn(adminServer, config.adminPort, config.adminIp)}`;
  } catch (err) {
    tickets.close();
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
    handle,
    close() {
      closing ??= (async () => {
        tickets.close();
        await orch.stop();
        // Long polls would hold shutdown for seconds: cut every connection at once.
        await Promise.all([closeServer(publicServer, 0), closeServer(adminServer, 0), release()]);
      })();
      return closing;
    },
  };
}
