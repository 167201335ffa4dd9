/**
 * The redirector's two HTTP servers as koa apps. Public: the one stable link (302 to a node with
 * room, path and query kept), POST /api/spawn forwarded, GET /api/stats. Admin (token): the node
 * list, drain, tmpnb-redirector's /hosts, and Prometheus /metrics. Handlers only parse, call the
 * registry and map typed errors to statuses; routes are declared where the apps are built.
 */
import { Router } from '@koa/router';
import { Counter, Gauge } from 'prom-client';
import { BadRequest, ConfigError, HttpError, NotFound, ServiceUnavailable, TooManyRequests } from '../shared/errors.js';
import { closeServer, listenOn } from '../shared/net.js';
import { readBody } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { affinityCookie, readCookie } from '../shared/cookies.js';
import { clientAddress, trustedProxies } from '../shared/client-address.js';
import { CLIENT_LIMIT_REASONS } from '../shared/types.js';
import { statusPageHtml, type StatusSample } from '../shared/status-page.js';
import { redactedStoreUrl } from '../shared/store.js';
import { createRegistry } from '../shared/metrics.js';
import { VERSION } from '../shared/version.js';
import {
  apiApp,
  cors,
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
} from '../shared/web.js';
import { nodeSpecProblem, type RedirectorConfig } from './config.js';
import { NodeRegistry, normalizeNodeUrl, REDIRECTOR_ID_HEADER, type NodeState } from './nodes.js';
import { waitingPage } from './waiting.js';

/** The cookie that brings a returning visitor back to the node that holds their container. */
const NODE_COOKIE = 'nbpool_node';
const NODE_COOKIE_MAX_AGE_S = 24 * 3600;
const HISTORY_INTERVAL_MS = 1000;
/** Ten minutes of one-second samples. */
const HISTORY_SAMPLES = 600;

export interface RunningRedirector {
  /** The public link, e.g. http://127.0.0.1:9000 (the bound port, also when 0 was asked). */
  url: string;
  adminUrl: string;
  close(): Promise<void>;
}

const BODY_LIMIT = 64 * 1024;

