import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { relay } from '../../proxy/socket-relay.js';
import { waitFor } from '../helpers/net.js';

/** What a relay hop looks like from both ends, and what it saw. */
interface Hop {
  client: Socket;
  /** The far end's side of the connection (what the proxy's target holds). */
  far: Socket;
  /** The proxy's socket towards the far end (whose buffered bytes back-pressure must bound). */
  proxyToFar: Socket;
  /** Every chunk `seen` was shown, client -> far. */
  seen: Buffer[];
  fastPaths: boolean[];
}

const servers: Server[] = [];
const sockets: Socket[] = [];
after(() => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/** client -> proxy (relay both ways) -> far, all real loopback TCP. */
async function hop(): Promise<Hop> {
  const farSockets: Socket[] = [];
  const farPort = await listen(createServer((s) => farSockets.push(s) && sockets.push(s)));
  const seen: Buffer[] = [];
  const fastPaths: boolean[] = [];
  const proxied: Socket[] = [];
  const port = await listen(
    createServer((fromClient) => {
      sockets.push(fromClient);
      const proxyToFar = connect(farPort, '127.0.0.1', () => {
        fastPaths.push(relay(fromClient, proxyToFar, (chunk) => seen.push(Buffer.from(chunk))));
        fastPaths.push(relay(proxyToFar, fromClient));
        proxied.push(proxyToFar);
        sockets.push(proxyToFar);
      });
    }),
  );
  const client = connect(port, '127.0.0.1');
  sockets.push(client);
  await waitFor(() => farSockets.length === 1 && proxied.length === 1, { timeoutMs: 5000, what: 'the hop to connect' });
  return { client, far: farSockets[0]!, proxyToFar: proxied[0]!, seen, fastPaths };
}

function collect(socket: Socket): { length: () => number; bytes: () => Buffer; ended: Promise<unknown> } {
  const chunks: Buffer[] = [];
  let length = 0;
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    length += c.length;
  });
  return { length: () => length, bytes: () => Buffer.concat(chunks), ended: once(socket, 'end') };
}

/** Writes `data` in pieces of random sizes (1 byte to 40 KiB), so reads cut it anywhere. */
function writeInPieces(socket: Socket, data: Buffer): void {
  for (let at = 0; at < data.length; ) {
    const size = Math.min(data.length - at, 1 + Math.floor(Math.random() * 40_000));
    socket.write(data.subarray(at, at + size));
    at += size;
  }
}

describe('socket relay', () => {
  test('both directions byte-exact across any chunk boundaries; `seen` shows every byte as it passes; ends pass on', async () => {
    const { client, far, seen, fastPaths } = await hop();
    assert.deepEqual(fastPaths, [true, true], 'plain TCP sockets take the fast path');
    far.pipe(far); // the far end echoes
    const back = collect(client);
    const data = randomBytes(4 * 1024 * 1024);
    writeInPieces(client, data);
    await waitFor(() => back.length() >= data.length, { timeoutMs: 20_000, what: 'the echo' });
    assert.ok(back.bytes().equals(data), 'echo intact');
    assert.ok(Buffer.concat(seen).equals(data), 'seen chunks are the bytes sent, in order');
    client.end();
    await back.ended;
  });

  test('a far end that stops reading stops the relay reading: the proxy buffers at most a read or two, and nothing is lost once it reads again', async () => {
    const { client, far, proxyToFar } = await hop();
    far.pause();
    const data = randomBytes(24 * 1024 * 1024);
    const piece = 64 * 1024;
    let written = 0;
    /** Writes until the client's socket is full (or all is written). */
    const pump = () => {
      while (written < data.length) {
        const accepted = client.write(data.subarray(written, written + piece));
        written += piece;
        if (!accepted) return;
      }
    };
    client.on('drain', pump);
    pump();
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(written < data.length, 'the client was held back before sending everything');
    assert.ok(proxyToFar.writableLength <= 64 * 1024, `the proxy holds ${proxyToFar.writableLength} bytes for the far end`);
    const received = collect(far);
    far.resume();
    await waitFor(() => received.length() >= data.length, { timeoutMs: 60_000, what: 'everything to arrive' });
    assert.ok(received.bytes().equals(data), 'nothing lost or reordered under back-pressure');
    client.destroy();
  });

  test('a stream that is not a plain TCP socket is relayed through its data events', async () => {
    const { far, proxyToFar } = await hop();
    const from = new PassThrough();
    const seen: Buffer[] = [];
    assert.equal(relay(from, proxyToFar, (chunk) => seen.push(chunk)), false);
    const received = collect(far);
    const data = randomBytes(256 * 1024);
    from.end(data);
    await waitFor(() => received.length() >= data.length, { timeoutMs: 10_000, what: 'the bytes' });
    assert.ok(received.bytes().equals(data));
    assert.ok(Buffer.concat(seen).equals(data));
    await received.ended;
  });
});
