/**
 * Churn: thousands of WebSockets closed every way (client, upstream, TCP reset mid-frame, upstream
 * reset) plus aborted HTTP requests through a proxy process, whose open file descriptors must
 * come back to their baseline afterwards.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { waitFor } from '../helpers/net.js';
import { startChildProxy, TOKEN, type ChildProxy } from './helpers.js';

const PER_MODE = 400;
const CONCURRENCY = 40;

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Upstream: answers 'close-me' by closing, 'reset-me' by resetting the TCP connection; /hang never answers. */
async function startChurnUpstream(): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url?.includes('/hang')) return;
    if (req.url?.includes('/drip')) {
      res.writeHead(200);
      const timer = setInterval(() => res.write('x'.repeat(1000)), 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.end('ok');
  });
  server.keepAliveTimeout = 300;
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === 'close-me') ws.close(1000, 'bye');
      else if (text === 'reset-me') ((ws as unknown as { _socket: Socket })._socket).resetAndDestroy();
      else ws.send(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type Mode = 'client-close' | 'upstream-close' | 'client-reset-mid-frame' | 'upstream-reset';

/** One WebSocket through the proxy, ended the given way; resolves once the client side is closed. */
function oneSocket(url: string, mode: Mode): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const done = () => resolve();
    ws.on('error', () => {});
    ws.on('close', done);
    ws.on('unexpected-response', done);
    ws.on('open', () => {
      ws.send('ping');
      ws.once('message', () => {
        const socket = (ws as unknown as { _socket: Socket })._socket;
        switch (mode) {
          case 'client-close':
            ws.close();
            break;
          case 'upstream-close':
            ws.send('close-me');
            break;
          case 'upstream-reset':
            ws.send('reset-me');
            break;
          case 'client-reset-mid-frame':
            // The header of a masked 64 KiB binary frame and a few bytes of it, then a TCP reset.
            socket.write(Buffer.from([0x82, 0xfe, 0xff, 0xff, 1, 2, 3, 4, 9, 9, 9]), () => {
              socket.resetAndDestroy();
              done();
            });
            break;
        }
      });
    });
  });
}

async function inBatches(count: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** An HTTP request abandoned by the client: before any answer (/hang) or mid-response (/drip). */
async function abortedRequest(url: string, afterMs: number): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), afterMs);
  try {
    const res = await fetch(url, { signal: controller.signal });
    await res.arrayBuffer();
  } catch {
    // Aborted, as intended.
  } finally {
    clearTimeout(timer);
  }
}

describe('churn', () => {
  let upstream: Awaited<ReturnType<typeof startChurnUpstream>>;
  let proxy: ChildProxy;
  before(async () => {
    upstream = await startChurnUpstream();
    proxy = await startChildProxy(['--metrics-port', '0', '--metrics-ip', '127.0.0.1', '--log-level', 'info']);
    await new HttpRouteTableClient(proxy.apiUrl, TOKEN).addRoute('/user/churn', { target: upstream.url });
  });
  after(async () => {
    await proxy.stop();
    await upstream.close();
  });

  test('file descriptors return to baseline after thousands of WebSockets and aborted requests', async () => {
    const pid = proxy.child.pid!;
    const wsUrl = `${proxy.publicUrl.replace('http', 'ws')}/user/churn/ws`;
    // Warm up (agents, lazily loaded modules), then let idle keep-alive sockets expire.
    await oneSocket(wsUrl, 'client-close');
    await fetch(`${proxy.publicUrl}/user/churn/x`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 800));
    const baseline = fdCount(pid);

    for (const mode of ['client-close', 'upstream-close', 'client-reset-mid-frame', 'upstream-reset'] as const) {
      await inBatches(PER_MODE, () => oneSocket(wsUrl, mode));
    }
    await inBatches(200, (i) => abortedRequest(`${proxy.publicUrl}/user/churn/hang/${i}`, 30));
    await inBatches(200, (i) => abortedRequest(`${proxy.publicUrl}/user/churn/drip/${i}`, 40));
    assert.ok(fdCount(pid) > 0);

    const metrics = async () => (await fetch(proxy.metricsUrl!)).text();
    await waitFor(async () => /nbpool_proxy_websockets_open\{program="proxy"\} 0\b/.test(await metrics()), { timeoutMs: 10_000, what: 'no WebSocket left open' });
    let now = 0;
    await waitFor(() => (now = fdCount(pid)) <= baseline, { timeoutMs: 15_000, intervalMs: 200, what: 'fds back to baseline' }).catch(() => {
      assert.fail(`open fds ${now} did not return to baseline ${baseline}: ${readdirSync(`/proc/${pid}/fd`).length}`);
    });
    // Still serving.
    assert.equal(await fetch(`${proxy.publicUrl}/user/churn/x`).then((r) => r.text()), 'ok');
  });
});
