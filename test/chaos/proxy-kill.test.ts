/**
 * Chaos: the proxy SIGKILLed under load and started again on its ports. With the Redis store its
 * routes are intact at once; with the memory store the orchestrator puts every claimed route back
 * within one reconcile period (today the cull period). Visitors' next requests are served.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger, silentLogger } from '../../shared/log.js';
import { startOrchestrator, type RunningOrchestrator } from '../../orchestrator/server.js';
import { removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { testConfig, uniqueInstance } from '../orchestrator/harness.js';
import { recordFigures, secondsSince } from './figures.js';
import { claimVisitor, keepBusy, leaked, proxyProcess, unservedAfter, type ProxyProcess, type Visitor } from './stack.js';

const VISITORS = 6;
let redis: TestRedis;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  await requireImage(TINY_IMAGE);
  redis = await startRedis({ persist: true });
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await redis?.stop();
});

async function node(store: string, cullPeriod: number): Promise<{ proxy: ProxyProcess; orch: RunningOrchestrator; instance: string; visitors: Visitor[] }> {
  const instance = uniqueInstance('chaosproxy');
  const orchPort = await freePort();
  const proxy = await proxyProcess(`http://127.0.0.1:${orchPort}`, store);
  await proxy.start();
  cleanups.push(() => proxy.stop(), () => removeInstance(instance));
  const orch = await startOrchestrator(testConfig(instance, ['--port', String(orchPort), '--pool-size', '3', '--cull-period', String(cullPeriod)]), { routes: proxy.routes, log: process.env.NBPOOL_TEST_LOG ? createLogger(instance, process.env.NBPOOL_TEST_LOG) : silentLogger() });
  cleanups.push(() => orch.close());
  await waitFor(() => orch.orchestrator.stats().available === 3 || undefined, { timeoutMs: 90_000, what: 'warm pool' });
  const visitors: Visitor[] = [];
  for (let i = 0; i < VISITORS; i++) visitors.push(await waitFor(() => claimVisitor(proxy.url), { timeoutMs: 60_000, what: "a claim" }));
  return { proxy, orch, instance, visitors };
}

test('proxy SIGKILLed under load, Redis store: routes intact after restart, every visitor served again', { timeout: 240_000 }, async () => {
  const { proxy, orch, instance, visitors } = await node(redis.url, 3600);
  const routesBefore = Object.keys(await proxy.routes.getRoutes()).sort();
  const stopLoad = keepBusy(visitors);
  await new Promise((r) => setTimeout(r, 500));
  await proxy.kill();
  await proxy.start();
  // From the proxy answering again (its own start-up time is Node's, not ours to measure).
  const restartedAt = Date.now();
  assert.deepEqual(Object.keys(await proxy.routes.getRoutes()).sort(), routesBefore, 'every route back from Redis, before any cull pass');
  const lost = await unservedAfter(visitors, 15_000);
  const recovered = secondsSince(restartedAt);
  await stopLoad();
  const leak = await leaked(instance, orch.orchestrator.stats());
  await recordFigures('proxy_sigkill_redis', { visitors_lost: lost.length, containers_leaked: leak, seconds_to_recover: recovered, visitors: VISITORS });
  assert.equal(lost.length, 0);
  assert.equal(leak, 0);
});

test('proxy SIGKILLed under load, memory store: the orchestrator re-registers every claimed route within one period', { timeout: 240_000 }, async () => {
  const period = 2;
  const { proxy, orch, instance, visitors } = await node('memory', period);
  const stopLoad = keepBusy(visitors);
  await new Promise((r) => setTimeout(r, 500));
  await proxy.kill();
  await proxy.start();
  // From the proxy answering again (its own start-up time is Node's, not ours to measure).
  const restartedAt = Date.now();
  const lost = await unservedAfter(visitors, 15_000);
  const recovered = secondsSince(restartedAt);
  await stopLoad();
  const leak = await leaked(instance, orch.orchestrator.stats());
  await recordFigures('proxy_sigkill_memory', { visitors_lost: lost.length, containers_leaked: leak, seconds_to_recover: recovered, visitors: VISITORS, reconcile_period_s: period });
  assert.equal(lost.length, 0);
  assert.equal(leak, 0);
  assert.ok(recovered <= period + 1.5, `routes back within one period (${period} s) after the proxy answered: ${recovered} s`);
});
