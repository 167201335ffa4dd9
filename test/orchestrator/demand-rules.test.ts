/**
 * Demand-following pools and app presets in the orchestrator runtime, on the engine in memory
 * (fake-engine.ts): an auto pool grows with a burst of claims, reports its target, hit rate and
 * waits; warm containers past --max-warm-age are replaced; a strip_prefix pool's routes say so.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Conflict } from '../../shared/errors.js';
import { jupyterKernelActivity, type AppActivity, type AppActivityProbe } from '../../orchestrator/app-activity.js';
import { PRESETS } from '../../orchestrator/presets.js';
import { testConfig } from './harness.js';
import { FakeEngine, startFake, until } from './fake-engine.js';

const started = (argv: string[], file: Record<string, unknown> = {}, engine = new FakeEngine()) =>
  startFake(testConfig('t-demand', ['--spawn-wait', '5', ...argv], file), { engine });

test('auto: a burst of claims raises the warm target above min; stats give target, hit rate and waits; resize is refused', async () => {
  const engine = new FakeEngine();
  engine.startDelayMs = 300;
  await using node = await started(['--pool-size', 'auto', '--pool-min', '1', '--pool-max', '8', '--max-containers', '60'], {}, engine);
  await until(() => node.orch.stats().available === 1, 'min warm');
  let stats = node.orch.poolStats('default');
  assert.deepEqual([stats.target, stats.auto, stats.hit_rate_10m, stats.claims_10m], [1, true, null, 0]);
  const claims = [];
  for (let i = 0; i < 30; i++) {
    claims.push(node.orch.claimOrWait(undefined, { path: '', query: '' }, 5000));
    await new Promise((r) => setTimeout(r, 80));
  }
  await Promise.all(claims);
  stats = node.orch.poolStats('default');
  assert.equal(stats.claims_10m, 30);
  assert.ok(stats.waits_10m! > 0 && stats.hit_rate_10m! < 1, `some waited: ${JSON.stringify(stats)}`);
  assert.equal(stats.warm_hits_10m! + stats.waits_10m!, 30);
  assert.ok(stats.wait_max_ms! >= stats.wait_p50_ms!);
  await until(() => node.orch.poolStats('default').target! > 1, 'the target to rise with the burst', 3000);
  await until(() => node.orch.poolStats('default').warm >= node.orch.poolStats('default').target!, 'warm to follow the target', 5000);
  assert.throws(() => node.orch.resize('default', 5), Conflict);
  await new Promise((r) => setTimeout(r, 1100));
  const samples = node.orch.history.toJSON().samples;
  assert.ok(samples.at(-1)!.lines!.default!.target! > 1, 'the history carries the target for the status page');
});

test('--max-warm-age: warm containers are replaced a few at a time, the pool never empties', async () => {
  await using node = await started(['--pool-size', '4', '--max-warm-age', '0.4']);
  await until(() => node.orch.stats().available === 4, 'pool to fill');
  const first = new Set(node.orch.core.list({ state: 'warm' }).map((c) => c.id));
  let lowest = 4;
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && node.orch.core.list({ state: 'warm' }).some((c) => first.has(c.id))) {
    lowest = Math.min(lowest, node.orch.stats().available);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(!node.orch.core.list({ state: 'warm' }).some((c) => first.has(c.id)), 'every first container was replaced');
  assert.ok(lowest >= 2, `at most 2 replaced at once (warm went down to ${lowest})`);
});

test('presets: a shiny pool pools an app that runs under / (route data strip_prefix), entry /shiny/, lands on /', async () => {
  await using node = await started(['--pool-size', '1'], { pools: { shiny: { preset: 'shiny', image: 'nbpool/shiny', size: 1 } } });
  await until(() => node.orch.stats().available === 2, 'both pools to fill');
  const spec = [...node.engine.containers.values()].find((c) => c.spec.labels['nbpool.pool'] === 'shiny')!.spec;
  assert.deepEqual(spec.cmd, [], "the image's own command");
  const claim = (await node.orch.claimNow('shiny', { path: '', query: '' }))!;
  assert.equal(claim.url, `/user/${claim.id}/`);
  assert.equal(node.routes.routes.get(`/user/${claim.id}`)!.strip_prefix, true);
  const notebook = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  assert.equal(node.routes.routes.get(`/user/${notebook.id}`)!.strip_prefix, undefined, 'Jupyter runs under its base path');
  assert.deepEqual(node.routes.routes.get(`/user/${notebook.id}`)!.activity_ignore, PRESETS.jupyter.activityIgnore, "Jupyter's polls are not activity");
  assert.equal(node.routes.routes.get(`/user/${claim.id}`)!.activity_ignore, undefined, 'a Shiny app names none');
  assert.deepEqual([node.orch.poolStats('shiny').entry_path, node.orch.poolStats('shiny').preset], ['/shiny/', 'shiny']);
});

test("Jupyter's /api/kernels read as busy and latest kernel activity", () => {
  assert.deepEqual(jupyterKernelActivity([]), { busy: false });
  assert.deepEqual(
    jupyterKernelActivity([
      { id: 'a', execution_state: 'idle', last_activity: '2026-11-30T01:00:00.000000Z' },
      { id: 'b', execution_state: 'busy', last_activity: '2026-11-30T02:00:00.000000Z' },
    ]),
    { busy: true, lastActivity: Date.parse('2026-11-30T02:00:00Z') },
  );
  assert.equal(jupyterKernelActivity({ message: 'Forbidden' }), undefined);
  assert.equal(jupyterKernelActivity([3]), undefined);
});

test('culling asks the app: a busy kernel keeps an idle container, an idle kernel does not, and the busy one goes once it is idle', async () => {
  const answers = new Map<string, AppActivity | undefined>();
  const asked: string[] = [];
  const activity: AppActivityProbe = {
    async ask(api, target, basePath) {
      assert.equal(api, 'jupyter');
      asked.push(basePath);
      return answers.get(basePath);
    },
  };
  await using node = await startFake(testConfig('t-demand', ['--pool-size', '2', '--cull-timeout', '0.1', '--cull-period', '0.05', '--reconcile-period', '3600']), { activity });
  await until(() => node.orch.stats().available === 2, 'pool to fill');
  const busy = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  const idle = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  answers.set(`/user/${busy.id}/`, { busy: true, lastActivity: Date.now() - 60_000 });
  answers.set(`/user/${idle.id}/`, { busy: false, lastActivity: Date.now() - 60_000 });
  await new Promise((r) => setTimeout(r, 200));
  await node.orch.reconcilePass();
  assert.ok(asked.includes(`/user/${busy.id}/`) && asked.includes(`/user/${idle.id}/`), 'both asked before an idle cull');
  assert.ok(node.routes.routes.has(`/user/${busy.id}`), 'the busy kernel is kept');
  assert.ok(!node.routes.routes.has(`/user/${idle.id}`), 'the idle kernel is culled');
  // The computation ends: the next pass culls it.
  answers.set(`/user/${busy.id}/`, { busy: false, lastActivity: Date.now() - 60_000 });
  await new Promise((r) => setTimeout(r, 80));
  await node.orch.reconcilePass();
  assert.ok(!node.routes.routes.has(`/user/${busy.id}`), 'culled once the kernel is idle');
});

test('--cull-max culls a busy kernel too, and the log says it was busy', async () => {
  const activity: AppActivityProbe = { ask: async () => ({ busy: true, lastActivity: Date.now() }) };
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  await using node = await startFake(testConfig('t-demand', ['--pool-size', '1', '--cull-max', '1', '--cull-period', '0.05', '--reconcile-period', '3600']), { activity, log });
  await until(() => node.orch.stats().available === 1, 'pool to fill');
  const busy = (await node.orch.claimNow(undefined, { path: '', query: '' }))!;
  await until(() => !node.routes.routes.has(`/user/${busy.id}`), 'culled at its maximum age though its kernel works');
  const cull = lines.find((l) => l.id === busy.id && String(l.msg).startsWith('culling'));
  assert.deepEqual([cull?.msg, cull?.reason, cull?.kernel], ['culling container while its kernel was busy', 'max-age', 'busy']);
});
