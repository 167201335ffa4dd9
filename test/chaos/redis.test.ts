/**
 * Chaos: Redis, the proxy's shared route store, taken away under load. Restarted: the proxy keeps
 * serving from its table throughout, writes refused during the outage (a clear 503) go through
 * once it is back, nothing is lost, restarted with its data or without it. Gone for good: writes
 * are clear 503s, reads (traffic and GET /api/routes) still served.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { recordFigures, secondsSince } from './figures.js';
import { fetchSoon, proxyProcess, type ProxyProcess } from './stack.js';

const ROUTES = 20;
let upstream: Server;
let target: string;

before(async () => {
  upstream = createServer((req, res) => res.end(`upstream ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  target = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
after(() => new Promise((r) => upstream.close(r)));

/** Requests every route in turn until stopped; resolves to the failed requests and the total. */
function readLoad(proxy: ProxyProcess, paths: readonly string[]): () => Promise<{ failed: number; total: number }> {
  let running = true;
  let failed = 0;
  let total = 0;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const path = paths[i % paths.length]!;
      total++;
      try {
        const res = await fetchSoon(proxy.url + path + '/x');
        if (res.status !== 200 || (await res.text()) !== `upstream ${path}/x`) failed++;
      } catch {
        failed++;
      }
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { failed, total };
  };
}

async function addRoute(proxy: ProxyProcess, path: string): Promise<Response> {
  return fetchSoon(`${proxy.apiUrl}/api/routes${path}`, { method: 'POST', headers: { authorization: `token ${proxy.token}` }, body: JSON.stringify({ target }) });
}

async function withProxy(redis: TestRedis, run: (proxy: ProxyProcess, paths: string[]) => Promise<void>): Promise<void> {
  const proxy = await proxyProcess(target, redis.url, ['--resync-ms', '500']);
  await proxy.start();
  try {
    const paths = Array.from({ length: ROUTES }, (_, i) => `/user/r${i}`);
    for (const path of paths) assert.equal((await addRoute(proxy, path)).status, 201);
    await run(proxy, paths);
  } finally {
    await proxy.stop();
  }
}

for (const persist of [true, false]) {
  const kind = persist ? 'with its data' : 'empty (no persistence)';
  test(`Redis restarted ${kind} under load: served throughout, refused writes go through after, nothing lost`, {
    timeout: 120_000,
  }, async () => {
    const redis = await startRedis({ persist });
    try {
      await withProxy(redis, async (proxy, paths) => {
        const stopLoad = readLoad(proxy, paths);
        await new Promise((r) => setTimeout(r, 300));
        await redis.kill();
        await new Promise((r) => setTimeout(r, 1500)); // several resync periods without Redis
        const during = await addRoute(proxy, '/user/during');
        assert.equal(during.status, 503, 'a write without the store is refused');
        assert.match(await during.text(), /route store unavailable/);
        await redis.restart();
        const backAt = Date.now();
        // The client retries its refused write (as the orchestrator's reconcile does).
        await waitFor(async () => (await addRoute(proxy, '/user/during')).status === 201 || undefined, { timeoutMs: 20_000, what: 'a write accepted again' });
        const writesBack = secondsSince(backAt);
        await new Promise((r) => setTimeout(r, 1500)); // several resync periods with Redis back
        const load = await stopLoad();
        const routes = await proxy.routes.getRoutes();
        const lost = paths.filter((p) => !routes[p]);
        await recordFigures(`redis_restart_${persist ? 'persisted' : 'empty'}`, {
          visitors_lost: lost.length,
          containers_leaked: 0,
          seconds_to_recover: writesBack,
          requests_failed: load.failed,
          requests: load.total,
        });
        assert.equal(load.failed, 0, `every request served during the outage (${load.total} requests)`);
        assert.deepEqual(lost, [], 'every route still there');
        assert.ok(routes['/user/during'], 'the retried write landed');
        // And in Redis: a second proxy on the same store sees them all.
        const second = await proxyProcess(target, redis.url);
        await second.start();
        try {
          const shared = await second.routes.getRoutes();
          assert.deepEqual([...paths, '/user/during'].filter((p) => !shared[p]), [], 'the store holds every route');
        } finally {
          await second.stop();
        }
      });
    } finally {
      await redis.stop();
    }
  });
}

test('Redis gone for good: writes are clear 503s, reads are still served', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  await withProxy(redis, async (proxy, paths) => {
    await redis.stop();
    const stopLoad = readLoad(proxy, paths);
    await new Promise((r) => setTimeout(r, 2000));
    const write = await addRoute(proxy, '/user/new');
    assert.equal(write.status, 503);
    assert.match(await write.text(), /route store unavailable/);
    const removal = await fetchSoon(`${proxy.apiUrl}/api/routes/user/r0`, { method: 'DELETE', headers: { authorization: `token ${proxy.token}` } });
    assert.equal(removal.status, 503);
    const list = await proxy.routes.getRoutes();
    assert.equal(Object.keys(list).filter((p) => p.startsWith('/user/r')).length, ROUTES, 'GET /api/routes still answers from the table');
    const load = await stopLoad();
    assert.equal(load.failed, 0, `${load.total} requests`);
  });
});