export async function startRedirector(config: RedirectorConfig, log: Logger): Promise<RunningRedirector> {
  const registry = await NodeRegistry.open(config.stateStore, log);
  for (const spec of config.nodes) {
    try {
      await registry.add(spec, 'keep');
    } catch (err) {
      await registry.close();
      throw err instanceof HttpError ? new ConfigError(`node ${JSON.stringify(spec.url)}: ${err.message}`) : err;
    }
  }
  const metrics = createMetrics(registry);
  // For the status page: per node claimed / warm / free room each second, and visitors sent.
  const history: { samples: StatusSample[]; sent: number } = { samples: [], sent: 0 };
  const trusted = trustedProxies(config.trustedProxy);
  const frameHeaders: Record<string, string> = config.frameAncestors ? { 'Content-Security-Policy': `frame-ancestors ${config.frameAncestors}` } : {};

  function totals() {
    const views = registry.list().map((n) => registry.view(n));
    const up = views.filter((v) => v.up);
    const sum = (f: (v: (typeof views)[number]) => number) => up.reduce((a, v) => a + f(v), 0);
    return {
      available: sum((v) => v.available),
      capacity: sum((v) => v.capacity),
      room: sum((v) => (v.draining ? 0 : v.room)),
      remaining: sum((v) => v.remaining),
      version: VERSION,
      nodes_up: up.length,
      nodes: views,
    };
  }

  /** Any other GET: 302 to a node with room, the path and query kept exactly. */
  function visit(ctx: Context): void {
    // The request target as sent (origin-form): a bare `?` is kept too.
    const target = ctx.url;
    // A returning visitor goes back to their node while it takes visitors: their container is there.
    const known = readCookie(ctx.req, NODE_COOKIE);
    const home = known === undefined ? undefined : registry.list().find((n) => n.record.id === known);
    // A home whose engine is gone holds no live container and can start none: choose afresh.
    if (home && home.up && !registry.view(home).draining && home.stats?.engine_lost !== true) {
      metrics.visitors.inc({ node: home.record.id, kind: 'returning' });
      return redirect(ctx, home.record.url + target, frameHeaders);
    }
    const node = registry.choose();
    if (!node) {
      metrics.full.inc({ kind: 'page' });
      return sendHtml(ctx, 503, waitingPage(config.retryAfter), { ...frameHeaders, 'Retry-After': String(config.retryAfter) });
    }
    metrics.visitors.inc({ node: node.record.id, kind: 'redirect' });
    history.sent++;
    redirect(ctx, node.record.url + target, { ...frameHeaders, 'Set-Cookie': affinityCookie(ctx.req, NODE_COOKIE, node.record.id, NODE_COOKIE_MAX_AGE_S) });
  }

  /**
   * Forwards (query and body kept) to the chosen node, naming the visitor in X-Forwarded-For so the
   * node counts them, not us, against its per-client caps; a node that fails or is full is skipped
   * for the next choice. A node refusing this client (at its cap or rate) answers for every node:
   * trying others would hand one client a share on each.
   */
  async function spawn(ctx: Context): Promise<void> {
    const body = await readBody(ctx.req, BODY_LIMIT);
    const client = clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for'], trusted);
    const tried = new Set<string>();
    let sawFull = false;
    // Each failure takes its node out of the running until its next poll, so this ends.
    for (;;) {
      const node = registry.choose();
      if (!node || tried.has(node.record.id)) break;
      tried.add(node.record.id);
      const outcome = await forwardSpawn(node, ctx.search, body, ctx.get('content-type') || undefined, client);
      if (outcome.kind === 'answer' || outcome.kind === 'refused') {
        if (outcome.kind === 'answer') metrics.visitors.inc({ node: node.record.id, kind: 'spawn' });
        // The node took no room for a refused client: its share of this node's room is given back.
        else registry.unsend(node.record.id);
        ctx.status = outcome.status;
        ctx.set(outcome.headers);
        ctx.body = outcome.body;
        return;
      }
      metrics.spawnFailures.inc({ node: node.record.id });
      if (outcome.kind === 'full') {
        sawFull = true;
        registry.markFull(node.record.id);
      } else registry.markDown(node.record.id, outcome.error);
    }
    metrics.full.inc({ kind: 'api' });
    throw sawFull || registry.list().some((n) => n.up)
      ? new TooManyRequests('every node is full; retry later', config.retryAfter)
      : new ServiceUnavailable('no node is up; retry later', config.retryAfter);
  }

  type SpawnOutcome =
    | { kind: 'answer'; status: number; body: unknown; headers: Record<string, string> }
    | { kind: 'refused'; status: 429; body: unknown; headers: Record<string, string> }
    | { kind: 'full' }
    | { kind: 'failed'; error: string };

  async function forwardSpawn(node: NodeState, query: string, body: string, contentType: string | undefined, client: string): Promise<SpawnOutcome> {
    let response: Response;
    try {
      response = await fetch(`${node.record.url}/api/spawn${query}`, {
        method: 'POST',
        body,
        headers: { 'content-type': contentType ?? 'application/json', accept: 'application/json', 'x-forwarded-for': client },
        signal: AbortSignal.timeout(config.spawnTimeout * 1000),
      });
    } catch (err) {
      log.warn({ node: node.record.id, err }, 'spawn on node failed');
      return { kind: 'failed', error: `POST /api/spawn failed: ${(err as Error).message}` };
    }
    let data: unknown;
    try {
      data = await response.json();
    } catch {
      data = undefined;
    }
    if (response.status === 429) {
      const reason = (data as { reason?: unknown } | undefined)?.reason;
      if (!(CLIENT_LIMIT_REASONS as readonly unknown[]).includes(reason)) return { kind: 'full' };
      return { kind: 'refused', status: 429, body: data, headers: { 'Retry-After': response.headers.get('retry-after') ?? String(config.retryAfter) } };
    }
    if (response.status >= 500) return { kind: 'failed', error: `POST /api/spawn answered ${response.status}` };
    if (response.ok) {
      const url = visitorUrlFrom((data as { url?: unknown } | undefined)?.url, node.record.url);
      if (url === undefined) return { kind: 'failed', error: 'POST /api/spawn answered without a usable http(s) "url"' };
      return { kind: 'answer', status: response.status, body: { ...(data as object), url }, headers: {} };
    }
    // The node refused the request itself (4xx): the client's mistake, passed on as it is.
    return { kind: 'answer', status: response.status, body: data ?? { status: response.status, message: response.statusText }, headers: {} };
  }

  const publicApi = new Router({ sensitive: true });
  publicApi.post('/api/spawn', spawn);
  publicApi.get(['/api/stats', '/stats'], (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set(REDIRECTOR_ID_HEADER, registry.selfId);
    ctx.body = totals();
  });
  const publicPages = new Router({ sensitive: true });
  publicPages.get('{/*rest}', visit);
  const publicServer = serverFor(
    apiApp(
      log,
      cors({ origin: config.corsOrigin, paths: /^\/(?:api\/spawn|api\/stats|stats)\/?$/, methods: 'POST, OPTIONS', headers: 'Content-Type' }),
      publicApi.routes(),
      methodNotAllowed(),
      publicPages.routes(),
      methodNotAllowed(),
      notFound((ctx) => `nothing at ${ctx.path.slice(0, 200)}`),
    ),
  );

  // The page holds no data; it sends the token (from the URL fragment) on its API calls.
  const adminPages = new Router({ sensitive: true });
  adminPages.get(['/', '/status'], staticPage(statusPageHtml({ title: 'nbpool redirector', historyPath: '/api/stats/history', statsPath: '/api/stats' })));
  adminPages.get('/metrics', metricsRoute(metrics.registry));
  const body = jsonBody({ limit: BODY_LIMIT });
  const admin = new Router({ sensitive: true });
  admin.get('/api/stats', (ctx) => {
    ctx.body = totals();
  });
  admin.get('/api/stats/history', (ctx) => {
    ctx.body = { interval_ms: HISTORY_INTERVAL_MS, samples: history.samples };
  });
  admin.get('/api/nodes', (ctx) => {
    ctx.body = { nodes: registry.list().map((n) => registry.view(n)) };
  });
  admin.post('/api/nodes', body, async (ctx) => {
    const problem = nodeSpecProblem(ctx.request.body!);
    if (problem !== undefined) throw new BadRequest(problem);
    const { id, url } = ctx.request.body! as { id?: string; url: string };
    const { node } = await registry.add({ url, ...(id === undefined ? {} : { id }) });
    ctx.status = 201;
    ctx.body = registry.view(node);
  });
  admin.get('/api/nodes/:id', (ctx) => {
    ctx.body = registry.view(registry.get(ctx.params.id!));
  });
  admin.delete('/api/nodes/:id', async (ctx) => {
    await registry.remove(ctx.params.id!);
    ctx.status = 204;
  });
  for (const verb of ['drain', 'undrain'] as const) {
    admin.post(`/api/nodes/:id/${verb}`, async (ctx) => {
      ctx.body = registry.view(await registry.setDraining(ctx.params.id!, verb === 'drain'));
    });
  }
  // tmpnb-redirector's API: {"host": url}; POST adds (idempotent), DELETE removes.
  admin.post('/hosts', body, async (ctx) => {
    const { node, created } = await registry.add({ url: normalizeNodeUrl(ctx.request.body!.host) }, 'keep');
    ctx.status = created ? 201 : 200;
    ctx.body = registry.view(node);
  });
  admin.delete('/hosts', body, async (ctx) => {
    const url = normalizeNodeUrl(ctx.request.body!.host);
    const node = registry.findByUrl(url);
    if (!node) throw new NotFound(`no node with URL ${url}`);
    await registry.remove(node.record.id);
    ctx.status = 204;
  });
  const adminServer = serverFor(
    apiApp(
      log,
      adminPages.routes(),
      requireToken(config.adminAuthToken),
      wellFormedPath,
      admin.routes(),
      methodNotAllowed(),
      notFound((ctx) => `no admin route ${ctx.method} ${ctx.path}; see GET /api/nodes`),
    ),
  );
  const url = `http://${await listenOn(publicServer, config.port, config.ip)}`;
  let adminUrl: string;
  try {
    adminUrl = `http://${await listenOn(adminServer, config.adminPort, config.adminIp)}`;
  } catch (err) {
    await closeServer(publicServer);
    await registry.close();
    throw err;
  }
  await registry.startPolling(config.statsPeriod * 1000, config.statsTimeout * 1000);
  const sampler = setInterval(() => {
    const levels: StatusSample['levels'] = {};
    for (const node of registry.list()) {
      const view = registry.view(node);
      levels[view.id] = { claimed: view.claimed ?? 0, warm: view.available, free: Math.max(0, view.room - view.available) };
    }
    history.samples.push({ t: Date.now(), levels, figures: { sent: history.sent } });
    if (history.samples.length > HISTORY_SAMPLES) history.samples.shift();
    history.sent = 0;
  }, HISTORY_INTERVAL_MS);
  sampler.unref();
  log.info({ url, adminUrl, nodes: registry.list().length, store: redactedStoreUrl(config.stateStore) }, 'redirector listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    adminUrl,
    // Idempotent: a second close (a signal during shutdown, a test's clean-up) waits for the first.
    close() {
      clearInterval(sampler);
      closing ??= Promise.all([closeServer(publicServer), closeServer(adminServer)]).then(() => registry.close());
      return closing;
    },
  };
}

