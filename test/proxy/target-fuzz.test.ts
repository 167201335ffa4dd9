/**
 * Hostile targets: a visitor's container runs code the visitor wrote, so what it answers is
 * hostile input to the proxy. Seeded mutations of ordinary answers (control bytes and separators
 * dropped into status lines, headers and chunked bodies), the target ending or resetting its
 * connection right after, must each end in an answer or a closed connection, never a hang (an
 * answer without a length from a target that keeps its connection open is a stream, and waiting
 * on it is right, so the target always closes here), and the proxy must live on.
 * Against da8387e (node:http's client) it fails: visitors left waiting on answers whose reason
 * phrase holds a control byte, the crash fixed in 7d3b99d.
 * NBPOOL_FUZZ_SEED and NBPOOL_FUZZ_CASES override the seed and the count.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RunningProxy } from '../../proxy/server.js';
import { startTestProxy } from './helpers.js';

const SEED = Number(process.env.NBPOOL_FUZZ_SEED ?? 20261130);
const CASES = Number(process.env.NBPOOL_FUZZ_CASES ?? 300);

const ANSWERS = [
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: a=b; Path=/\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.0 200 OK\r\n\r\nbody until the connection closes',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
  'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
];
const ODD_BYTES = [0, 1, 9, 10, 13, 32, 34, 44, 58, 59, 127, 128, 200, 255];

/** A small seeded generator (the same cases every run unless NBPOOL_FUZZ_SEED says otherwise). */
function generator(seed: number): (n: number) => number {
  let state = seed >>> 0 || 1;
  return (n) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
}

describe(`hostile targets (seed ${SEED})`, () => {
  const random = generator(SEED);
  let answer = '';
  /** How the target ends the connection after answering. */
  let reset = false;
  const target = createServer((socket: Socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write(answer, 'latin1');
      if (reset) socket.resetAndDestroy();
      else socket.end();
    });
  });
  let proxy: RunningProxy;
  before(async () => {
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as { port: number }).port;
    // Location and Set-Cookie rewrites and the CSP header are on, so their code sees the input too.
    proxy = await startTestProxy(['--frame-ancestors', "'self'"]);
    await proxy.routes.addRoute('/fuzz', { target: `http://127.0.0.1:${port}`, strip_prefix: true });
  });
  after(async () => {
    await proxy.close();
    await new Promise((resolve) => target.close(resolve));
  });

  test(`${CASES} mutated answers each end in an answer or a close, and the proxy lives on`, async () => {
    const port = Number(new URL(proxy.publicUrl).port);
    const hung: string[] = [];
    const statuses = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const chars = ANSWERS[random(ANSWERS.length)]!.split('');
      for (let k = random(3); k >= 0; k--) chars.splice(random(chars.length + 1), random(2), String.fromCharCode(ODD_BYTES[random(ODD_BYTES.length)]!));
      answer = chars.join('');
      reset = random(3) === 0;
      const outcome = await new Promise<string>((resolve) => {
        let got = '';
        const client = connect(port, '127.0.0.1', () => client.write('GET /fuzz/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
        client.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')));
        client.on('error', () => {});
        const timer = setTimeout(() => {
          client.destroy();
          resolve('hung');
        }, 4000);
        client.on('close', () => {
          clearTimeout(timer);
          resolve(got === '' ? 'closed' : (/^HTTP\/1\.1 (\d{3}) /.exec(got)?.[1] ?? `malformed ${JSON.stringify(got.slice(0, 40))}`));
        });
      });
      if (outcome === 'hung') hung.push(JSON.stringify(answer));
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
    }
    assert.deepEqual(hung, [], 'answers after which the visitor was left waiting');
    assert.ok(![...statuses.keys()].some((s) => s.startsWith('malformed')), `what the visitors got: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get('502') ?? 0) > CASES / 4, `most mutations are refused as 502: ${JSON.stringify([...statuses])}`);
    const health = await fetch(`${proxy.publicUrl}/_chp_healthz`);
    assert.equal(health.status, 200, 'the proxy still answers');
  });
});
