import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/net.js';
import { startChildProxy, startTestProxy, startUpstream, TOKEN, type Upstream } from './helpers.js';

describe('Redis-backed route table', () => {
  let redis: TestRedis;
  let upstream: Upstream;
  before(async () => {
    redis = await startRedis();
    upstream = await startUpstream('r');
  });
  after(async () => {
    await upstream.close();
    await redis.stop();
  });

  test('routes and last_activity survive a restart', async () => {
    const first = await startTestProxy(['--storage-backend', redis.url]);
    await first.routes.addRoute('/user/keep', { target: upstream.url, pool: 'p1' });
    await first.routes.addRoute('/user/gone', { target: upstream.url });
    await first.routes.deleteRoute('/user/gone');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await fetch(`${first.publicUrl}/user/keep/x`)).status, 200);
    const active = (await first.routes.getRoutes())['/user/keep']!.last_activity!;
    await first.close();

    const second = await startTestProxy(['--redis-url', redis.url]);
    const routes = await second.routes.getRoutes();
    assert.deepEqual(Object.keys(routes), ['/user/keep']);
    assert.equal(routes['/user/keep']!.pool, 'p1');
    assert.equal(routes['/user/keep']!.last_activity, active, 'last activity flushed on close');
    assert.equal((await fetch(`${second.publicUrl}/user/keep/y`)).status, 200);
    await second.routes.deleteRoute('/user/keep');
    await second.close();
  });

  test('two proxy processes share one table and see changes within a second', async () => {
    const flags = ['--storage-backend', redis.url, '--activity-flush-ms', '200', '--resync-ms', '500'];
    const one = await startChildProxy(flags);
    const two = await startChildProxy(flags).catch(async (err: unknown) => {
      await one.stop('SIGKILL');
      throw err;
    });
    try {
      const a = new HttpRouteTableClient(one.apiUrl, TOKEN);
      const b = new HttpRouteTableClient(two.apiUrl, TOKEN);
      await a.addRoute('/user/shared', { target: upstream.url });
      let started = Date.now();
      await waitFor(async () => (await b.getRoutes())['/user/shared'], { timeoutMs: 1000, intervalMs: 20, what: 'route added on one visible on two' });
      const seenAfter = Date.now() - started;
      assert.equal((await fetch(`${two.publicUrl}/user/shared/x`)).status, 200, 'two routes traffic');

      // Traffic on two moves last_activity as seen by one (coalesced flush).
      const before = Date.parse((await a.getRoutes())['/user/shared']!.last_activity!);
      await new Promise((r) => setTimeout(r, 50));
      await fetch(`${two.publicUrl}/user/shared/again`).then((r) => r.text());
      await waitFor(async () => Date.parse((await a.getRoutes())['/user/shared']!.last_activity!) > before, { timeoutMs: 3000, what: 'activity shared' });

      started = Date.now();
      await b.deleteRoute('/user/shared');
      await waitFor(async () => !(await a.getRoutes())['/user/shared'], { timeoutMs: 1000, intervalMs: 20, what: 'delete on two visible on one' });
      assert.equal((await fetch(`${one.publicUrl}/user/shared/x`)).status, 404);

      // A change written behind the proxies' backs (no pub/sub message) is picked up by the resync.
      const direct = createClient({ url: redis.url });
      await direct.connect();
      await direct.hSet('nbpool:routes', '/user/sneaky', JSON.stringify({ target: upstream.url, last_activity: new Date().toISOString() }));
      await direct.hSet('nbpool:routes', '/user/broken', '{not json');
      await direct.hSet('nbpool:routes', '/user/badtarget', JSON.stringify({ target: 42 }));
      await direct.quit();
      await waitFor(async () => (await a.getRoutes())['/user/sneaky'] && (await b.getRoutes())['/user/sneaky'], { timeoutMs: 3000, what: 'resync' });
      const listed = await a.getRoutes();
      assert.equal(listed['/user/broken'], undefined);
      assert.equal(listed['/user/badtarget'], undefined);
      assert.equal((await fetch(`${one.publicUrl}/user/sneaky`)).status, 200);
      assert.ok(seenAfter < 1000);
    } finally {
      assert.equal(await one.stop(), 0, 'clean exit on SIGTERM');
      assert.equal(await two.stop(), 0);
    }
  });
});
