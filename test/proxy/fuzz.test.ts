/**
 * Seeded fuzz of the REST API and the data path with hostile inputs. Asserts: every request is
 * answered or closed within the timeouts, no 5xx for a client's fault, the proxy stays up, and the
 * good routes are never lost or hidden. Set NBPOOL_FUZZ_SEED to replay a failure; NBPOOL_FUZZ_SUMMARY
 * names a file the counts are written to (bench:proxy runs this test against each forwarding engine).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { RunningProxy } from '../../proxy/server.js';
import { rawExchange, startTestProxy, startUpstream, TOKEN, type Upstream } from './helpers.js';

const SEED = Number(process.env.NBPOOL_FUZZ_SEED ?? 20261122);
const INPUTS = 1200;

/** mulberry32: small, fast, good enough to make hostile inputs reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Input {
  port: 'api' | 'public';
  text: string;
  /** Sent on purpose incomplete or unparseable: a close without an answer is fine. */
  broken: boolean;
  halfClose: boolean;
}

function generator(random: () => number, upstream: string) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const segments = [
    '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '%', '%zz', '%E0%A4%A', '%ff', '%00',
    '', '..', '.', '%2F', '%2e%2e', 'user', 'api', 'routes', 'a'.repeat(300), 'ünï', '%C3%BC', '?', '#', ';', ' ', '%20', '\\',
  ];
  const methods = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'FOO', 'CONNECT', 'TRACE', 'M-SEARCH', 'PROPFIND'];
  const targets: unknown[] = [upstream, upstream + '/base', '', '   ', 'nope', 5, null, 'ftp://x', 'http://', 'http://[::1', { a: 1 }, ['x'], true];
  const path = () => {
    const n = 1 + Math.floor(random() * 5);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(pick(segments));
    return '/' + parts.join(random() < 0.2 ? '//' : '/');
  };
  const body = (): string => {
    switch (Math.floor(random() * 9)) {
      case 0:
        return '['.repeat(10_000 + Math.floor(random() * 10_000)) + ']'.repeat(100);
      case 1:
        return JSON.stringify({ target: pick(targets) }).slice(0, Math.floor(random() * 20));
      case 2:
        return JSON.stringify({ target: upstream, extra: 'x'.repeat(Math.floor(random() * 200_000)) });
      case 3:
        return '{"target":"' + upstream + '","__proto__":{"polluted":1},"constructor":{"prototype":{"p":1}}}';
      case 4:
        return JSON.stringify({ target: upstream, deep: JSON.parse('{"a":'.repeat(20) + '1' + '}'.repeat(20)) });
      case 5:
        return pick(['null', '1', '"s"', 'true', '[]', '{}', '{"target":', '\u0000\u0001', '{"target": "http://a"']);
      default:
        return JSON.stringify({ target: pick(targets), user: pick(segments) });
    }
  };
  const headerLine = () =>
    pick([
      '', '', '', 'Content-Length: abc\r\n', 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', 'X-Bad Header: 1\r\n', 'NoColon\r\n',
      'X-Long: ' + 'z'.repeat(20_000) + '\r\n', 'Host: \r\n', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n',
      'Expect: 100-continue\r\n', 'X-Forwarded-For: 1.2.3.4, ::1\r\n', 'Content-Type: application/json; charset=utf-16\r\n', 'X\u00ff: \u00ff\r\n',
    ]);

  return (goodPrefixes: readonly string[]): Input => {
    const port = random() < 0.5 ? 'api' : 'public';
    const method = pick(methods);
    let target: string;
    if (port === 'api') target = (random() < 0.1 ? '/api/routes' : '/api/routes' + path()) + (random() < 0.15 ? '?inactive_since=' + pick(['x', '2020-01-01', '%zz', '', '9'.repeat(30)]) : '');
    else target = (random() < 0.4 ? pick(goodPrefixes) : '') + path() + (random() < 0.2 ? '?q=' + pick(segments) : '');
    if (random() < 0.03) target = pick(['*', 'http://x/y', 'http://[bad', '']);
    const auth = port === 'api' && random() < 0.9 ? `Authorization: token ${TOKEN}\r\n` : '';
    const extra = headerLine();
    const payload = method === 'GET' || method === 'HEAD' ? (random() < 0.1 ? body() : '') : body();
    const truncate = random() < 0.08;
    const lengthHeader = extra.includes('Content-Length') || extra.includes('Transfer-Encoding') ? '' : `Content-Length: ${Buffer.byteLength(payload)}\r\n`;
    let text = `${method} ${target} HTTP/1.1\r\nHost: ${pick(['localhost', 'a.example', '[::1]:80', 'h:x'])}\r\nConnection: close\r\n${auth}${extra}${lengthHeader}\r\n${payload}`;
    if (truncate) text = text.slice(0, Math.floor(random() * text.length));
    const broken = truncate || /Content-Length: abc|chunked|Bad Header|NoColon|X-Long|\u00ff|Host: \r|Expect/.test(extra) || target === '' || / /.test(target) || [...target].some((c) => c <= ' ' || c >= '\u007f');
    // A client that half-closes has given up on the answer (Node aborts such requests): a close is fine.
    const halfClose = truncate || random() < 0.05;
    return { port, text, broken: broken || halfClose, halfClose };
  };
}

