/** Admin API (token, pools, resize, refresh, drain, empty, claim, history, metrics) and named pools. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, waitForWarm, type Node } from './harness.js';

const TOKEN = 'admin-secret';
let node: Node;

before(async () => {
  await requireImage(TINY_IMAGE);
  node = await startNode('admin', ['--pool-size', '1', '--admin-auth-token', TOKEN], {
    pools: {
      lab: { command: 'tiny-notebook --base-url {base_path} --port {port}', size: 1, redirectUri: '/lab' },
    },
  });
});
after(() => node?.stop());

function admin(path: string, method = 'GET', body?: unknown, token = TOKEN) {
  return http(`${node.orch.adminUrl}${path}`, {
    method,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headers: token ? { Authorization: `token ${token}` } : {},
  });
}

async function poolIds(pool: string, state?: 'running'): Promise<string[]> {
  const list = await docker().listContainers({ all: state === undefined, filters: { label: [`${LABELS.instance}=${node.instance}`, `${LABELS.pool}=${pool}`] } });
  return list.map((c) => c.Labels[LABELS.user]!).sort();
}

test('the admin API needs the token', async () => {
  assert.equal((await admin('/api/pools', 'GET', undefined, '')).status, 403);
  assert.equal((await admin('/api/pools', 'GET', undefined, 'wrong')).status, 403);
  assert.equal((await admin('/metrics', 'GET', undefined, '')).status, 403);
});

test('named pools from the config file: own command, size and entry path; listed by the admin API', async () => {
  await waitForWarm(node, 'default', 1);
  await waitForWarm(node, 'lab', 1);
  const list = JSON.parse((await admin('/api/pools')).body) as { pools: Record<string, { size: number; redirect_uri: string }> };
  assert.deepEqual(Object.keys(list.pools).sort(), ['default', 'lab']);
  assert.equal(list.pools.lab!.redirect_uri, '/lab');
  const reply = await http(`${node.proxy.url}/spawn/?pool=lab`);
  assert.equal(reply.status, 302);
  assert.match(reply.headers.location as string, /^\/user\/[A-Za-z0-9]+\/lab$/);
  const route = (await node.proxy.routes.getRoutes())[(reply.headers.location as string).replace(/\/lab$/, '')];
  assert.equal(route?.pool, 'lab');
  // A reader following a mistyped link gets a page saying so, not JSON.
  const mistyped = await http(`${node.proxy.url}/spawn/?pool=nope`);
  assert.equal(mistyped.status, 404);
  assert.match(mistyped.headers['content-type'] as string, /text\/html/);
  assert.match(mistyped.body, /no pool named &quot;nope&quot;/);
});

test('bad admin input gets 4xx with a clear message', async () => {
  const cases: Array<[string, string, unknown, number, RegExp]> = [
    ['/api/pools/default/resize', 'POST', { size: -1 }, 400, /size must be a whole number/],
    ['/api/pools/default/resize', 'POST', { size: 'x' }, 400, /size must be/],
    ['/api/pools/default/resize', 'POST', {}, 400, /send \{"size": N\}/],
    ['/api/pools/default/resize', 'POST', '{not json', 400, /not valid JSON/],
    ['/api/pools/default/resize', 'POST', '[1]', 400, /must be a JSON object/],
    ['/api/pools/nope/resize', 'POST', { size: 1 }, 404, /no pool named "nope"/],
    ['/api/pools/default/explode', 'POST', {}, 404, /no pool action/],
    ['/api/pools/default/resize', 'GET', undefined, 405, /method not allowed/],
    ['/api/nothing', 'GET', undefined, 404, /no admin API/],
    ['/api/pools/default/claim', 'POST', { path: 3 }, 400, /"path" must be a string/],
    // A key nothing reads would mislead: refused, naming what the action takes.
    ['/api/pools/default/resize', 'POST', { size: 2, min: 1 }, 400, /unknown key "min"; this takes "size"/],
    ['/api/pools/default/drain', 'POST', { empty: true }, 400, /unknown key "empty"; this takes no body/],
    ['/api/pools/default/claim', 'POST', { path: '/x', pool: 'other' }, 400, /unknown key "pool"; this takes "path", "query"/],
  ];
  for (const [path, method, body, status, message] of cases) {
    const reply = await admin(path, method, body);
    assert.equal(reply.status, status, `${method} ${path} ${JSON.stringify(body)}: ${reply.body}`);
    assert.match(JSON.parse(reply.body).message, message);
  }
});

test('admin claim hands out a specific pool\'s container as JSON', async () => {
  await waitForWarm(node, 'lab', 1);
  const reply = await admin('/api/pools/lab/claim', 'POST', { path: '/lab/tree' });
  assert.equal(reply.status, 200, reply.body);
  const claim = JSON.parse(reply.body) as { id: string; pool: string; url: string; target: string };
  assert.equal(claim.pool, 'lab');
  assert.equal(claim.url, `/user/${claim.id}/lab/tree`);
  assert.match(claim.target, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await http(`${node.proxy.url}${claim.url}`)).status, 200);
});

test('resize grows and shrinks the warm pool', async () => {
  assert.equal((await admin('/api/pools/default/resize', 'POST', { size: 3 })).status, 200);
  await waitForWarm(node, 'default', 3);
  const reply = await admin('/api/pools/default/resize', 'POST', { size: 1 });
  assert.equal(JSON.parse(reply.body).size, 1);
  await waitForWarm(node, 'default', 1);
  await waitFor(async () => (await poolIds('default', 'running')).length === 1 + (await stats(node)).pools.default!.claimed || undefined, { what: 'surplus removed' });
});

test('refresh replaces every warm container (rolling)', async () => {
  await waitForWarm(node, 'lab', 1);
  const before = await poolIds('lab', 'running');
  const claimedBefore = (await stats(node)).pools.lab!.claimed;
  const reply = await admin('/api/pools/lab/refresh', 'POST');
  assert.equal(reply.status, 200);
  assert.equal(JSON.parse(reply.body).generation, 1);
  await waitFor(async () => {
    const figures = (await stats(node)).pools.lab!;
    const now = await poolIds('lab', 'running');
    const fresh = now.filter((id) => !before.includes(id));
    return figures.warm === 1 && fresh.length === 1 && now.length === 1 + claimedBefore ? true : undefined;
  }, { what: 'warm container replaced', timeoutMs: 15_000 });
});

test('drain stops hand-outs and removes warm ones; resume refills; empty also removes claimed ones', async () => {
  await waitForWarm(node, 'lab', 1);
  const drained = JSON.parse((await admin('/api/pools/lab/drain', 'POST')).body) as { draining: boolean };
  assert.equal(drained.draining, true);
  const refused = await http(`${node.proxy.url}/api/spawn?pool=lab`, { method: 'POST' });
  assert.equal(refused.status, 503);
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  await waitFor(async () => (await stats(node)).pools.lab!.warm === 0 || undefined, { what: 'warm drained' });
  assert.ok((await stats(node)).pools.lab!.claimed >= 1, 'drain leaves visitors alone');
  await admin('/api/pools/lab/resume', 'POST');
  await waitForWarm(node, 'lab', 1);
  await admin('/api/pools/lab/empty', 'POST');
  await waitFor(async () => (await poolIds('lab')).length === 0 || undefined, { what: 'pool emptied on the engine' });
  const routes = await node.proxy.routes.getRoutes();
  assert.ok(!Object.values(routes).some((r) => r.pool === 'lab'), 'claimed routes removed');
  await admin('/api/pools/lab/resume', 'POST');
});

test('stats on the admin port, history ring buffer and Prometheus metrics', async () => {
  await waitForWarm(node, 'default', 1);
  assert.equal((await http(`${node.proxy.url}/spawn/tree`)).status, 302);
  const s = JSON.parse((await admin('/api/stats')).body) as { capacity: number };
  assert.equal(s.capacity, 20);
  const history = await waitFor(async () => {
    const h = JSON.parse((await admin('/api/stats/history')).body) as {
      interval_ms: number;
      samples: Array<{ t: number; levels: Record<string, Record<string, number>>; figures: Record<string, number> }>;
    };
    return h.samples.some((x) => (x.figures['default.claims'] ?? 0) > 0) ? h : undefined;
  }, { what: 'a sample with a claim', timeoutMs: 5000 });
  assert.equal(history.interval_ms, 1000);
  const sample = history.samples.find((x) => x.figures['default.claims']! > 0)!;
  assert.ok(sample.figures['default.claim_p50_ms']! >= 0);
  assert.ok(sample.figures['default.claim_p99_ms']! >= sample.figures['default.claim_p50_ms']!);
  assert.ok(sample.figures.claims! >= sample.figures['default.claims']!);
  assert.deepEqual(Object.keys(sample.levels.lab!).sort(), ['claimed', 'starting', 'waiting', 'warm']);
  const page = await admin('/', 'GET', undefined, '');
  assert.equal(page.status, 200, 'the status page itself needs no token');
  assert.match(page.body, /\/api\/stats\/history/);
  const metrics = await admin('/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /nbpool_claims_total\{[^}]*pool="default"[^}]*\} [1-9]/);
  assert.match(metrics.body, /nbpool_pool_warm\{[^}]*pool="lab"/);
  assert.match(metrics.body, /nbpool_claim_seconds_bucket/);
});
