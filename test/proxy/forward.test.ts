import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { RunningProxy } from '../../proxy/server.js';
import { waitFor } from '../helpers/net.js';
import { deadUrl, rawExchange, selfSignedCert, startTestProxy, startUpstream, type Upstream } from './helpers.js';

interface Echo {
  name: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string;
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const text = await res.text();
  return { res, text, echo: res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as Echo) : undefined };
}

function wsOpen(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; hello: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('message', (data) => resolve({ ws, hello: data.toString() }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
  });
}

function nextMessage(ws: WebSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(data as Buffer));
    ws.once('error', reject);
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe('forwarding', () => {
  let a: Upstream;
  let b: Upstream;
  before(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  describe('default options', () => {
    let proxy: RunningProxy;
    before(async () => {
      proxy = await startTestProxy(['--custom-header', 'X-Extra: yes', '--custom-header', 'x-two:2']);
      await proxy.routes.addRoute('/user/ab', { target: a.url });
      await proxy.routes.addRoute('/user/abc', { target: b.url + '/base/' });
    });
    after(async () => {
      await proxy.close();
    });

    test('longest prefix by segment, whole path forwarded, target path prepended', async () => {
      let r = await get(`${proxy.publicUrl}/user/ab/tree?x=1`);
      assert.equal(r.echo?.name, 'a');
      assert.equal(r.echo?.url, '/user/ab/tree?x=1');
      r = await get(`${proxy.publicUrl}/user/abc/x`);
      assert.equal(r.echo?.name, 'b');
      assert.equal(r.echo?.url, '/base/user/abc/x');
      r = await get(`${proxy.publicUrl}/user/abd`);
      assert.equal(r.res.status, 404);
      assert.match(r.text, /404/);
    });

    test('Host kept, X-Forwarded-* and custom headers set, body and method passed', async () => {
      const r = await get(`${proxy.publicUrl}/user/ab/post`, { method: 'PUT', body: 'payload', headers: { 'X-Forwarded-For': '10.1.1.1' } });
      const h = r.echo!.headers;
      assert.equal(r.echo!.method, 'PUT');
      assert.equal(r.echo!.body, 'payload');
      assert.equal(h.host, new URL(proxy.publicUrl).host);
      assert.equal(h['x-forwarded-for'], '10.1.1.1,127.0.0.1');
      assert.equal(h['x-forwarded-proto'], 'http');
      assert.equal(h['x-forwarded-port'], String(portOf(proxy.publicUrl)));
      assert.equal(h['x-forwarded-host'], new URL(proxy.publicUrl).host);
      assert.equal(h['x-extra'], 'yes');
      assert.equal(h['x-two'], '2');
      assert.equal(r.res.headers.get('x-frame-options'), 'DENY', 'framing headers untouched without --frame-ancestors');
    });

    test('a client header named like a custom one (any case) is replaced, not doubled; hop-by-hop and Expect are not sent on', async () => {
      const body = 'z'.repeat(1000);
      const { response } = await rawExchange(
        portOf(proxy.publicUrl),
        `POST /user/ab/expect HTTP/1.1\r\nHost: x\r\nX-TWO: client\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      // The proxy's own 100 Continue comes first, then the target's answer.
      assert.match(response, /^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 /);
      const final = response.slice(response.indexOf('HTTP/1.1 200'));
      const chunked = final.slice(final.indexOf('\r\n\r\n') + 4);
      const echo = JSON.parse(chunked.slice(chunked.indexOf('\r\n') + 2, chunked.lastIndexOf('}') + 1)) as Echo;
      assert.equal(echo.body, body);
      assert.equal(echo.headers['x-two'], '2');
      for (const name of ['keep-alive', 'te', 'expect']) assert.equal(echo.headers[name], undefined, `${name} not sent on`);
      assert.equal(echo.headers['x-forwarded-host'], 'x');
    });

    test('chunked request bodies and large responses stream through', async () => {
      const body = 'y'.repeat(3 * 1024 * 1024);
      const r = await get(`${proxy.publicUrl}/user/ab/big`, { method: 'POST', body: new Blob([body]).stream(), duplex: 'half' } as RequestInit);
      assert.equal(r.echo!.body.length, body.length);
    });

    test('healthz', async () => {
      const r = await get(`${proxy.publicUrl}/_chp_healthz`);
      assert.equal(r.res.status, 200);
      assert.deepEqual(JSON.parse(r.text), { status: 'OK' });
    });

    test('malformed escapes are 400; property-named segments are ordinary unrouted paths (404) or route by segment', async () => {
      const expected: Array<[string, number]> = [
        ['/%zz', 400],
        ['/user/%E0%A4%A', 400],
        ['/__proto__', 404],
        ['/constructor/x', 404],
        ['//', 404],
        ['/toString', 404],
        // Segment by segment this is under /user/ab: forwarded as it came, the target answers.
        ['/user/ab/../__proto__', 200],
      ];
      for (const [path, status] of expected) {
        const { response } = await rawExchange(portOf(proxy.publicUrl), `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        assert.equal(Number(response.split(' ')[1]), status, `${path}: ${response.slice(0, 60)}`);
      }
    });

    test('WebSocket: handshake, echo, 1 MiB messages both ways, binary intact', async () => {
      const { ws, hello } = await wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/user/ab/api/kernels/k/channels?t=1`);
      assert.equal(hello, 'hello a /user/ab/api/kernels/k/channels?t=1');
      const big = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
      for (let i = 0; i < 3; i++) {
        ws.send(big);
        const echoed = await nextMessage(ws);
        assert.ok(echoed.equals(big), 'binary 1 MiB intact');
      }
      ws.send('small');
      assert.equal((await nextMessage(ws)).toString(), 'small');
      ws.close();
    });

    test('last_activity moves with HTTP traffic and with the WebSocket messages the visitor sends, not with pings or pongs', async () => {
      await proxy.routes.addRoute('/user/act', { target: a.url });
      const added = Date.parse((await proxy.routes.getRoutes())['/user/act']!.last_activity!);
      const { ws } = await wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/user/act/ws`);
      await new Promise((r) => setTimeout(r, 30));
      const t0 = Date.parse((await proxy.routes.getRoutes())['/user/act']!.last_activity!);
      assert.ok(t0 >= added);
      await new Promise((r) => setTimeout(r, 30));
      ws.send('tick');
      await nextMessage(ws);
      const t1 = Date.parse((await proxy.routes.getRoutes())['/user/act']!.last_activity!);
      assert.ok(t1 > t0, `frame moved last_activity (${t0} -> ${t1})`);
      const since = new Date(t1 + 1);
      // Pings and pongs from the browser are not a person's activity (issue 16 part 3).
      await new Promise((r) => setTimeout(r, 30));
      ws.ping();
      await new Promise((resolve) => ws.once('pong', resolve));
      ws.pong();
      await new Promise((r) => setTimeout(r, 30));
      assert.equal((await proxy.routes.getRoutes())['/user/act']!.last_activity, new Date(t1).toISOString(), 'ping and pong left last_activity alone');
      assert.ok((await proxy.routes.getRoutes(since))['/user/act'], 'idle since t1');
      await new Promise((r) => setTimeout(r, 30));
      ws.send('tock');
      await nextMessage(ws);
      assert.equal((await proxy.routes.getRoutes(since))['/user/act'], undefined, 'active again after a frame');
      ws.close();
      await new Promise((r) => setTimeout(r, 30));
      await get(`${proxy.publicUrl}/user/act/x`);
      const t2 = Date.parse((await proxy.routes.getRoutes())['/user/act']!.last_activity!);
      assert.ok(t2 > t1, 'HTTP moved last_activity');
    });

    test('a Unix socket target (http+unix://, as configurable-http-proxy takes): HTTP and WebSocket; a relative socket path is refused', async () => {
      const socketPath = join(mkdtempSync(join(tmpdir(), 'nbpool-sock-')), 'app.sock');
      const local = await startUpstream('sock', socketPath);
      try {
        await proxy.routes.addRoute('/user/sock', { target: `${local.url}/base` });
        assert.equal((await proxy.routes.getRoutes())['/user/sock']!.target, `${local.url}/base`, 'listed as given');
        for (const path of ['/x?q=1', '/y']) {
          const r = await get(`${proxy.publicUrl}/user/sock${path}`);
          assert.equal(r.res.status, 200);
          assert.equal(r.echo!.name, 'sock');
          assert.equal(r.echo!.url, `/base/user/sock${path}`);
        }
        const { ws, hello } = await wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/user/sock/ws`);
        assert.equal(hello, 'hello sock /base/user/sock/ws');
        ws.send('over the socket');
        assert.equal(String(await nextMessage(ws)), 'over the socket');
        ws.close();
        await assert.rejects(proxy.routes.addRoute('/user/bad', { target: 'http+unix://app.sock' }), /absolute socket path/);
      } finally {
        await local.close();
      }
    });

    test('as in configurable-http-proxy, only answers below 300 are activity: redirects, 4xx and 5xx leave last_activity alone', async () => {
      await proxy.routes.addRoute('/user/codes', { target: a.url });
      const lastActivity = async () => (await proxy.routes.getRoutes())['/user/codes']!.last_activity;
      const added = await lastActivity();
      for (const code of [302, 304, 404, 500]) {
        await new Promise((r) => setTimeout(r, 5));
        assert.equal((await get(`${proxy.publicUrl}/user/codes/status/${code}`)).res.status, code);
      }
      assert.equal(await lastActivity(), added, 'no answer of 300 or more counted');
      await get(`${proxy.publicUrl}/user/codes/status/204`);
      assert.notEqual(await lastActivity(), added, 'a 204 did');
    });

    test('"activity_ignore": requests matching a route\'s patterns (an app\'s polls) leave last_activity alone', async () => {
      await proxy.routes.addRoute('/user/poll', { target: a.url, activity_ignore: ['^/api/kernels$', '^/api/sessions(\\?|$)'] });
      const lastActivity = async () => (await proxy.routes.getRoutes())['/user/poll']!.last_activity;
      const added = await lastActivity();
      await new Promise((r) => setTimeout(r, 20));
      for (const path of ['/api/kernels', '/api/sessions', '/api/sessions?x=1']) assert.equal((await get(`${proxy.publicUrl}/user/poll${path}`)).res.status, 200);
      assert.equal(await lastActivity(), added, 'polls are not activity');
      await get(`${proxy.publicUrl}/user/poll/api/kernels/k1/interrupt`);
      assert.notEqual(await lastActivity(), added, 'anything else is');
      await assert.rejects(proxy.routes.addRoute('/user/bad', { target: a.url, activity_ignore: ['('] }), /not a regular expression/);
      await assert.rejects(proxy.routes.addRoute('/user/bad', { target: a.url, activity_ignore: '^/x' }), /must be a list/);
    });

    test('"activity_ignore" patterns run in linear time: a backtracking one cannot hold the proxy, back-references are refused', async () => {
      await proxy.routes.addRoute('/user/redos', { target: a.url, activity_ignore: ['(a+)+b'] });
      // 28 characters: seconds of backtracking for a backtracking engine here, doubling with each more.
      const started = performance.now();
      assert.equal((await get(`${proxy.publicUrl}/user/redos/${'a'.repeat(28)}`)).res.status, 200);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1000, `answered in ${elapsed.toFixed(0)} ms`);
      await assert.rejects(proxy.routes.addRoute('/user/bad', { target: a.url, activity_ignore: ['(a)\\1'] }), /needs backtracking/);
      await assert.rejects(proxy.routes.addRoute('/user/bad', { target: a.url, activity_ignore: ['(?=x)y'] }), /needs backtracking/);
      // Past 2,048 characters no pattern is run: such a request is never an app's poll, and counts.
      await proxy.routes.addRoute('/user/long', { target: a.url, activity_ignore: ['^/api/kernels'] });
      const lastActivity = async () => (await proxy.routes.getRoutes())['/user/long']!.last_activity;
      const added = await lastActivity();
      await new Promise((r) => setTimeout(r, 20));
      await get(`${proxy.publicUrl}/user/long/api/kernels?${'x'.repeat(100)}`);
      assert.equal(await lastActivity(), added, 'a poll');
      await get(`${proxy.publicUrl}/user/long/api/kernels?${'x'.repeat(2100)}`);
      assert.notEqual(await lastActivity(), added, 'too long to be a poll');
    });

    test('dead target: 503 for HTTP and for WebSocket', async () => {
      await proxy.routes.addRoute('/dead', { target: await deadUrl() });
      const r = await get(`${proxy.publicUrl}/dead/x`);
      assert.equal(r.res.status, 503);
      assert.match(r.text, /503/);
      await assert.rejects(wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/dead/ws`), /503/);
      await assert.rejects(wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/nowhere`), /404/);
    });

    test('upstream dying mid-response closes the client promptly', async () => {
      const started = Date.now();
      await assert.rejects(get(`${proxy.publicUrl}/user/ab/die-mid-response`));
      assert.ok(Date.now() - started < 5000);
    });

    test('client aborting aborts the upstream request', async () => {
      const before = a.seen.length;
      const controller = new AbortController();
      const pending = fetch(`${proxy.publicUrl}/user/ab/hang`, { signal: controller.signal });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(a.seen.length, before + 1);
      const upstreamReq = a.seen[a.seen.length - 1]!;
      const closed = new Promise((r) => upstreamReq.socket.once('close', r));
      controller.abort();
      await assert.rejects(pending);
      await closed;
    });

    test('metrics count requests, routes and latency', async () => {
      const text = await proxy.metrics.metrics();
      assert.match(text, /nbpool_proxy_requests_total\{code="200",class="2xx",program="proxy"\} \d+/);
      assert.match(text, /nbpool_proxy_requests_total\{code="503",class="5xx"/);
      assert.match(text, /nbpool_proxy_routes\{program="proxy"\} \d+/);
      assert.match(text, /nbpool_proxy_request_duration_seconds_bucket/);
      assert.match(text, /nbpool_proxy_websockets_open\{program="proxy"\} 0/);
    });
  });

  test('--no-include-prefix, --no-prepend-path, --no-x-forward', async () => {
    const proxy = await startTestProxy(['--no-include-prefix', '--no-x-forward']);
    await proxy.routes.addRoute('/user/ab', { target: a.url + '/base' });
    let r = await get(`${proxy.publicUrl}/user/ab/tree/x?q=1`);
    assert.equal(r.echo?.url, '/base/tree/x?q=1');
    assert.equal(r.echo?.headers['x-forwarded-for'], undefined);
    r = await get(`${proxy.publicUrl}/user/ab`);
    assert.equal(r.echo?.url, '/base/');
    await proxy.close();
    const plain = await startTestProxy(['--no-prepend-path']);
    await plain.routes.addRoute('/user/ab', { target: a.url + '/base' });
    r = await get(`${plain.publicUrl}/user/ab/tree`);
    assert.equal(r.echo?.url, '/user/ab/tree');
    await plain.close();
  });

  test('host routing', async () => {
    const proxy = await startTestProxy(['--host-routing']);
    await proxy.routes.addRoute('/a.example.com', { target: a.url });
    await proxy.routes.addRoute('/b.example.com/sub', { target: b.url });
    assert.equal((await proxy.routes.getRoutes())['/a.example.com']?.host, 'a.example.com');
    const port = portOf(proxy.publicUrl);
    const ask = (host: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ port, host: '127.0.0.1', path, headers: { Host: host } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    let r = await ask('a.example.com:8000', '/anything');
    assert.equal(JSON.parse(r.body).name, 'a');
    assert.equal(JSON.parse(r.body).url, '/anything');
    r = await ask('b.example.com', '/sub/x');
    assert.equal(JSON.parse(r.body).name, 'b');
    assert.equal((await ask('b.example.com', '/other')).status, 404);
    assert.equal((await ask('c.example.com', '/sub/x')).status, 404);
    const { hello } = await wsOpen(`${proxy.publicUrl.replace('http', 'ws')}/ws`, { Host: 'a.example.com' });
    assert.equal(hello, 'hello a /ws');
    await proxy.close();
  });

  test('--default-target, --error-target, --error-path', async () => {
    const errors = await startUpstream('errors');
    const dir = mkdtempSync(join(tmpdir(), 'nbpool-errors-'));
    writeFileSync(join(dir, '503.html'), '<p>custom 503 page</p>');
    const withTarget = await startTestProxy(['--error-target', errors.url + '/err']);
    await withTarget.routes.addRoute('/dead', { target: await deadUrl() });
    let r = await get(`${withTarget.publicUrl}/dead/x?y=1`);
    assert.equal(r.res.status, 503);
    assert.equal(r.echo?.url, `/err/503?url=${encodeURIComponent('/dead/x?y=1')}`);
    r = await get(`${withTarget.publicUrl}/unrouted`);
    assert.equal(r.res.status, 404);
    assert.equal(r.echo?.url, '/err/404?url=%2Funrouted');
    await withTarget.close();

    const withPath = await startTestProxy(['--error-path', dir, '--default-target', a.url]);
    await withPath.routes.addRoute('/dead', { target: await deadUrl() });
    r = await get(`${withPath.publicUrl}/dead`);
    assert.equal(r.res.status, 503);
    assert.equal(r.text, '<p>custom 503 page</p>');
    r = await get(`${withPath.publicUrl}/unrouted/x`);
    assert.equal(r.echo?.name, 'a', 'default target serves unrouted paths');
    assert.equal((await withPath.routes.getRoutes())['/']?.target, a.url);
    await withPath.close();
    await errors.close();
  });

  test('--proxy-timeout gives 503; --timeout drops an idle request', async () => {
    const proxy = await startTestProxy(['--proxy-timeout', '300']);
    await proxy.routes.addRoute('/u', { target: a.url });
    let started = Date.now();
    let r = await get(`${proxy.publicUrl}/u/hang`);
    assert.equal(r.res.status, 503);
    assert.ok(Date.now() - started < 3000);
    r = await get(`${proxy.publicUrl}/u/slow/50`);
    assert.equal(r.res.status, 200);
    await proxy.close();
    const idle = await startTestProxy(['--timeout', '300']);
    await idle.routes.addRoute('/u', { target: a.url });
    started = Date.now();
    r = await get(`${idle.publicUrl}/u/hang`);
    assert.equal(r.res.status, 503);
    assert.ok(Date.now() - started < 3000);
    await idle.close();
  });

  test('--keep-alive-timeout closes an idle kept-alive client connection after that time, not before', async () => {
    const proxy = await startTestProxy(['--keep-alive-timeout', '400']);
    await proxy.routes.addRoute('/u', { target: a.url });
    const { createConnection } = await import('node:net');
    const socket = createConnection({ port: portOf(proxy.publicUrl), host: '127.0.0.1' });
    let response = '';
    socket.on('data', (d: Buffer) => (response += d.toString()));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    socket.write('GET /u/x HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => response.includes('"url":"/u/x"'), { what: 'the answer' });
    const answered = Date.now();
    const closedAt = await closed;
    assert.match(response, /^HTTP\/1\.1 200/);
    assert.ok(closedAt - answered >= 300, `closed after ${closedAt - answered} ms, not before the timeout`);
    assert.ok(closedAt - answered < 3000, `closed after ${closedAt - answered} ms`);
    await proxy.close();
  });

  test('--frame-ancestors sets CSP and drops X-Frame-Options and conflicting frame-ancestors', async () => {
    const proxy = await startTestProxy(['--frame-ancestors', "'self' https://pub.example"]);
    await proxy.routes.addRoute('/u', { target: a.url });
    const r = await get(`${proxy.publicUrl}/u/x`);
    assert.equal(r.res.headers.get('x-frame-options'), null);
    const csp = r.res.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'self' https:\/\/pub\.example/);
    assert.doesNotMatch(csp, /frame-ancestors 'none'/);
    await proxy.close();
  });

  test('TLS on the public port (--ssl-key/--ssl-cert), HTTP and WebSocket', async () => {
    const { key, cert } = selfSignedCert();
    const proxy = await startTestProxy(['--ssl-key', key, '--ssl-cert', cert]);
    assert.match(proxy.publicUrl, /^https:/);
    await proxy.routes.addRoute('/u', { target: a.url });
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${proxy.publicUrl}/u/secure`, { rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    const echo = JSON.parse(body) as Echo;
    assert.equal(echo.url, '/u/secure');
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    const ws = new WebSocket(`${proxy.publicUrl.replace('https', 'wss')}/u/ws`, { rejectUnauthorized: false });
    const hello = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.once('error', reject);
    });
    assert.equal(hello, 'hello a /u/ws');
    ws.close();
    await proxy.close();
  });
});