describe(`fuzz (seed ${SEED})`, () => {
  let proxy: RunningProxy;
  let upstream: Upstream;
  const good: string[] = [];
  before(async () => {
    upstream = await startUpstream('fuzz');
    proxy = await startTestProxy(['--timeout', '3000', '--proxy-timeout', '3000']);
    for (let i = 0; i < 5; i++) {
      const prefix = `/good-${i}-q7`;
      good.push(prefix);
      await proxy.routes.addRoute(prefix, { target: upstream.url, keep: i });
    }
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  test(`${INPUTS} hostile inputs on the API and the data path`, async () => {
    const next = generator(prng(SEED), upstream.url);
    const ports = { api: Number(new URL(proxy.apiUrl).port), public: Number(new URL(proxy.publicUrl).port) };
    const failures: string[] = [];
    let answered = 0;
    const batch = 16;
    for (let done = 0; done < INPUTS; done += batch) {
      const inputs = Array.from({ length: Math.min(batch, INPUTS - done) }, () => next(good));
      const results = await Promise.all(inputs.map((input) => rawExchange(ports[input.port], input.text, 8000, input.halfClose)));
      results.forEach(({ response, closed }, i) => {
        const input = inputs[i]!;
        const shown = JSON.stringify(input.text.slice(0, 160));
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1];
        if (!closed) failures.push(`no answer or close within 8 s: ${input.port} ${shown}`);
        if (status) {
          answered++;
          if (Number(status) >= 500) failures.push(`${status} for ${input.port} ${shown}: ${response.slice(0, 200)}`);
        } else if (!input.broken && closed) {
          failures.push(`closed without an answer: ${input.port} ${shown}`);
        }
      });
    }
    if (process.env.NBPOOL_FUZZ_SUMMARY) {
      writeFileSync(process.env.NBPOOL_FUZZ_SUMMARY, JSON.stringify({ seed: SEED, inputs: INPUTS, answered, failures }) + '\n');
    }
    assert.deepEqual(failures, [], `seed ${SEED}`);
    assert.ok(answered > INPUTS * 0.7, `most inputs answered (${answered})`);

    // Still up; the good routes are all there, unhidden, and serve.
    const res = await fetch(`${proxy.apiUrl}/api/routes`, { headers: { Authorization: `token ${TOKEN}` } });
    assert.equal(res.status, 200);
    const routes = (await res.json()) as Record<string, { target: string; keep?: number }>;
    for (const [i, prefix] of good.entries()) {
      assert.equal(routes[prefix]?.target, upstream.url, prefix);
      assert.equal(routes[prefix]?.keep, i);
      const served = await fetch(`${proxy.publicUrl}${prefix}/still/here`);
      assert.equal(served.status, 200);
      assert.equal(((await served.json()) as { url: string }).url, `${prefix}/still/here`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
