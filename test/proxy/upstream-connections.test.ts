/**
 * The proxy's connections to targets, against raw TCP targets that misbehave on purpose: kept-alive
 * reuse, the retry after a kept-alive connection the target dropped, 1xx answers, unparsable
 * answers, and no connection left open after visitors go away.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RunningProxy } from '../../proxy/server.js';
import { waitFor } from '../helpers/net.js';
import { startTestProxy } from './helpers.js';

interface RawTarget {
  url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Request heads received so far. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A target written on node:net: `answer(head, nth, socket)` is called for each request head (the
 * nth on its connection, from 1) and writes what it likes. Bodies are not read: tests send none or
 * answer before them.
 */
async function rawTarget(answer: (head: string, nth: number, socket: Socket) => void): Promise<RawTarget> {
  const target: RawTarget = { url: '', connections: 0, open: 0, requests: [], close: async () => {} };
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    target.connections++;
    target.open++;
    sockets.add(socket);
    socket.on('close', () => {
      target.open--;
      sockets.delete(socket);
    });
    socket.on('error', () => {});
    let buffered = '';
    let nth = 0;
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) !== -1) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        target.requests.push(head);
        answer(head, ++nth, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  target.url = `http://127.0.0.1:${address.port}`;
  target.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return target;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok';

describe('connections to targets', () => {
  let proxy: RunningProxy;
  const targets: RawTarget[] = [];
  const routeTo = async (path: string, target: RawTarget) => {
    targets.push(target);
    await proxy.routes.addRoute(path, { target: target.url });
  };
  before(async () => {
    proxy = await startTestProxy();
  });
  after(async () => {
    await proxy.close();
    for (const target of targets) await target.close();
  });

  test('sequential requests share one kept-alive connection', async () => {
    const target = await rawTarget((_head, _nth, socket) => socket.write(OK));
    await routeTo('/keep', target);
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${proxy.publicUrl}/keep/${i}`);
      assert.equal(await res.text(), 'ok');
    }
    assert.equal(target.requests.length, 20);
    assert.equal(target.connections, 1);
  });

  test('a kept-alive connection the target drops under a request: a request without a body is retried once, one with a body is not', async () => {
    // Every connection answers its first request, then resets on the next one, as a target whose idle timeout just ran out.
    const target = await rawTarget((_head, nth, socket) => {
      if (nth === 1) socket.write(OK);
      else socket.resetAndDestroy();
    });
    await routeTo('/drop', target);
    assert.equal(await (await fetch(`${proxy.publicUrl}/drop/first`)).text(), 'ok');
    const retried = await fetch(`${proxy.publicUrl}/drop/second`);
    assert.equal(retried.status, 200, 'a GET on the dropped connection is retried on a new one');
    assert.equal(await retried.text(), 'ok');
    assert.equal(target.connections, 2);
    // The connection the retry used is kept; the next POST lands on it and is dropped: not retried.
    const posted = await fetch(`${proxy.publicUrl}/drop/post`, { method: 'POST', body: 'data' });
    assert.equal(posted.status, 503);
    await posted.text();
    assert.equal(target.requests.filter((head) => head.startsWith('POST')).length, 1, 'the POST reached the target once');
  });

  test('1xx answers (103 Early Hints) are passed over and the final answer relayed', async () => {
    const target = await rawTarget((_head, _nth, socket) => {
      socket.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
      setTimeout(() => socket.write(OK), 20);
    });
    await routeTo('/hints', target);
    const res = await fetch(`${proxy.publicUrl}/hints/x`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
  });

  test('an answer that cannot be parsed is a 502, and the connection it came on is not reused', async () => {
    const target = await rawTarget((head, _nth, socket) => {
      if (head.includes('/garbled')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Header\r\n\r\nok');
      else socket.write(OK);
    });
    await routeTo('/parse', target);
    const res = await fetch(`${proxy.publicUrl}/parse/garbled`);
    assert.equal(res.status, 502);
    await res.text();
    const after = await fetch(`${proxy.publicUrl}/parse/fine`);
    assert.equal(await after.text(), 'ok');
    assert.equal(target.connections, 2);
  });

  test('an answer node:http refuses to repeat (a control character in its reason phrase) is a 502 page, and the proxy lives on', async () => {
    // A visitor's container is code the visitor wrote: its answers are hostile input.
    const target = await rawTarget((head, _nth, socket) => {
      if (head.includes('/odd')) socket.write('HTTP/1.1 200 O\x7fK\r\nContent-Length: 2\r\n\r\nok');
      else socket.write(OK);
    });
    await routeTo('/reason', target);
    const res = await fetch(`${proxy.publicUrl}/reason/odd`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 502);
    assert.equal(res.statusText, 'Bad Gateway');
    assert.match(await res.text(), /502/);
    assert.equal(await (await fetch(`${proxy.publicUrl}/reason/fine`)).text(), 'ok');
  });

  test('WebSocket handshakes: a garbled answer is a 502 as over HTTP, and the reason phrase sent is the standard one', async () => {
    const target = await rawTarget((head, _nth, socket) => {
      if (head.includes('/garbled')) socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nBad Header\r\n\r\n');
      else if (head.includes('/odd')) socket.write('HTTP/1.1 101 Sw\x01itching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      else socket.write('HTTP/1.1 403 Nope\x01\r\nContent-Length: 0\r\n\r\n');
    });
    await routeTo('/ws', target);
    const { port } = new URL(proxy.publicUrl);
    const statusLine = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(`GET /ws${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
        });
        socket.once('data', (chunk) => {
          resolve(chunk.toString('latin1').split('\r\n')[0]!);
          socket.destroy();
        });
        socket.on('error', reject);
        socket.setTimeout(5000, () => reject(new Error('no answer')));
      });
    assert.equal(await statusLine('/garbled'), 'HTTP/1.1 502 Bad Gateway');
    assert.equal(await statusLine('/odd'), 'HTTP/1.1 101 Switching Protocols');
    assert.equal(await statusLine('/refused'), 'HTTP/1.1 403 Forbidden');
  });

  test('a target that answers before reading a large body: its answer is relayed, and the next request is served', async () => {
    const target = await rawTarget((head, _nth, socket) => {
      if (head.startsWith('POST')) socket.end('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big');
      else socket.write(OK);
    });
    await routeTo('/early', target);
    const refused = await fetch(`${proxy.publicUrl}/early/upload`, { method: 'POST', body: 'x'.repeat(8 << 20) });
    assert.equal(refused.status, 413);
    assert.equal(await refused.text(), 'too big');
    assert.equal(await (await fetch(`${proxy.publicUrl}/early/next`)).text(), 'ok');
  });

  test('a POST with a body to a target that is gone is a 503 page, not a dropped connection', async () => {
    const target = await rawTarget(() => {});
    await routeTo('/gone', target);
    await target.close();
    const res = await fetch(`${proxy.publicUrl}/gone/upload`, { method: 'POST', body: 'x'.repeat(1 << 20) });
    assert.equal(res.status, 503);
    assert.match(await res.text(), /503/);
  });

  test('a target that never answers holds no connection once its visitors have gone', async () => {
    const target = await rawTarget(() => {});
    await routeTo('/silent', target);
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 100 + (i % 5) * 20);
        await assert.rejects(fetch(`${proxy.publicUrl}/silent/${i}`, { signal: controller.signal }));
      }),
    );
    assert.ok(target.connections >= 1);
    await waitFor(() => target.open === 0, { timeoutMs: 5000, what: 'every connection to the silent target closed' });
  });
});
