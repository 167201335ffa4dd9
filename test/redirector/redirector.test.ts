/**
 * The redirector against stand-in nodes on loopback whose stats the tests set: spread, path and
 * query kept, nodes going down, drain, the admin API (ours and tmpnb-redirector's), persistence
 * across restarts (file and Redis), bad input, and the all-full waiting page and 429.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { parseRedirectorConfig } from '../../redirector/config.js';
import { nodeIdFor, type NodeView } from '../../redirector/nodes.js';
import { startRedirector, type RunningRedirector } from '../../redirector/server.js';
import { silentLogger } from '../../shared/log.js';
import { waitFor } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { startStandIn, type StandInNode } from './standin.js';

const TOKEN = 'test-admin-token';
const dirs: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function fileStore(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-redir-'));
  dirs.push(dir);
  return pathToFileURL(join(dir, 'nodes.json')).href;
}

async function redirector(args: string[], store = fileStore()): Promise<RunningRedirector> {
  const { config } = parseRedirectorConfig(
    ['--ip', '127.0.0.1', '--port', '0', '--admin-ip', '127.0.0.1', '--admin-port', '0', '--stats-period', '0.1', '--stats-timeout', '0.5', '--state-store', store, ...args],
    { ADMIN_AUTH_TOKEN: TOKEN },
  );
  const running = await startRedirector(config, silentLogger());
  cleanups.push(() => running.close());
  return running;
}

async function standIn(...args: Parameters<typeof startStandIn>): Promise<StandInNode> {
  const node = await startStandIn(...args);
  cleanups.push(() => node.close());
  return node;
}

interface StatsJson {
  available: number;
  capacity: number;
  room: number;
  remaining: number;
  nodes_up: number;
  nodes: NodeView[];
}

async function stats(r: RunningRedirector): Promise<StatsJson> {
  return (await (await fetch(`${r.url}/api/stats`)).json()) as StatsJson;
}

function waitForNodes(r: RunningRedirector, what: string, check: (nodes: NodeView[]) => boolean): Promise<StatsJson> {
  return waitFor(async () => {
    const s = await stats(r);
    return check(s.nodes) ? s : undefined;
  }, { what, timeoutMs: 10_000 });
}

/** GET with a raw request target (no client normalisation); resolves status and headers. */
function rawGet(base: string, target: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: target, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function locationOf(r: RunningRedirector, target = '/'): Promise<string | undefined> {
  const res = await rawGet(r.url, target);
  return res.status === 302 ? (res.headers.location as string) : undefined;
}

/** Which stand-in each of `n` visitors was sent to. */
async function spread(r: RunningRedirector, nodes: StandInNode[], n: number): Promise<Record<string, number>> {
  const got: Record<string, number> = Object.fromEntries(nodes.map((node) => [node.name, 0]));
  got.none = 0;
  for (let i = 0; i < n; i++) {
    const location = await locationOf(r);
    const node = nodes.find((x) => location?.startsWith(x.url + '/'));
    got[node ? node.name : 'none']!++;
  }
  return got;
}

function admin(r: RunningRedirector, method: string, path: string, body?: string, token = TOKEN): Promise<Response> {
  return fetch(r.adminUrl + path, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
    headers: { ...(token ? { authorization: `token ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  });
}

describe('spreading visitors', () => {
  test('a burst of 1,000 between two polls fills 100/200/700 exactly, then the waiting page and 429', async () => {
    const nodes = [await standIn('a', { available: 5, capacity: 100, room: 100 }), await standIn('b', { available: 5, capacity: 200, room: 200 }), await standIn('c', { available: 5, capacity: 700, room: 700 })];
    // One poll at start and none during the burst: only the redirector's own accounting spreads it.
    const r = await redirector(['--stats-period', '3600', ...nodes.flatMap((n) => ['--node', n.url])]);
    const s = await stats(r);
    assert.equal(s.nodes_up, 3);
    assert.equal(s.room, 1000);
    const got = await spread(r, nodes, 1000);
    assert.deepEqual(got, { a: 100, b: 200, c: 700, none: 0 });

    const full = await rawGet(r.url, '/notebooks/x.ipynb');
    assert.equal(full.status, 503);
    assert.equal(full.headers['retry-after'], '5');
    assert.match(full.body, /All notebooks are busy/);
    const api = await fetch(`${r.url}/api/spawn`, { method: 'POST' });
    assert.equal(api.status, 429);
    assert.equal(api.headers.get('retry-after'), '5');
    assert.match(((await api.json()) as { message: string }).message, /full/);
  });

  test('steady traffic follows the weights, and a node without `room` (tmpnb) weighs by `available`', async () => {
    const ours = await standIn('ours', { available: 10, capacity: 5000, room: 3000 });
    const tmpnb = await standIn('tmpnb', { available: 1000, capacity: 5000 }, { tmpnbOnly: true });
    const r = await redirector(['--node', ours.url, '--node', tmpnb.url]);
    await waitForNodes(r, 'both up', (n) => n.every((x) => x.up));
    const got = await spread(r, [ours, tmpnb], 400);
    // 3000 : 1000 with polls resetting the accounting all along: 300 : 100, give or take a few.
    assert.equal(got.none, 0);
    assert.ok(Math.abs(got.ours! - 300) <= 12, JSON.stringify(got));
  });

  test('a returning visitor (cookie) goes back to their node while it takes visitors', async () => {
    const a = await standIn('a', { available: 50, capacity: 100, room: 50 });
    const b = await standIn('b', { available: 50, capacity: 100, room: 50 });
    const r = await redirector(['--node', a.url, '--node', b.url]);
    await waitForNodes(r, 'both up', (n) => n.every((x) => x.up));
    const first = await rawGet(r.url, '/tree');
    assert.equal(first.status, 302);
    const cookie = String(first.headers['set-cookie']);
    assert.match(cookie, /^nbpool_node=n-[0-9a-f]{8}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=None; Secure; Partitioned$/);
    const home = String(first.headers.location).startsWith(a.url) ? a : b;
    const pair = cookie.split(';')[0]!;
    for (let i = 0; i < 6; i++) {
      const again = await rawGet(r.url, `/tree?i=${i}`, 'GET', { cookie: pair });
      assert.equal(again.headers.location, `${home.url}/tree?i=${i}`, 'the same node every time, path and query kept');
    }
    const id = /^nbpool_node=(.+)$/.exec(pair)![1]!;
    assert.equal((await admin(r, 'POST', `/api/nodes/${id}/drain`)).status, 200);
    const drained = await rawGet(r.url, '/tree', 'GET', { cookie: pair });
    assert.ok(!String(drained.headers.location).startsWith(home.url), 'a draining node takes no one, returning or not');
    const forged = await rawGet(r.url, '/tree', 'GET', { cookie: 'nbpool_node=n-00000000' });
    assert.equal(forged.status, 302, 'an unknown node id is ignored');
  });

  test('path and query are kept exactly, odd characters included, and the node receives them', async () => {
    const node = await standIn('a', { available: 1, capacity: 9, room: 9 });
    const r = await redirector(['--node', node.url]);
    await waitForNodes(r, 'node up', (n) => n[0]!.up);
    const targets = [
      '/',
      '/tree?',
      '/notebooks/a%20b/%C3%A9t%C3%A9.ipynb?x=1&y=%2F&z=%E2%9C%93&%23=frag',
      '//double//slashes/?a=b?c&&d=',
      "/user/stale-id/lab/tree/x.ipynb?token=abc&redirect=%2Fuser%2F1%2F&q=<'\">",
      '/spawn/notebooks/x.ipynb?kernel=python3',
      '/%2e%2e/%2F?%00=1',
    ];
    for (const target of targets) {
      const location = await locationOf(r, target);
      assert.equal(location, node.url + target, target);
      const landed = await rawGet(node.url, location!.slice(node.url.length));
      assert.equal(landed.body, `a ${target}`);
    }
    // An absolute-form request target keeps its path and query too.
    assert.equal(await locationOf(r, 'http://example.test/tree/x?y=1'), `${node.url}/tree/x?y=1`);
    const head = await rawGet(r.url, '/tree', 'HEAD');
    assert.equal(head.status, 302);
  });

  test('the link works in an iframe: no X-Frame-Options, CSP frame-ancestors as configured; CORS for the API', async () => {
    const node = await standIn('a', { available: 1, capacity: 9, room: 9 });
    const r = await redirector(['--node', node.url, '--frame-ancestors', 'https://publisher.example', '--cors-origin', 'https://publisher.example']);
    await waitForNodes(r, 'node up', (n) => n[0]!.up);
    const res = await rawGet(r.url, '/tree');
    assert.equal(res.headers['x-frame-options'], undefined);
    assert.equal(res.headers['content-security-policy'], 'frame-ancestors https://publisher.example');
    const preflight = await fetch(`${r.url}/api/spawn/`, { method: 'OPTIONS', headers: { origin: 'https://publisher.example', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://publisher.example');
    assert.match(preflight.headers.get('access-control-allow-methods')!, /POST/);
  });
});

describe('nodes going down and coming back', () => {
  test('a node whose server is gone, or whose stats hang, gets no visitors until it answers again', async () => {
    const a = await standIn('a', { available: 1, capacity: 100, room: 100 });
    const b = await standIn('b', { available: 1, capacity: 100, room: 100 });
    const r = await redirector(['--node', a.url, '--node', b.url]);
    await waitForNodes(r, 'both up', (n) => n.every((x) => x.up));
    let got = await spread(r, [a, b], 20);
    assert.ok(got.a! > 0 && got.b! > 0, JSON.stringify(got));

    await a.close();
    const down = await waitForNodes(r, 'a down', (n) => n.some((x) => x.url === a.url && !x.up));
    assert.match(down.nodes.find((x) => x.url === a.url)!.error!, /fetch failed|ECONNREFUSED/);
    got = await spread(r, [a, b], 30);
    assert.deepEqual(got, { a: 0, b: 30, none: 0 });

    b.hang = true;
    const hung = await waitForNodes(r, 'b down', (n) => n.every((x) => !x.up));
    assert.match(hung.nodes.find((x) => x.url === b.url)!.error!, /no answer within 500 ms/);
    assert.equal((await rawGet(r.url, '/')).status, 503);

    b.hang = false;
    await waitForNodes(r, 'b up again', (n) => n.some((x) => x.url === b.url && x.up));
    assert.equal(await locationOf(r, '/x'), `${b.url}/x`);
  });

  test('POST /api/spawn is forwarded with an absolute URL; a full or unreachable node is skipped at once', async () => {
    const a = await standIn('a', { available: 1, capacity: 100, room: 100 });
    const b = await standIn('b', { available: 1, capacity: 100, room: 100 });
    const r = await redirector(['--node', a.url, '--node', b.url]);
    await waitForNodes(r, 'both up', (n) => n.every((x) => x.up));
    const urls: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${r.url}/api/spawn${i % 2 ? '/' : ''}`, { method: 'POST' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      urls.push(((await res.json()) as { url: string }).url);
    }
    assert.ok(urls.every((u) => /^http:\/\/127\.0\.0\.1:\d+\/user\/[ab]-\d+\/$/.test(u)), urls.join());
    assert.ok(urls.some((u) => u.startsWith(a.url)) && urls.some((u) => u.startsWith(b.url)));
    const withQuery = await fetch(`${r.url}/api/spawn?image=tiny&path=%2Ftree`, { method: 'POST' });
    assert.equal(withQuery.status, 200);
    assert.ok([...a.visits, ...b.visits].includes('POST /api/spawn?image=tiny&path=%2Ftree'), 'the query reaches the node');

    // a refuses as full (its stats still say room): every spawn lands on b, none fails.
    a.spawnStatus = 429;
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${r.url}/api/spawn`, { method: 'POST' });
      assert.equal(res.status, 200);
      assert.ok(((await res.json()) as { url: string }).url.startsWith(b.url + '/user/b-'));
    }
    // a has room again (its next poll shows it); then b vanishes between two polls: the spawn
    // goes on to a at once and b is marked down.
    a.spawnStatus = 200;
    await waitForNodes(r, 'a has room again', (n) => n.some((x) => x.url === a.url && x.remaining > 0));
    await b.close();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${r.url}/api/spawn`, { method: 'POST' });
      assert.equal(res.status, 200);
      assert.ok(((await res.json()) as { url: string }).url.startsWith(a.url + '/user/a-'));
    }
  });

  test('a node whose spawn answer names no usable http(s) URL is skipped and marked down, never a 500 or a foreign scheme', async () => {
    for (const broken of ['http://[', 'javascript:alert(1)']) {
      const a = await standIn('a', { available: 1, capacity: 100, room: 100 });
      const b = await standIn('b', { available: 1, capacity: 100, room: 100 });
      a.spawnUrl = broken;
      const r = await redirector(['--node', a.url, '--node', b.url]);
      await waitForNodes(r, 'both up', (n) => n.every((x) => x.up));
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${r.url}/api/spawn`, { method: 'POST' });
        assert.equal(res.status, 200, broken);
        assert.ok(((await res.json()) as { url: string }).url.startsWith(b.url + '/user/b-'), broken);
      }
      // Smooth weighted round robin asks each of two equal nodes within two spawns.
      assert.ok(a.visits.includes('POST /api/spawn'), `${broken}: a was asked`);
    }
  });
});

describe('admin API', () => {
  test('add (ours and tmpnb /hosts), drain until empty, undrain, remove; GET shows it all', async () => {
    const a = await standIn('a', { available: 1, capacity: 100, room: 100, claimed: 3 });
    const b = await standIn('b', { available: 1, capacity: 100, room: 100 });
    const c = await standIn('c', { available: 1, capacity: 100, room: 100 }, { tmpnbOnly: true });
    const r = await redirector([]);
    assert.equal((await locationOf(r)) ?? 'none', 'none');

    const added = await admin(r, 'POST', '/api/nodes', JSON.stringify({ url: a.url + '/', id: 'host-a' }));
    assert.equal(added.status, 201);
    assert.equal(((await added.json()) as NodeView).url, a.url);
    const hosts = await admin(r, 'POST', '/hosts', JSON.stringify({ host: b.url }));
    assert.equal(hosts.status, 201);
    assert.equal((await admin(r, 'POST', '/hosts', JSON.stringify({ host: b.url }))).status, 200, 'tmpnb /hosts is idempotent');
    assert.equal((await admin(r, 'POST', '/api/nodes', JSON.stringify({ url: c.url }))).status, 201);
    await waitForNodes(r, 'three up', (n) => n.length === 3 && n.every((x) => x.up));
    const list = (await (await admin(r, 'GET', '/api/nodes')).json()) as { nodes: NodeView[] };
    assert.deepEqual(list.nodes.map((n) => n.id).sort(), ['host-a', nodeIdFor(b.url), nodeIdFor(c.url)].sort());
    assert.ok((await spread(r, [a, b, c], 30)).a! > 0);

    // Drain a: no new visitors while it still has 3; it shows drained once its claimed reach 0.
    const drained = (await (await admin(r, 'POST', '/api/nodes/host-a/drain')).json()) as NodeView;
    assert.equal(drained.draining, true);
    assert.equal(drained.drained, false);
    assert.equal((await spread(r, [a, b, c], 30)).a, 0);
    a.stats.claimed = 0;
    await waitFor(async () => ((await (await admin(r, 'GET', '/api/nodes/host-a')).json()) as NodeView).drained, { what: 'a drained' });
    assert.equal((await admin(r, 'POST', '/api/nodes/host-a/undrain')).status, 200);
    assert.ok((await spread(r, [a, b, c], 30)).a! > 0);

    // A node that reports draining itself is skipped too.
    b.stats.draining = true;
    await waitForNodes(r, 'b draining', (n) => n.some((x) => x.url === b.url && x.draining));
    assert.equal((await spread(r, [a, b, c], 20)).b, 0);

    assert.equal((await admin(r, 'DELETE', '/api/nodes/host-a')).status, 204);
    assert.equal((await admin(r, 'DELETE', '/hosts', JSON.stringify({ host: c.url }))).status, 204);
    assert.deepEqual(((await (await admin(r, 'GET', '/api/nodes')).json()) as { nodes: NodeView[] }).nodes.map((n) => n.url), [b.url]);
    assert.equal((await rawGet(r.url, '/')).status, 503, 'only draining b is left');
  });

  test('bad input gets a clear 4xx and changes nothing', async () => {
    const a = await standIn('a', { available: 1, capacity: 10, room: 10 });
    const r = await redirector(['--node', a.url]);
    const cases: [string, string, string | undefined, number, RegExp][] = [
      ['POST', '/api/nodes', JSON.stringify({ url: 'ftp://x.test' }), 400, /http or https/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'not a url' }), 400, /not a valid URL/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://' }), 400, /not a valid URL|no host/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://u:p@x.test' }), 400, /credentials/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://x.test/?a=1' }), 400, /query/],
      ['POST', '/api/nodes', JSON.stringify({ url: 42 }), 400, /non-empty string/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://x.test', id: '../etc' }), 400, /node id/],
      // Nothing reads a weight: taking it silently would mislead.
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://x.test', weight: 3 }), 400, /unknown key "weight"/],
      ['POST', '/api/nodes', JSON.stringify({ url: 'http://x.test', id: 5 }), 400, /"id" must be a string/],
      ['POST', '/api/nodes', JSON.stringify({ url: `http://x.test/${'a'.repeat(3000)}` }), 400, /at most 2048 characters/],
      ['POST', '/api/nodes', JSON.stringify({ url: a.url }), 409, /already known/],
      ['POST', '/api/nodes', '{"url": ', 400, /not valid JSON/],
      ['POST', '/api/nodes', '[1]', 400, /JSON object/],
      ['POST', '/api/nodes', undefined, 400, /empty/],
      ['DELETE', '/api/nodes/nope', undefined, 404, /no node "nope"/],
      ['POST', '/api/nodes/nope/drain', undefined, 404, /no node/],
      ['GET', '/api/nodes/%E0%A4%A', undefined, 400, /percent-encoding/],
      ['DELETE', '/hosts', JSON.stringify({ host: 'http://unknown.test' }), 404, /no node with URL/],
      ['POST', '/hosts', JSON.stringify({ host: 'javascript:alert(1)' }), 400, /http or https/],
      ['PUT', '/api/nodes', undefined, 405, /method not allowed/],
      ['GET', '/nowhere', undefined, 404, /no admin route/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await admin(r, method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${body}`);
      assert.match(((await res.json()) as { message: string }).message, message, `${method} ${path} ${body}`);
    }
    assert.equal((await admin(r, 'GET', '/api/nodes', undefined, '')).status, 403);
    assert.equal((await admin(r, 'GET', '/api/nodes', undefined, 'wrong')).status, 403);
    assert.equal((await fetch(`${r.url}/api/spawn`, { method: 'DELETE' })).status, 405);
    assert.equal((await fetch(`${r.url}/tree`, { method: 'PUT' })).status, 405);
    const list = (await (await admin(r, 'GET', '/api/nodes')).json()) as { nodes: NodeView[] };
    assert.deepEqual(list.nodes.map((n) => n.url), [a.url]);
    // A bad --node is a configuration error at start.
    assert.throws(() => parseRedirectorConfig(['--node', 'ftp://x']), /must use http or https/);
    assert.throws(() => parseRedirectorConfig(['--node', 'http://u:p@x.test']), /credentials/);
    const configFile = join(mkdtempSync(join(tmpdir(), 'nbpool-redir-')), 'config.json');
    dirs.push(dirname(configFile));
    writeFileSync(configFile, JSON.stringify({ nodes: [{ url: a.url, id: 'same' }, { url: 'http://127.0.0.2:9', id: 'same' }] }));
    await assert.rejects(redirector(['--config', configFile]), { name: 'ConfigError', message: /node id "same" is already used/ });
    writeFileSync(configFile, JSON.stringify({ nodes: [a.url, { url: a.url, weight: 2 }] }));
    assert.throws(() => parseRedirectorConfig(['--config', configFile]), /nodes\[1\]: unknown key "weight"/);
  });

  test('the redirector added as its own node is down, saying so: no loop, no figures counted twice', async () => {
    const a = await standIn('a', { available: 1, capacity: 10, room: 10 });
    const r = await redirector(['--node', a.url]);
    await waitForNodes(r, 'a up', (n) => n[0]!.up);
    // Under another of its names, as an operator might: 127.0.0.1 for localhost.
    const self = r.url.replace('127.0.0.1', 'localhost');
    assert.equal((await admin(r, 'POST', '/api/nodes', JSON.stringify({ url: self, id: 'self' }))).status, 201);
    const selfView = await waitFor(async () => {
      const list = (await (await admin(r, 'GET', '/api/nodes')).json()) as { nodes: NodeView[] };
      const view = list.nodes.find((n) => n.id === 'self');
      return view?.last_poll ? view : undefined;
    }, { what: 'the first poll of itself' });
    assert.equal(selfView.up, false);
    assert.match(selfView.error ?? '', /this redirector itself/);
    const stats = (await (await fetch(`${r.url}/api/stats`)).json()) as { capacity: number };
    assert.equal(stats.capacity, 10, 'only the real node counts');
    // A visitor whose cookie names it goes to the real node.
    const visit = await rawGet(r.url, '/x', 'GET', { cookie: 'nbpool_node=self' });
    assert.equal(visit.status, 302);
    assert.equal(visit.headers.location, `${a.url}/x`);
  });

  test('Prometheus /metrics on the admin port counts visitors and node state', async () => {
    const a = await standIn('a', { available: 1, capacity: 10, room: 10 });
    const r = await redirector(['--node', a.url]);
    await waitForNodes(r, 'up', (n) => n[0]!.up);
    await spread(r, [a], 3);
    const text = await (await fetch(`${r.adminUrl}/metrics`)).text();
    const id = nodeIdFor(a.url);
    assert.match(text, new RegExp(`nbpool_redirector_visitors_total\\{node="${id}",kind="redirect",program="redirector"\\} 3`));
    assert.match(text, new RegExp(`nbpool_redirector_node_up\\{node="${id}",program="redirector"\\} 1`));
  });
});

describe('persistence across restarts', () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  before(async () => {
    redis = await startRedis();
    cleanups.push(() => redis.stop());
  });

  for (const backend of ['file', 'redis'] as const) {
    test(`the node list and drain state survive a restart (${backend} store)`, async () => {
      const a = await standIn('a', { available: 1, capacity: 10, room: 10 });
      const b = await standIn('b', { available: 1, capacity: 10, room: 10 });
      const store = backend === 'file' ? fileStore() : `${redis.url}/0`;
      const first = await redirector(['--node', a.url], store);
      assert.equal((await admin(first, 'POST', '/api/nodes', JSON.stringify({ url: b.url, id: 'bee' }))).status, 201);
      assert.equal((await admin(first, 'POST', `/api/nodes/${nodeIdFor(a.url)}/drain`)).status, 200);
      await first.close();

      // Restarted without any --node: both come back, a still draining.
      const second = await redirector([], store);
      const s = await waitForNodes(second, 'both up', (n) => n.length === 2 && n.every((x) => x.up));
      assert.deepEqual(s.nodes.map((n) => [n.id, n.draining]).sort(), [['bee', false], [nodeIdFor(a.url), true]].sort());
      assert.equal((await spread(second, [a, b], 10)).b, 10);
      assert.equal((await admin(second, 'DELETE', '/api/nodes/bee')).status, 204);
      await second.close();
      const third = await redirector([], store);
      assert.deepEqual((await stats(third)).nodes.map((n) => n.id), [nodeIdFor(a.url)]);
    });
  }
});

test('a visitor on the waiting page in a real browser moves on to a node the moment one has room', async () => {
  const a = await standIn('a', { available: 0, capacity: 10, room: 0 });
  const r = await redirector(['--node', a.url]);
  await waitForNodes(r, 'up', (n) => n[0]!.up);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  cleanups.push(() => browser.close());
  const page = await browser.newPage();
  const first = await page.goto(`${r.url}/notebooks/x.ipynb?kernel=python3`);
  assert.equal(first?.status(), 503);
  assert.match(await page.textContent('h1') ?? '', /busy/);
  a.stats.room = 1;
  await page.waitForURL(`${a.url}/notebooks/x.ipynb?kernel=python3`, { timeout: 15_000 });
  assert.equal(await page.textContent('body'), 'a /notebooks/x.ipynb?kernel=python3');
});
