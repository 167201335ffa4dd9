/** The koa apps' common layer: what is logged for refusals, typed errors, failures and clients gone. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Router } from '@koa/router';
import { pino } from 'pino';
import { ServiceUnavailable } from '../../shared/errors.js';
import { closeServer } from '../../shared/net.js';
import { apiApp, jsonBody, requireToken, serverFor } from '../../shared/web.js';

test('a refusal is one info line with its own duration; typed errors and clients gone are not failures; a bug is', async () => {
  const lines: Array<{ level: number; msg: string; ms?: number; err?: unknown }> = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
  const log = pino({ level: 'info' }, sink);
  const router = new Router();
  router.get('/full', () => {
    throw new ServiceUnavailable('pool default is draining', 5);
  });
  router.get('/bug', () => {
    throw new TypeError('x is undefined');
  });
  router.post('/body', jsonBody(), (ctx) => (ctx.body = {}));
  const server = serverFor(apiApp(log, requireToken('secret'), router.routes()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const auth = { Authorization: 'token secret' };
  try {
    assert.equal((await fetch(`${base}/full`, { headers: { Authorization: 'token wrong' } })).status, 403);
    assert.equal((await fetch(`${base}/full`, { headers: auth })).status, 503);
    // A client that hangs up halfway through its body.
    await new Promise<void>((resolve) => {
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
        socket.write('POST /body HTTP/1.1\r\nHost: x\r\nAuthorization: token secret\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
        setTimeout(() => (socket.destroy(), resolve()), 100);
      });
    });
    assert.equal((await fetch(`${base}/bug`, { headers: auth })).status, 500);
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    await closeServer(server);
  }
  const refused = lines.filter((l) => l.msg === 'request refused: missing or wrong token');
  assert.equal(refused.length, 1);
  assert.ok(refused[0]!.ms! >= 0 && refused[0]!.ms! < 5000, `its own duration, not the process's age: ${refused[0]!.ms}`);
  const failures = lines.filter((l) => l.level >= 50);
  assert.equal(failures.length, 1, JSON.stringify(lines));
  assert.equal(failures[0]!.msg, 'request failed');
  assert.match(JSON.stringify(failures[0]!.err), /x is undefined/);
});
