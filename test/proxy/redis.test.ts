import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    // One route under two spellings, deleted under one: no record of it may come back.
    await first.routes.addRoute('//user/twice/', { target: upstream.url });
    await first.routes.addRoute('/user/twice', { target: upstream.url });
    await first.routes.deleteRoute('/user/twice');
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

  test('two proxy processes share one table and see changes within a second (pub/sub: the periodic re-read is 10 minutes away)', async () => {
    const flags = ['--storage-backend', redis.url, '--activity-flush-ms', '200', '--resync-ms', '600000'];
    const pidFile = join(mkdtempSync(join(tmpdir(), 'nbpool-pid-')), 'proxy.pid');
    const one = await startChildProxy([...flags, '--pid-file', pidFile]);
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(one.child.pid));
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
      assert.ok(seenAfter < 1000);
    } finally {
      assert.equal(await one.stop(), 0, 'clean exit on SIGTERM');
      assert.equal(existsSync(pidFile), false, 'pid file removed on exit');
      assert.equal(await two.stop(), 0);
    }
  });

  test('a change written behind the proxy\'s back (no pub/sub message) is picked up by the periodic re-read', async () => {
    const proxy = await startTestProxy(['--storage-backend', redis.url, '--resync-ms', '300']);
    try {
      const direct = createClient({ url: redis.url });
      await direct.connect();
      await direct.hSet('nbpool:routes', '/user/sneaky', JSON.stringify({ target: upstream.url, last_activity: new Date().toISOString() }));
      await direct.hSet('nbpool:routes', '/user/broken', '{not json');
      await direct.hSet('nbpool:routes', '/user/badtarget', JSON.stringify({ target: 42 }));
      await direct.quit();
      await waitFor(async () => (await proxy.routes.getRoutes())['/user/sneaky'], { timeoutMs: 3000, what: 'resync' });
      const listed = await proxy.routes.getRoutes();
      assert.equal(listed['/user/broken'], undefined);
      assert.equal(listed['/user/badtarget'], undefined);
      assert.equal((await fetch(`${proxy.publicUrl}/user/sneaky`)).status, 200);
      await proxy.routes.deleteRoute('/user/sneaky');
    } finally {
      await proxy.close();
    }
  });

  test('Redis going away: API changes get a 503 in bounded time, routing and reads keep working', async () => {
    const own = await startRedis();
    const proxy = await startTestProxy(['--storage-backend', own.url, '--activity-flush-ms', '100']);
    try {
      await proxy.routes.addRoute('/user/stays', { target: upstream.url });
      await own.stop();
      const started = Date.now();
      const res = await fetch(`${proxy.apiUrl}/api/routes/user/new`, {
        method: 'POST',
        headers: { Authorization: `token ${TOKEN}` },
        body: JSON.stringify({ target: upstream.url }),
      });
      assert.equal(res.status, 503);
      assert.match(await res.text(), /route store unavailable/);
      assert.ok(Date.now() - started < 10_000);
      assert.equal((await fetch(`${proxy.publicUrl}/user/stays/x`)).status, 200, 'routing from memory');
      const listed = await fetch(`${proxy.apiUrl}/api/routes`, { headers: { Authorization: `token ${TOKEN}` } });
      assert.deepEqual(Object.keys((await listed.json()) as object), ['/user/stays'], 'the failed add left no trace');
    } finally {
      const closing = Date.now();
      await proxy.close();
      assert.ok(Date.now() - closing < 15_000, 'close is bounded with the store down');
    }
  });
});
