/**
 * The redirector's two HTTP servers. Public: the one stable link (302 to a node with room, path
 * and query kept), POST /api/spawn forwarded, GET /api/stats. Admin (token): the node list, drain,
 * tmpnb-redirector's /hosts, and Prometheus /metrics. Handlers only parse, call the registry and
 * map typed errors to statuses.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge } from 'prom-client';
import { BadRequest, ConfigError, Forbidden, HttpError, MethodNotAllowed, NotFound, ServiceUnavailable, TooManyRequests } from '../shared/errors.js';
import { closeServer, listenOn } from '../shared/net.js';
import { decodePath, hasToken, parseJsonObject, readBody, sendError, sendJson } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { affinityCookie, readCookie } from '../shared/cookies.js';
import { statusPageHtml, type StatusSample } from '../shared/status-page.js';
import { createRegistry } from '../shared/metrics.js';
import type { RedirectorConfig } from './config.js';
import { NodeRegistry, normalizeNodeUrl, type NodeState } from './nodes.js';
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

const SPAWN_BODY_LIMIT = 64 * 1024;
const VERSION = '0.1.0';

/** The path and query exactly as the visitor sent them (absolute-form request targets reduced). */
function pathAndQuery(req: IncomingMessage): string {
  const target = req.url ?? '/';
  if (target.startsWith('/')) return target;
  try {
    const url = new URL(target);
    return url.pathname + url.search;
  } catch {
    throw new BadRequest(`bad request target ${JSON.stringify(target.slice(0, 200))}`);
  }
}

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
  const frameHeaders: Record<string, string> = config.frameAncestors ? { 'Content-Security-Policy': `frame-ancestors ${config.frameAncestors}` } : {};
  const corsHeaders: Record<string, string> = config.corsOrigin
    ? { 'Access-Control-Allow-Origin': config.corsOrigin, ...(config.corsOrigin === '*' ? {} : { Vary: 'Origin' }) }
    : {};

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

  function redirect(req: IncomingMessage, res: ServerResponse): void {
    const target = pathAndQuery(req);
    // A returning visitor goes back to their node while it takes visitors: their container is there.
    const known = readCookie(req, NODE_COOKIE);
    const home = known === undefined ? undefined : registry.list().find((n) => n.record.id === known);
    if (home && home.up && !registry.view(home).draining) {
      metrics.visitors.inc({ node: home.record.id, kind: 'returning' });
      res.writeHead(302, { ...frameHeaders, Location: home.record.url + target, 'Cache-Control': 'no-store', 'Content-Length': 0 });
      res.end();
      return;
    }
    const node = registry.choose();
    if (!node) {
      metrics.full.inc({ kind: 'page' });
      const html = waitingPage(config.retryAfter);
      res.writeHead(503, {
        ...frameHeaders,
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Retry-After': String(config.retryAfter),
        'Content-Length': Buffer.byteLength(html),
      });
      res.end(req.method === 'HEAD' ? undefined : html);
      return;
    }
    metrics.visitors.inc({ node: node.record.id, kind: 'redirect' });
    history.sent++;
    res.writeHead(302, {
      ...frameHeaders,
      Location: node.record.url + target,
      'Set-Cookie': affinityCookie(req, NODE_COOKIE, node.record.id, NODE_COOKIE_MAX_AGE_S),
      'Cache-Control': 'no-store',
      'Content-Length': 0,
    });
    res.end();
  }

  /** Forwards (query and body kept) to the chosen node; a node that fails or is full is skipped for the next choice. */
  async function spawn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, SPAWN_BODY_LIMIT);
    const target = pathAndQuery(req);
    const query = target.includes('?') ? target.slice(target.indexOf('?')) : '';
    const tried = new Set<string>();
    let sawFull = false;
    // Each failure takes its node out of the running until its next poll, so this ends.
    for (;;) {
      const node = registry.choose();
      if (!node || tried.has(node.record.id)) break;
      tried.add(node.record.id);
      const outcome = await forwardSpawn(node, query, body, req.headers['content-type']);
      if (outcome.kind === 'answer') {
        metrics.visitors.inc({ node: node.record.id, kind: 'spawn' });
        sendJson(res, outcome.status, outcome.body, corsHeaders);
        return;
      }
      metrics.spawnFailures.inc({ node: node.record.id });
      if (outcome.kind === 'full') {
        sawFull = true;
        registry.markFull(node.record.id);
      } else registry.markDown(node.record.id, outcome.error);
    }
    metrics.full.inc({ kind: 'api' });
    const error = sawFull || registry.list().some((n) => n.up)
      ? new TooManyRequests('every node is full; retry later', config.retryAfter)
      : new ServiceUnavailable('no node is up; retry later', config.retryAfter);
    sendJson(res, error.status, { status: error.status, message: error.message }, { ...corsHeaders, ...error.headers });
  }

  type SpawnOutcome = { kind: 'answer'; status: number; body: unknown } | { kind: 'full' } | { kind: 'failed'; error: string };

  async function forwardSpawn(node: NodeState, query: string, body: string, contentType: string | undefined): Promise<SpawnOutcome> {
    let response: Response;
    try {
      response = await fetch(`${node.record.url}/api/spawn${query}`, {
        method: 'POST',
        body,
        headers: { 'content-type': contentType ?? 'application/json', accept: 'application/json' },
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
    if (response.status === 429) return { kind: 'full' };
    if (response.status >= 500) return { kind: 'failed', error: `POST /api/spawn answered ${response.status}` };
    if (response.ok) {
      const url = (data as { url?: unknown } | undefined)?.url;
      if (typeof url !== 'string') return { kind: 'failed', error: 'POST /api/spawn answered without a "url"' };
      return { kind: 'answer', status: response.status, body: { ...(data as object), url: new URL(url, node.record.url + '/').href } };
    }
    // The node refused the request itself (4xx): the client's mistake, passed on as it is.
    return { kind: 'answer', status: response.status, body: data ?? { status: response.status, message: response.statusText } };
  }

  async function handlePublic(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (path === '/api/spawn' || path === '/api/spawn/') {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          ...corsHeaders,
          'Access-Control-Allow-Methods': 'POST, OPTIONS',
          'Access-Control-Allow-Headers': 'Content-Type',
          'Access-Control-Max-Age': '600',
        });
        res.end();
        return;
      }
      if (req.method !== 'POST') throw new MethodNotAllowed(['POST', 'OPTIONS']);
      return spawn(req, res);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowed(['GET', 'HEAD']);
    if (path === '/api/stats' || path === '/stats') {
      sendJson(res, 200, totals(), { ...corsHeaders, 'Cache-Control': 'no-store' });
      return;
    }
    redirect(req, res);
  }

  async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    return parseJsonObject(await readBody(req, SPAWN_BODY_LIMIT));
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    // The page holds no data; it sends the token (from the URL fragment) on its API calls.
    if ((path === '/' || path === '/status') && (req.method === 'GET' || req.method === 'HEAD')) {
      const html = statusPageHtml({ title: 'nbpool redirector', historyPath: '/api/stats/history', statsPath: '/api/stats' });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(html) });
      res.end(req.method === 'HEAD' ? undefined : html);
      return;
    }
    if (path === '/metrics') {
      if (req.method !== 'GET') throw new MethodNotAllowed(['GET']);
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text);
      return;
    }
    if (!hasToken(req, config.adminToken)) throw new Forbidden();
    if (path === '/api/stats' || path === '/api/stats/history') {
      if (req.method !== 'GET') throw new MethodNotAllowed(['GET']);
      return sendJson(res, 200, path === '/api/stats' ? totals() : { interval_ms: HISTORY_INTERVAL_MS, samples: history.samples });
    }
    if (path === '/api/nodes') {
      if (req.method === 'GET') return sendJson(res, 200, { nodes: registry.list().map((n) => registry.view(n)) });
      if (req.method !== 'POST') throw new MethodNotAllowed(['GET', 'POST']);
      const body = await jsonBody(req);
      if (body.id !== undefined && typeof body.id !== 'string') throw new BadRequest('"id" must be a string');
      const { node } = await registry.add({ url: body.url as string, ...(body.id === undefined ? {} : { id: body.id as string }) });
      return sendJson(res, 201, registry.view(node));
    }
    const match = /^\/api\/nodes\/([^/]+)(?:\/(drain|undrain))?\/?$/.exec(path);
    if (match) {
      const id = decodePath(match[1]!);
      if (match[2]) {
        if (req.method !== 'POST') throw new MethodNotAllowed(['POST']);
        const node = await registry.setDraining(id, match[2] === 'drain');
        return sendJson(res, 200, registry.view(node));
      }
      if (req.method === 'GET') return sendJson(res, 200, registry.view(registry.get(id)));
      if (req.method !== 'DELETE') throw new MethodNotAllowed(['GET', 'DELETE']);
      await registry.remove(id);
      return sendJson(res, 204, undefined);
    }
    if (path === '/hosts') {
      // tmpnb-redirector's API: {"host": url}; POST adds (idempotent), DELETE removes.
      if (req.method !== 'POST' && req.method !== 'DELETE') throw new MethodNotAllowed(['POST', 'DELETE']);
      const url = normalizeNodeUrl((await jsonBody(req)).host);
      if (req.method === 'POST') {
        const { node, created } = await registry.add({ url }, 'keep');
        return sendJson(res, created ? 201 : 200, registry.view(node));
      }
      const node = registry.findByUrl(url);
      if (!node) throw new NotFound(`no node with URL ${url}`);
      await registry.remove(node.record.id);
      return sendJson(res, 204, undefined);
    }
    throw new NotFound(`no admin route ${req.method} ${path}; see GET /api/nodes`);
  }

  const serve = (handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Server =>
    createServer((req, res) => void handler(req, res).catch((err: unknown) => sendError(res, err, log)));
  const publicServer = serve(handlePublic);
  const adminServer = serve(handleAdmin);
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
  log.info({ url, adminUrl, nodes: registry.list().length, store: config.stateStore }, 'redirector listening');

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
