/**
 * The orchestrator's rules on an engine in memory (fake-engine.ts): claims, the waiting line,
 * backoff, heal, cull, drain, adoption after a crash, and the engine going away and coming back.
 * Each test takes milliseconds; the same paths run on the real engine in the other files here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceUnavailable, TooManyRequests } from '../../shared/errors.js';
import { MemoryClaimJournal } from '../../orchestrator/claim-journal.js';
import { testConfig } from './harness.js';
import { fakeOrchestrator, startFake, until, type FakeNode } from './fake-engine.js';

const config = (argv: string[] = []) => testConfig('t-rules', ['--pool-size', '3', '--spawn-wait', '2', ...argv]);
const warm = (node: FakeNode) => node.orch.stats().available;

const started = (argv: string[] = [], shared: Parameters<typeof fakeOrchestrator>[1] = {}) => startFake(config(argv), shared);

test('fills to the pool size, a claim adds the route and is replaced at once', async () => {
  await using node = await started();
  await until(() => warm(node) === 3, 'pool to fill');
  const claim = await node.orch.claimNow(undefined, { path: '/notebooks/a.ipynb', query: 'x=1' });
  assert.ok(claim);
  assert.equal(claim.url, `/user/${claim.id}/notebooks/a.ipynb?x=1`);
  assert.equal(node.routes.routes.get(`/user/${claim.id}`)?.target, claim.target);
  assert.ok(node.journal.load().has(claim.id), 'journaled before it was answered');
  await until(() => warm(node) === 3 && node.orch.stats().claimed === 1, 'the claim to be replaced');
  await until(() => node.engine.byVisitor(claim.id)!.claimed, 'the engine marker to land');
});

test('while claims arrive, no container starts and no claim marker is sent; both follow once they pause', async () => {
  await using node = await started(['--pool-size', '8', '--refill-delay', '0.4']);
  await until(() => warm(node) === 8, 'pool to fill');
  const starts = node.engine.starts;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push((await node.orch.claimNow(undefined, { path: '', query: '' }))!.id);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(node.engine.starts, starts, `no start while claims arrive (after claim ${i + 1})`);
    assert.ok(ids.every((id) => !node.engine.byVisitor(id)!.claimed), 'no claim marker while claims arrive');
    assert.equal(node.orch.stats().pools.default!.refill_paused, true);
  }
  await until(() => ids.every((id) => node.engine.byVisitor(id)!.claimed), 'the claim markers once the claims paused');
  await until(() => warm(node) === 8, 'the refill once the claims paused');
  assert.equal(node.engine.starts - starts, 5);
});

test('the periodic reconcile pass skips a turn while claims arrive, never two', async () => {
  await using node = await started(['--pool-size', '12', '--max-containers', '40', '--reconcile-period', '0.4', '--refill-delay', '0.3']);
  await until(() => warm(node) === 12, 'pool to fill');
  await until(() => node.engine.lists >= 2, 'periodic passes');
  const claimFor = async (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await node.orch.claimNow(undefined, { path: '', query: '' });
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await node.orch.claimNow(undefined, { path: '', query: '' });
  const lists = node.engine.lists;
  await claimFor(350);
  assert.equal(node.engine.lists, lists, 'no engine listing while claims arrive');
  await claimFor(600);
  assert.ok(node.engine.lists > lists, 'the next turn runs anyway');
});

test('waiting line: served in arrival order as containers free up, 429 past the wait', async () => {
  await using node = await started(['--pool-size', '1', '--max-containers', '1']);
  await until(() => warm(node) === 1, 'one warm');
  const first = (await node.orch.claimOrWait(undefined, { path: '', query: '' }, 1000))!;
  await assert.rejects(node.orch.claimOrWait(undefined, { path: '', query: '' }, 0), TooManyRequests);
  const a = node.orch.claimOrWait(undefined, { path: '', query: '?a' }, 2000);
  await new Promise((r) => setImmediate(r));
  const b = node.orch.claimOrWait(undefined, { path: '', query: '' }, 500);
  await new Promise((r) => setImmediate(r));
  node.engine.kill(node.engine.byVisitor(first.id)!.containerId);
  const served = await a;
  assert.notEqual(served.id, first.id);
  await assert.rejects(b, TooManyRequests, 'the second in line waits out its deadline: no room');
});

test('start failures back off and the pool recovers when the cause is fixed', async () => {
  await using node = await started();
  node.engine.startError = new Error('No such image: nbpool/tiny:latest');
  await until(() => node.orch.stats().pools.default!.failures >= 2, 'failures counted', 5000);
  const starts = node.engine.starts;
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(node.engine.starts - starts <= 2, `backoff: ${node.engine.starts - starts} starts in 300 ms`);
  assert.ok(node.orch.stats().pools.default!.backoff_until, 'the backoff is visible in the stats');
  node.engine.startError = undefined;
  await until(() => warm(node) === 3, 'pool to recover', 5000);
});

test("a visitor's container that dies is noticed at once: route removed, reason kept, pool refilled", async () => {
  await using node = await started();
  await until(() => warm(node) === 3, 'pool to fill');
  const claim = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  node.engine.kill(node.engine.byVisitor(claim.id)!.containerId, 'out of memory');
  await until(() => !node.routes.routes.has(`/user/${claim.id}`), 'route removal');
  assert.equal(node.orch.stoppedReason(claim.id), 'out of memory');
  assert.equal(node.orch.returningVisitorUrl(claim.id, { path: '', query: '' }), undefined, 'not sent back to a dead container');
  await until(() => !node.engine.byVisitor(claim.id), 'the dead container to be removed');
});

test('engine lost: no claims from the warm pool, no starts; restored: reconciled, dead ones replaced, claims resume', async () => {
  await using node = await started(['--reconcile-period', '3600']);
  await until(() => warm(node) === 3, 'pool to fill');
  const visitor = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  await until(() => warm(node) === 3, 'refill');
  node.engine.stop();
  assert.equal(await node.orch.claimNow(undefined, { path: '', query: '' }), undefined, 'no warm container handed out while the engine is gone');
  assert.equal(node.orch.stats().available, 0);
  assert.equal(node.orch.stats().room, 0, 'no room offered: a redirector sends new visitors elsewhere');
  assert.equal(node.orch.stats().engine_lost, true);
  await assert.rejects(node.orch.claimOrWait(undefined, { path: '', query: '' }, 3000), (err: ServiceUnavailable) => err.status === 503, 'a spawn is told at once to try another node');
  const starts = node.engine.starts;
  // A page visitor waits in line (the node has no --entry-url to send them back to).
  const place = node.orch.joinLine(undefined, { path: '', query: '' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(node.engine.starts, starts, 'no starts against a stopped engine');
  node.engine.restart();
  const served = await place.claimed;
  assert.ok(node.engine.containers.get(node.engine.byVisitor(served.id)!.containerId)!.running, 'the waiting visitor got a running container');
  assert.ok(!node.routes.routes.has(`/user/${visitor.id}`), "the earlier visitor's dead container lost its route");
  await until(() => warm(node) === 3 && [...node.engine.containers.values()].every((c) => c.running), 'refill with running containers only');
});

test('a crash after a claim was answered: the restart adopts it as claimed (journal), even before the engine marker', async () => {
  const journal = new MemoryClaimJournal();
  const alive = setInterval(() => undefined, 1000);
  const first = fakeOrchestrator(config(), { journal });
  await first.orch.start();
  await until(() => warm(first) === 3, 'pool to fill');
  const claim = (await first.orch.claimNow(undefined, { path: '', query: '' }))!;
  // The crash: the proxy's routes and the engine marker are lost, the journal is not.
  await first.orch.stop();
  first.engine.byVisitor(claim.id)!.claimed = false;
  first.routes.routes.clear();
  await using second = await started([], { engine: first.engine, journal });
  assert.equal(second.orch.core.get(claim.id)?.state, 'claimed');
  assert.ok(second.routes.routes.has(`/user/${claim.id}`), 'route re-registered');
  await until(() => second.engine.byVisitor(claim.id)!.claimed, 'the engine marker to land after adoption');
  clearInterval(alive);
});

test('reconcile re-adds a route the proxy lost and removes containers nobody knows', async () => {
  await using node = await started(['--reconcile-period', '0.05']);
  await until(() => warm(node) === 3, 'pool to fill');
  const claim = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  node.routes.routes.clear();
  await node.engine.start({ ...node.engine.byVisitor(claim.id)!.spec, name: 'stray', labels: { 'nbpool.instance': 't-rules' } });
  await until(() => node.routes.routes.has(`/user/${claim.id}`), 'route re-added');
  await until(() => !node.engine.containers.has('cid-stray'), 'stray removed');
});

test('cull: idle and over-age claimed containers are removed with their routes', async () => {
  await using node = await started(['--cull-period', '0.05', '--cull-timeout', '0.1']);
  await until(() => warm(node) === 3, 'pool to fill');
  const claim = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  node.routes.routes.get(`/user/${claim.id}`)!.last_activity = new Date(Date.now() - 60_000).toISOString();
  await until(() => !node.engine.byVisitor(claim.id), 'cull');
  assert.ok(!node.routes.routes.has(`/user/${claim.id}`));
  assert.ok(!node.journal.load().has(claim.id), 'journal compacted');
});

test('pools that want more warm containers than --max-containers are said once at start; within it, nothing is said', async () => {
  const { pino } = await import('pino');
  for (const [size, warned] of [['3', true], ['1', false]] as const) {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    await using node = await startFake(config(['--pool-size', size, '--max-containers', '1']), { log });
    await until(() => node.orch.stats().available === 1, 'one warm');
    const said = lines.filter((l) => String(l.msg).startsWith('the pools want'));
    assert.equal(said.length, warned ? 1 : 0, JSON.stringify(lines));
    if (warned) assert.match(String(said[0]!.msg), /want 3 warm containers, more than --max-containers 1: at most 1 are ever warm/);
  }
});
