import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { BadRequest } from '../../shared/errors.js';
import type { RunningProxy } from '../../proxy/server.js';
import { startTestProxy, TOKEN } from './helpers.js';

/** Requests the way JupyterHub's CHP client sends them: token header, JSON body, quoted path. */
async function api(proxy: RunningProxy, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(proxy.apiUrl + path, {
    method,
    headers: { Authorization: `token ${TOKEN}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text && res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as unknown) : undefined };
}

describe('REST API (configurable-http-proxy compatible)', () => {
  let proxy: RunningProxy;
  before(async () => {
    proxy = await startTestProxy();
  });
  after(async () => {
    await proxy.close();
  });

  test('add, get, list, delete with raw requests, as JupyterHub does', async () => {
    const add = await api(proxy, 'POST', '/api/routes/user/alice%20b', { target: 'http://127.0.0.1:9', user: 'alice b', jupyterhub: true });
    assert.equal(add.status, 201);
    assert.equal(add.text, '');
    const one = await api(proxy, 'GET', '/api/routes/user/alice%20b/');
    assert.equal(one.status, 200);
    const route = one.json as Record<string, unknown>;
    assert.equal(route.target, 'http://127.0.0.1:9');
    assert.equal(route.user, 'alice b');
    assert.equal(route.jupyterhub, true);
    assert.ok(Number.isFinite(Date.parse(route.last_activity as string)));
    const all = await api(proxy, 'GET', '/api/routes');
    assert.equal(all.status, 200);
    assert.deepEqual(Object.keys(all.json as object), ['/user/alice b']);
    assert.equal((await api(proxy, 'DELETE', '/api/routes/user/alice%20b')).status, 204);
    assert.equal((await api(proxy, 'DELETE', '/api/routes/user/alice%20b')).status, 404);
    assert.equal((await api(proxy, 'GET', '/api/routes/user/alice%20b')).status, 404);
    assert.deepEqual((await api(proxy, 'GET', '/api/routes')).json, {});
  });

  test('HttpRouteTableClient drives it', async () => {
    const client = new HttpRouteTableClient(proxy.apiUrl, TOKEN);
    await client.addRoute('/user/x', { target: 'http://127.0.0.1:1234', pool: 'p' });
    const routes = await client.getRoutes();
    assert.equal(routes['/user/x']?.target, 'http://127.0.0.1:1234');
    assert.equal(routes['/user/x']?.pool, 'p');
    assert.deepEqual(await client.getRoutes(new Date(Date.now() - 60_000)), {});
    assert.ok((await client.getRoutes(new Date(Date.now() + 60_000)))['/user/x']);
    await client.deleteRoute('/user/x');
    await client.deleteRoute('/user/x');
    assert.deepEqual(await client.getRoutes(), {});
  });

  test('in-process client has the same semantics and validation', async () => {
    await proxy.routes.addRoute('/user/local/', { target: 'http://127.0.0.1:1', last_activity: '2000-01-01T00:00:00Z' });
    const routes = await proxy.routes.getRoutes();
    assert.ok(Date.parse(routes['/user/local']!.last_activity!) > Date.parse('2020-01-01'), 'last_activity is set on add');
    await assert.rejects(proxy.routes.addRoute('/x', { target: '' }), BadRequest);
    await assert.rejects(proxy.routes.addRoute('/x', { target: 'ftp://h' }), BadRequest);
    const cyclic: Record<string, unknown> = { target: 'http://127.0.0.1:1' };
    cyclic.self = cyclic;
    await assert.rejects(proxy.routes.addRoute('/x', cyclic as never), BadRequest);
    await assert.rejects(proxy.routes.getRoutes(new Date('nope')), BadRequest);
    await proxy.routes.deleteRoute('/user/local');
    await proxy.routes.deleteRoute('/user/local');
    assert.deepEqual(await proxy.routes.getRoutes(), {});
  });

  test('token required: 403 without or with a wrong one', async () => {
    assert.equal((await api(proxy, 'GET', '/api/routes', undefined, { Authorization: '' })).status, 403);
    assert.equal((await api(proxy, 'GET', '/api/routes', undefined, { Authorization: 'token nope' })).status, 403);
    assert.equal((await api(proxy, 'POST', '/api/routes/a', { target: 'http://h' }, { Authorization: 'token nope' })).status, 403);
  });

  test('inactive_since and inactiveSince filter; a bad date is 400', async () => {
    await proxy.routes.addRoute('/a', { target: 'http://127.0.0.1:1' });
    const past = new Date(Date.now() - 3_600_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    await new Promise((r) => setTimeout(r, 5));
    await proxy.routes.addRoute('/b', { target: 'http://127.0.0.1:2', user: 'b' });
    assert.deepEqual((await api(proxy, 'GET', `/api/routes?inactive_since=${past}`)).json, {});
    // Idle since a moment in the future: every route, each with its whole record.
    const idle = (await api(proxy, 'GET', `/api/routes?inactive_since=${future}`)).json as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(idle).sort(), ['/a', '/b']);
    assert.equal(idle['/a']!.target, 'http://127.0.0.1:1');
    assert.equal(idle['/b']!.target, 'http://127.0.0.1:2');
    assert.equal(idle['/b']!.user, 'b');
    for (const route of Object.values(idle)) assert.ok(Date.parse(route.last_activity as string) <= Date.now(), 'last_activity is a date not after now');
    // Idle since just after /a's last activity but before /b's: /a only.
    const aActive = Date.parse(idle['/a']!.last_activity as string);
    const bActive = Date.parse(idle['/b']!.last_activity as string);
    assert.ok(bActive > aActive, 'added later, active later');
    const between = (await api(proxy, 'GET', `/api/routes?inactiveSince=${new Date(bActive).toISOString()}`)).json as Record<string, { target: string }>;
    assert.deepEqual(Object.keys(between), ['/a'], 'only routes idle since strictly before the cutoff');
    assert.equal(between['/a']!.target, 'http://127.0.0.1:1');
    const bad = await api(proxy, 'GET', '/api/routes?inactive_since=yesterday-ish');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /ISO8601/);
    await proxy.routes.deleteRoute('/a');
    await proxy.routes.deleteRoute('/b');
  });

  test('every bad input is a clear 4xx', async () => {
    const cases: Array<[string, string, unknown, number, RegExp?]> = [
      ['POST', '/api/routes/x', '{not json', 400, /not valid JSON/],
      ['POST', '/api/routes/x', '', 400, /empty/],
      ['POST', '/api/routes/x', '[1,2]', 400, /object/],
      ['POST', '/api/routes/x', '"str"', 400, /object/],
      ['POST', '/api/routes/x', '['.repeat(10_000) + ']'.repeat(10_000), 400, /deeper/],
      ['POST', '/api/routes/x', { notarget: 1 }, 400, /target/],
      ['POST', '/api/routes/x', { target: 5 }, 400, /target/],
      ['POST', '/api/routes/x', { target: null }, 400, /target/],
      ['POST', '/api/routes/x', { target: '' }, 400, /empty/],
      ['POST', '/api/routes/x', { target: '   ' }, 400, /empty/],
      ['POST', '/api/routes/x', { target: 'not a url' }, 400, /valid URL/],
      ['POST', '/api/routes/x', { target: 'javascript:alert(1)' }, 400, /http/],
      ['POST', '/api/routes/x', { target: 'http://h', big: 'x'.repeat(70_000) }, 400, /larger/],
      ['POST', '/api/routes/x', { target: 'http://h', deep: JSON.parse('{"a":'.repeat(32) + '1' + '}'.repeat(32)) }, 400, /deeper/],
      ['POST', '/api/routes/%E0%A4%A', { target: 'http://h' }, 400, /percent-encoding/],
      ['GET', '/api/routes/%', undefined, 400, /percent-encoding/],
      ['DELETE', '/api/routes/%zz', undefined, 400, /percent-encoding/],
      ['DELETE', '/api/routes', undefined, 405],
      ['PUT', '/api/routes/x', { target: 'http://h' }, 405],
      ['PATCH', '/api/routes', '{}', 405],
      ['GET', '/api/other', undefined, 404],
      ['GET', '/', undefined, 404],
      ['POST', '/api/routes/' + 'a/'.repeat(1100), { target: 'http://h' }, 400, /longer/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await api(proxy, method, path, body);
      assert.equal(res.status, status, `${method} ${path.slice(0, 50)} ${String(body).slice(0, 30)}: ${res.text}`);
      if (message) assert.match(res.text, message, `${method} ${path.slice(0, 50)}`);
      if (status !== 405) assert.ok((res.json as { message?: string }).message, 'JSON message');
    }
    assert.deepEqual((await api(proxy, 'GET', '/api/routes')).json, {}, 'nothing bad was stored');
  });

  test('extra fields cannot break the listing for others', async () => {
    await proxy.routes.addRoute('/good', { target: 'http://127.0.0.1:1' });
    const hostile = [
      { target: 'http://127.0.0.1:2', __proto__: { polluted: true } },
      JSON.parse('{"target":"http://127.0.0.1:3","__proto__":{"x":1},"constructor":{"prototype":{"y":2}}}'),
      { target: 'http://127.0.0.1:4', nested: JSON.parse('{"a":'.repeat(30) + '1' + '}'.repeat(30)) },
      { target: 'http://127.0.0.1:5', toJSON: 'not a function', last_activity: { evil: true } },
    ];
    for (const [i, data] of hostile.entries()) {
      const res = await api(proxy, 'POST', `/api/routes/h${i}`, JSON.stringify(data));
      assert.ok(res.status === 201 || res.status === 400, `${res.status} ${res.text}`);
    }
    const list = await api(proxy, 'GET', '/api/routes');
    assert.equal(list.status, 200);
    const routes = list.json as Record<string, Record<string, unknown>>;
    assert.equal(routes['/good']?.target, 'http://127.0.0.1:1');
    assert.equal(typeof routes['/h3']?.last_activity, 'string');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).y, undefined);
    for (const path of Object.keys(routes)) await proxy.routes.deleteRoute(path);
  });

  test('POST on the collection adds the root route; trailing slashes ignored', async () => {
    assert.equal((await api(proxy, 'POST', '/api/routes', { target: 'http://127.0.0.1:7' })).status, 201);
    assert.equal(((await api(proxy, 'GET', '/api/routes')).json as Record<string, { target: string }>)['/']?.target, 'http://127.0.0.1:7');
    assert.equal((await api(proxy, 'POST', '/api/routes/u/', { target: 'http://127.0.0.1:8' })).status, 201);
    assert.equal((await api(proxy, 'GET', '/api/routes/u')).status, 200);
    assert.equal((await api(proxy, 'DELETE', '/api/routes/')).status, 204);
    assert.equal((await api(proxy, 'DELETE', '/api/routes/u')).status, 204);
    // Extra leading slashes name the same route the trie matches, never a second record of it.
    assert.equal((await api(proxy, 'POST', '/api/routes//dbl//', { target: 'http://127.0.0.1:9' })).status, 201);
    assert.equal((await api(proxy, 'POST', '/api/routes/dbl', { target: 'http://127.0.0.1:10' })).status, 201);
    const listed = (await api(proxy, 'GET', '/api/routes')).json as Record<string, { target: string }>;
    assert.deepEqual(Object.keys(listed).filter((k) => k.includes('dbl')), ['/dbl']);
    assert.equal(listed['/dbl']!.target, 'http://127.0.0.1:10');
    assert.equal((await api(proxy, 'DELETE', '/api/routes//dbl')).status, 204);
    assert.equal((await api(proxy, 'GET', '/api/routes/dbl')).status, 404);
  });
});
