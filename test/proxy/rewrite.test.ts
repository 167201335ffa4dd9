/**
 * Per-route strip_prefix (apps that cannot run under a path prefix) and cross-site cookies for
 * visitors on HTTPS (Jupyter's _xsrf inside a publisher's iframe), through real HTTP(S) and WebSockets.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { rewriteLocation, rewriteSetCookie } from '../../proxy/response-rewrite.js';
import { trustedProxies } from '../../proxy/trusted-proxies.js';
import { parseProxyArgs } from '../../proxy/config.js';
import { startProxy } from '../../proxy/server.js';
import { selfSignedCert, startTestProxy } from './helpers.js';

describe('response rewrites (pure)', () => {
  test('Location goes back under the prefix when the app wrote it for /', () => {
    assert.equal(rewriteLocation('/login?next=%2Fx', '/user/abc', '10.0.0.5:8888', 'pub.example'), '/user/abc/login?next=%2Fx');
    assert.equal(rewriteLocation('/user/abc/tree', '/user/abc', '10.0.0.5:8888', 'pub.example'), '/user/abc/tree', 'already under it');
    assert.equal(rewriteLocation('http://10.0.0.5:8888/lab', '/user/abc', '10.0.0.5:8888', 'pub.example'), 'http://10.0.0.5:8888/user/abc/lab');
    assert.equal(rewriteLocation('https://pub.example/lab?x=1', '/user/abc', '10.0.0.5:8888', 'pub.example'), 'https://pub.example/user/abc/lab?x=1');
    assert.equal(rewriteLocation('https://elsewhere.example/x', '/user/abc', '10.0.0.5:8888', 'pub.example'), 'https://elsewhere.example/x', 'other sites untouched');
    assert.equal(rewriteLocation('tree/x', '/user/abc', '10.0.0.5:8888', 'pub.example'), 'tree/x', 'relative untouched');
    assert.equal(rewriteLocation('//evil.example/x', '/user/abc', '10.0.0.5:8888', 'pub.example'), '//evil.example/x');
  });

  test('Set-Cookie: Path under the prefix; cross-site attributes unless SameSite is set', () => {
    assert.equal(rewriteSetCookie('a=1; Path=/', '/user/abc', false), 'a=1; Path=/user/abc');
    assert.equal(rewriteSetCookie('a=1; path=/sub; HttpOnly', '/user/abc', false), 'a=1; Path=/user/abc/sub; HttpOnly');
    assert.equal(rewriteSetCookie('a=1', '/user/abc', false), 'a=1', 'no Path: the browser defaults to the request path, already under the prefix');
    assert.equal(rewriteSetCookie('_xsrf=t; Path=/user/abc', undefined, true), '_xsrf=t; Path=/user/abc; SameSite=None; Secure; Partitioned');
    assert.equal(rewriteSetCookie('_xsrf=t; Secure', undefined, true), '_xsrf=t; Secure; SameSite=None; Partitioned');
    assert.equal(rewriteSetCookie('s=1; SameSite=Lax', undefined, true), 's=1; SameSite=Lax', 'a chosen SameSite is kept');
    assert.equal(rewriteSetCookie('s=1; Path=/', '/u', true), 's=1; Path=/u; SameSite=None; Secure; Partitioned');
  });

  test('--trusted-proxy takes IPs and CIDRs, refuses anything else with one line', () => {
    const list = trustedProxies(['10.0.0.0/8', '::1', '192.168.1.7'])!;
    assert.equal(list.check('10.2.3.4', 'ipv4'), true);
    assert.equal(list.check('11.0.0.1', 'ipv4'), false);
    assert.equal(list.check('::1', 'ipv6'), true);
    assert.equal(list.check('192.168.1.7', 'ipv4'), true);
    assert.equal(trustedProxies([]), undefined);
    for (const bad of ['nope', '10.0.0.0/33', '10.0.0.0/', '::1/129', '1.2.3']) {
      assert.throws(() => parseProxyArgs(['--trusted-proxy', bad], {}), /--trusted-proxy .* must be an IP address or a CIDR/, bad);
    }
  });
});

/** An app that believes it lives at /: redirects, cookies, and a WebSocket echoing its path. */
async function startRootApp(): Promise<{ url: string; host: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url!.endsWith('/redirect')) return void res.writeHead(302, { Location: '/login?next=%2Fx' }).end();
    if (req.url!.endsWith('/abs-redirect')) return void res.writeHead(302, { Location: `http://${host}/lab` }).end();
    if (req.url!.endsWith('/cookies')) {
      res.setHeader('Set-Cookie', ['_xsrf=2|abc; Path=/', 'pref=1; Path=/sub; HttpOnly', 'lax=1; Path=/; SameSite=Lax']);
      return void res.end('cookies');
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`path ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => ws.send(`hello ${req.url}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function wsHello(url: string, options: WebSocket.ClientOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('message', (data) => {
      resolve(data.toString());
      ws.close();
    });
    ws.once('error', reject);
  });
}

