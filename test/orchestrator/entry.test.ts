/** Per-pool entry paths and the loading-page wording (pure parts of the public handler). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildOrchestratorConfig, orchestratorOptionSpecs } from '../../orchestrator/config.js';
import { loadingPage, waitingPage } from '../../orchestrator/pages.js';
import { spawnUrlFor } from '../../orchestrator/server.js';
import { parseConfig } from '../../shared/config.js';

const { values } = parseConfig(orchestratorOptionSpecs, ['--max-containers', '10'], {});
const { pools } = buildOrchestratorConfig(values, {
  pools: { shiny: { preset: 'shiny' }, dash: { preset: 'generic', image: 'dash', entryPath: '/apps/dash' }, apps: { preset: 'generic', image: 'a' } },
});

test('entry paths lead to their pool; everything else to the default pool', () => {
  const cases: Array<[string, string, string, string]> = [
    ['/', '', '/spawn/', 'default'],
    ['/tree', 'a=1', '/spawn/tree?a=1', 'default'],
    ['/user/stale/notebooks/x.ipynb', '', '/spawn/notebooks/x.ipynb', 'default'],
    ['/shiny', '', '/spawn/?pool=shiny', 'shiny'],
    ['/shiny/', 'n=3', '/spawn/?n=3&pool=shiny', 'shiny'],
    ['/shiny/page/2', '', '/spawn/page/2?pool=shiny', 'shiny'],
    ['/shinyx', '', '/spawn/shinyx', 'default'],
    ['/apps/dash/', '', '/spawn/?pool=dash', 'dash'],
    ['/apps/other', '', '/spawn/other?pool=apps', 'apps'],
  ];
  for (const [path, query, url, pool] of cases) {
    const next = spawnUrlFor(path, query, pools);
    assert.deepEqual([next.url, next.pool.name], [url, pool], path);
  }
});

test('pages name what the pool hands out', () => {
  const shiny = pools.find((p) => p.name === 'shiny')!;
  assert.match(loadingPage('/spawn/?pool=shiny', shiny.noun), /Starting your app/);
  assert.match(loadingPage('/spawn/'), /Starting your notebook/);
  assert.match(waitingPage('t', '/spawn/?ticket=t', 0, 'app'), /All apps are busy/);
});
