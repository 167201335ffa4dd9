/**
 * The engine queue with scripted jobs: a removal that hangs on the engine cannot be caused on
 * demand, so this is the one place a fake stands in for Docker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../shared/log.js';
import { EngineQueue, type EngineJob } from '../../orchestrator/engine-queue.js';

test('bounded concurrency, duplicates ignored, a hung removal times out and is retried', async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const attempts = new Map<string, number>();
  const done: Array<[string, boolean]> = [];
  const remove = async (key: string, signal: AbortSignal) => {
      attempts.set(key, (attempts.get(key) ?? 0) + 1);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (key === 'stuck' && attempts.get(key) === 1) {
          await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
        }
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        inFlight--;
      }
  };
  const job = (key: string): EngineJob => ({ run: (signal) => remove(key, signal), done: (ok) => done.push([key, ok]) });
  const queue = new EngineQueue(silentLogger(), { concurrency: 3, timeoutMs: 100, retryDelayMs: 10, maxAttempts: 3 });
  queue.add('stuck', job('stuck'));
  for (let i = 0; i < 10; i++) queue.add(`c${i}`, job(`c${i}`));
  queue.add('c1', job('c1'));
  await queue.idle();
  assert.ok(maxInFlight <= 3, `at most 3 at once, saw ${maxInFlight}`);
  assert.equal(attempts.get('c1'), 1, 'a queued duplicate is ignored');
  assert.equal(attempts.get('stuck'), 2, 'the hung removal was abandoned and tried again');
  assert.equal(done.length, 11);
  assert.ok(done.every(([, ok]) => ok));
  assert.ok(done.findIndex(([k]) => k === 'stuck') > 0, 'the hung removal did not hold up the others');
  queue.close();
});

test('gives up after maxAttempts and reports the failure', async () => {
  const done: Array<[string, boolean]> = [];
  const queue = new EngineQueue(silentLogger(), { concurrency: 2, timeoutMs: 100, retryDelayMs: 5, maxAttempts: 2 });
  queue.add('x', { run: () => Promise.reject(new Error('engine says no')), done: (ok) => done.push(['x', ok]) });
  await queue.idle();
  assert.deepEqual(done, [['x', false]]);
  queue.close();
});

test('an urgent job jumps the line', async () => {
  const order: string[] = [];
  const queue = new EngineQueue(silentLogger(), { concurrency: 1, timeoutMs: 1000, retryDelayMs: 5, maxAttempts: 1 });
  const job = (key: string, urgent = false): EngineJob => ({ urgent, run: async () => void order.push(key) });
  queue.add('a', job('a'));
  queue.add('b', job('b'));
  queue.add('mark', job('mark', true));
  await queue.idle();
  assert.deepEqual(order, ['a', 'mark', 'b']);
  queue.close();
});
