import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStore, type RecordStore } from '../../shared/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/net.js';

interface Rec {
  target: string;
}

async function exercise(store: RecordStore<Rec>): Promise<void> {
  assert.equal(await store.get('/a'), undefined);
  await store.put('/a', { target: 'http://a' });
  await store.putMany([
    ['/b', { target: 'http://b' }],
    ['/__proto__', { target: 'http://proto' }],
  ]);
  assert.deepEqual(await store.get('/a'), { target: 'http://a' });
  assert.deepEqual(await store.get('/__proto__'), { target: 'http://proto' });
  assert.deepEqual([...(await store.all()).keys()].sort(), ['/__proto__', '/a', '/b']);
  assert.equal(await store.delete('/a'), true);
  assert.equal(await store.delete('/a'), false);
  assert.equal((await store.all()).size, 2);
}

describe('record stores', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test('memory store', async () => {
    const store = await openStore<Rec>('memory:', 'routes');
    await exercise(store);
    await store.close();
  });

  test('file store survives a reopen and rejects a corrupt file clearly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbpool-store-'));
    const url = `file://${join(dir, 'sub', 'nodes.json')}`;
    const store = await openStore<Rec>(url, 'nodes');
    await exercise(store);
    await store.close();
    const again = await openStore<Rec>(url, 'nodes');
    assert.deepEqual(await again.get('/b'), { target: 'http://b' });
    writeFileSync(join(dir, 'bad.json'), '[1,2');
    await assert.rejects(openStore(`file://${join(dir, 'bad.json')}`, 'nodes'), /not valid JSON/);
  });

  test('a file store where nothing can be written is refused at open, not at the first change', { timeout: 10_000 }, async () => {
    // Under /proc the kernel refuses every mkdir with ENOENT (node's own recursive mkdir never returns there).
    await assert.rejects(openStore('file:///proc/nbpool-no-such/nodes.json', 'nodes'), /cannot write store file \/proc\/nbpool-no-such\/nodes\.json: ENOENT/);
    const dir = mkdtempSync(join(tmpdir(), 'nbpool-store-'));
    writeFileSync(join(dir, 'file'), '');
    await assert.rejects(openStore(`file://${join(dir, 'file', 'nodes.json')}`, 'nodes'), /store file .*: ENOTDIR/);
    // Read for ever before: /dev/zero is no store file.
    await assert.rejects(openStore('file:///dev/zero', 'nodes'), /^ConfigError: cannot read store file \/dev\/zero: not a regular file$/);
  });

  test('redis store: records persist and other instances see changes at once', async () => {
    const a = await openStore<Rec>(redis.url, 'routes-test');
    const b = await openStore<Rec>(redis.url, 'routes-test');
    const seen: Array<[string, Rec | undefined]> = [];
    const unsubscribe = await b.watch((id, value) => seen.push([id, value]));
    await exercise(a);
    await waitFor(() => seen.length >= 4, { what: 'change notifications' });
    assert.deepEqual(seen.at(-1), ['/a', undefined]);
    assert.deepEqual(await b.get('/b'), { target: 'http://b' });
    await unsubscribe();
    await a.close();
    await Promise.all([b.close(), b.close()]);
    await b.close();
  });

  test('unknown store URLs and unreachable Redis are clear errors', async () => {
    await assert.rejects(openStore('mongo://x', 'r'), /unknown store "mongo:\/\/x"/);
    await assert.rejects(openStore('redis://127.0.0.1:1', 'r', { startupWaitMs: 300 }), /cannot connect to Redis at redis:\/\/127.0.0.1:1/);
    // A password in the URL never reaches the message.
    await assert.rejects(openStore('redis://:hunter2@127.0.0.1:1', 'r', { startupWaitMs: 300 }), (err: Error) => /at redis:\/\/\*\*\*@127.0.0.1:1/.test(err.message) && !err.message.includes('hunter2'));
  });

  test('a Redis that starts a moment after us is waited for', async () => {
    const late = await startRedis({ delayMs: 1500 });
    try {
      // The operator hears why at the first failed attempt, once, not after the wait.
      const warnings: [Record<string, unknown>, string][] = [];
      const log = { warn: (fields: Record<string, unknown>, message: string) => warnings.push([fields, message]) };
      const store = await openStore<Rec>(late.url, 'late', { log: log as never, name: 'late store' });
      assert.equal(warnings.length, 1, `told once: ${JSON.stringify(warnings)}`);
      const [fields, message] = warnings[0]!;
      assert.equal(message, 'waiting for the late store');
      assert.match(String(fields.reason), /ECONNREFUSED/);
      assert.equal(fields.store, late.url);
      await store.put('/x', { target: 'http://x' });
      assert.deepEqual(await store.get('/x'), { target: 'http://x' });
      await store.close();
    } finally {
      await late.stop();
    }
  });
});