/**
 * The visitor's URL from a node's spawn answer, made absolute against the node: only http(s), so a
 * broken or hostile node can neither fail the request (an unparsable URL) nor send the visitor to
 * a `javascript:` or other scheme through us.
 */
function visitorUrlFrom(url: unknown, nodeUrl: string): string | undefined {
  if (typeof url !== 'string') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url, nodeUrl + '/');
  } catch {
    return undefined;
  }
  return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
}

function createMetrics(registry: NodeRegistry) {
  const metricsRegistry = createRegistry('redirector');
  const perNode = (name: string, help: string, value: (n: NodeState) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['node'],
      registers: [metricsRegistry],
      collect() {
        this.reset();
        for (const node of registry.list()) this.set({ node: node.record.id }, value(node));
      },
    });
  perNode('nbpool_redirector_node_up', '1 when the node answered its last poll', (n) => (n.up ? 1 : 0));
  perNode('nbpool_redirector_node_draining', '1 while the node is draining', (n) => (registry.view(n).draining ? 1 : 0));
  perNode('nbpool_redirector_node_room', 'free capacity the node reported at its last poll', (n) => registry.view(n).room);
  return {
    registry: metricsRegistry,
    visitors: new Counter({ name: 'nbpool_redirector_visitors_total', help: 'visitors sent to a node', labelNames: ['node', 'kind'], registers: [metricsRegistry] }),
    full: new Counter({ name: 'nbpool_redirector_full_total', help: 'visitors turned to wait: every node full or down', labelNames: ['kind'], registers: [metricsRegistry] }),
    spawnFailures: new Counter({ name: 'nbpool_redirector_spawn_failures_total', help: 'forwarded spawns a node failed or refused as full', labelNames: ['node'], registers: [metricsRegistry] }),
  };
}