describe('strip_prefix and cross-site cookies through the proxy', () => {
  let app: Awaited<ReturnType<typeof startRootApp>>;
  before(async () => {
    app = await startRootApp();
  });
  after(async () => {
    await app.close();
  });

  test('a route with "strip_prefix": true serves a root app under /user/<id>/, HTTP and WebSocket; others unaffected', async () => {
    const proxy = await startTestProxy();
    try {
      await proxy.routes.addRoute('/user/abc', { target: app.url, strip_prefix: true });
      await proxy.routes.addRoute('/user/chp', { target: app.url });
      assert.equal((await proxy.routes.getRoutes())['/user/abc']!.strip_prefix, true, 'the field is stored as given');
      const base = proxy.publicUrl;
      assert.equal(await (await fetch(`${base}/user/abc/tree/x?y=1`)).text(), 'path /tree/x?y=1');
      assert.equal(await (await fetch(`${base}/user/abc`)).text(), 'path /');
      assert.equal(await (await fetch(`${base}/user/chp/tree/x`)).text(), 'path /user/chp/tree/x', 'CHP clients that do not set it: whole path');

      let res = await fetch(`${base}/user/abc/redirect`, { redirect: 'manual' });
      assert.equal(res.headers.get('location'), '/user/abc/login?next=%2Fx');
      res = await fetch(`${base}/user/abc/abs-redirect`, { redirect: 'manual' });
      assert.equal(res.headers.get('location'), `http://${app.host}/user/abc/lab`);
      res = await fetch(`${base}/user/chp/redirect`, { redirect: 'manual' });
      assert.equal(res.headers.get('location'), '/login?next=%2Fx', 'untouched without strip_prefix');

      res = await fetch(`${base}/user/abc/cookies`);
      assert.deepEqual(res.headers.getSetCookie(), ['_xsrf=2|abc; Path=/user/abc', 'pref=1; Path=/user/abc/sub; HttpOnly', 'lax=1; Path=/user/abc; SameSite=Lax']);
      res = await fetch(`${base}/user/chp/cookies`);
      assert.deepEqual(res.headers.getSetCookie(), ['_xsrf=2|abc; Path=/', 'pref=1; Path=/sub; HttpOnly', 'lax=1; Path=/; SameSite=Lax'], 'plain HTTP, no strip: untouched');

      assert.equal(await wsHello(`${base.replace('http', 'ws')}/user/abc/api/kernels/k/channels?s=1`), 'hello /api/kernels/k/channels?s=1');
      assert.equal(await wsHello(`${base.replace('http', 'ws')}/user/chp/ws`), 'hello /user/chp/ws');
    } finally {
      await proxy.close();
    }
  });

  test('visitors on HTTPS (TLS at the proxy) get SameSite=None; Secure; Partitioned on cookies that set no SameSite', async () => {
    const { key, cert } = selfSignedCert();
    const proxy = await startTestProxy(['--ssl-key', key, '--ssl-cert', cert]);
    try {
      await proxy.routes.addRoute('/user/tls', { target: app.url });
      const cookies = await new Promise<string[]>((resolve, reject) => {
        const req = httpsRequest(`${proxy.publicUrl}/user/tls/cookies`, { rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.headers['set-cookie'] ?? []);
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(cookies, ['_xsrf=2|abc; Path=/; SameSite=None; Secure; Partitioned', 'pref=1; Path=/sub; HttpOnly; SameSite=None; Secure; Partitioned', 'lax=1; Path=/; SameSite=Lax']);
    } finally {
      await proxy.close();
    }
  });

  test('X-Forwarded-Proto: https is believed only from a --trusted-proxy peer', async () => {
    const trusting = await startTestProxy(['--trusted-proxy', '127.0.0.0/8']);
    const other = await startTestProxy(['--trusted-proxy', '10.0.0.0/8']);
    try {
      for (const proxy of [trusting, other]) await proxy.routes.addRoute('/user/f', { target: app.url });
      const cookiesOf = async (base: string, proto: string) => (await fetch(`${base}/user/f/cookies`, { headers: { 'X-Forwarded-Proto': proto } })).headers.getSetCookie()[0];
      assert.equal(await cookiesOf(trusting.publicUrl, 'https'), '_xsrf=2|abc; Path=/; SameSite=None; Secure; Partitioned');
      assert.equal(await cookiesOf(trusting.publicUrl, 'http'), '_xsrf=2|abc; Path=/');
      assert.equal(await cookiesOf(other.publicUrl, 'https'), '_xsrf=2|abc; Path=/', 'a peer that is not trusted cannot claim HTTPS');
    } finally {
      await trusting.close();
      await other.close();
    }
  });
});

test('plain HTTP on a non-loopback address says once, at start, that cross-site embedding needs HTTPS; loopback, TLS or a trusted front do not', async () => {
  const { key, cert } = selfSignedCert();
  const warned = async (flags: string[]) => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const { config } = parseProxyArgs(['--port', '0', '--api-ip', '127.0.0.1', '--api-port', '0', ...flags], { CONFIGPROXY_AUTH_TOKEN: 't' });
    const proxy = await startProxy(config, log);
    await proxy.close();
    return lines.filter((l) => l.includes('cross-site embedding (a notebook in a publisher\'s iframe) needs HTTPS')).length;
  };
  // 0.0.0.0: every interface, for the few milliseconds the proxy runs; nothing connects to it.
  assert.equal(await warned(['--ip', '0.0.0.0']), 1, 'plain HTTP on every interface');
  assert.equal(await warned(['--ip', '0.0.0.0', '--trusted-proxy', '127.0.0.0/8,::1']), 1, "only loopback fronts trusted (nbpool up's default)");
  assert.equal(await warned(['--ip', '127.0.0.1']), 0, 'loopback: a developer trying it out');
  assert.equal(await warned(['--ip', '0.0.0.0', '--ssl-key', key, '--ssl-cert', cert]), 0, 'TLS at the proxy');
  assert.equal(await warned(['--ip', '0.0.0.0', '--trusted-proxy', '10.0.0.0/8']), 0, 'a TLS front named by --trusted-proxy');
});
