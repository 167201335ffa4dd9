/** Start failures and backoff, never-answering containers, culling, healing and orphan routes. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { DockerBackend } from '../../orchestrator/docker-backend.js';
import { startOrchestrator } from '../../orchestrator/server.js';
import { silentLogger } from '../../shared/log.js';
import { removeInstance } from '../helpers/docker.js';
import { http, startNode, startProxy, stats, testConfig, uniqueInstance, waitForWarm, type Node } from './harness.js';

before(() => requireImage(TINY_IMAGE));

async function engineContainers(node: Node, all = true) {
  return docker().listContainers({ all, filters: { label: [`${LABELS.instance}=${node.instance}`] } });
}

test('start failures back off (shown in stats) instead of looping hot, and leave nothing behind', async () => {
  const node = await startNode('badcmd', ['--pool-size', '2', '--command', '/no/such/program {port}']);
  try {
    const s = await waitFor(async () => {
      const figures = (await stats(node)).pools.default!;
      return figures.failures >= 2 && figures.backoff_until ? figures : undefined;
    }, { what: 'failures and a backoff' });
    assert.ok(Date.parse(s.backoff_until!) > Date.now() - 1000);
    await new Promise((r) => setTimeout(r, 2500));
    const later = (await stats(node)).pools.default!;
    // Unbounded retrying would reach dozens in 2.5 s; backoff doubles from 0.5 s per failure.
    assert.ok(later.failures <= 10, `failures ${later.failures}`);
    assert.equal(later.warm, 0);
    await waitFor(async () => (await engineContainers(node)).length === 0 || undefined, { what: 'failed containers removed' });
  } finally {
    await node.stop();
  }
});

test('a container that exits before answering is counted as a failure and removed', async () => {
  const node = await startNode('exits', ['--pool-size', '1', '--command', 'tiny-notebook --base-url {base_path} --port {port} --start-delay-ms 300 --exit-after-ms 100']);
  try {
    await waitFor(async () => (await stats(node)).pools.default!.failures >= 1 || undefined, { what: 'a failure' });
    assert.equal((await stats(node)).available, 0);
  } finally {
    await node.stop();
  }
});

test('a container that never answers (--hang) is removed after the probe deadline and counted', async () => {
  const node = await startNode('hang', ['--pool-size', '1', '--probe-timeout', '1', '--command', 'tiny-notebook --base-url {base_path} --port {port} --hang']);
  try {
    const first = await waitFor(async () => (await engineContainers(node, false))[0], { what: 'the hanging container' });
    await waitFor(async () => (await stats(node)).pools.default!.failures >= 1 || undefined, { what: 'a counted failure', timeoutMs: 10_000 });
    assert.equal((await stats(node)).available, 0);
    await waitFor(async () => !(await engineContainers(node)).some((c) => c.Id === first.Id) || undefined, { what: 'its removal' });
  } finally {
    await node.stop();
  }
});

test('idle claimed containers are culled with their route; the pool stays full', async () => {
  const node = await startNode('idle', ['--pool-size', '1', '--cull-timeout', '1', '--cull-period', '0.3']);
  try {
    await waitForWarm(node, 'default', 1);
    const { id } = JSON.parse((await http(`${node.proxy.url}/api/spawn`, { method: 'POST' })).body) as { id: string };
    assert.ok((await node.proxy.routes.getRoutes())[`/user/${id}`]);
    await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${id}`] || undefined, { what: 'route culled' });
    await waitFor(async () => !(await engineContainers(node)).some((c) => c.Labels[LABELS.user] === id) || undefined, { what: 'container culled' });
    const after = await http(`${node.proxy.url}/user/${id}/tree`);
    assert.equal(after.status, 200);
    assert.match(after.body, /Starting your notebook/, 'a culled visitor gets the loading page, not an error');
    await waitForWarm(node, 'default', 1);
  } finally {
    await node.stop();
  }
});

test('containers older than --cull-max are replaced, warm ones included', async () => {
  const node = await startNode('maxage', ['--pool-size', '1', '--cull-max', '1.5', '--cull-period', '0.3']);
  try {
    await waitForWarm(node, 'default', 1);
    const [first] = await engineContainers(node, false);
    await waitFor(async () => {
      const now = await engineContainers(node, false);
      return now.length >= 1 && !now.some((c) => c.Id === first!.Id) ? true : undefined;
    }, { what: 'the old container replaced', timeoutMs: 15_000 });
  } finally {
    await node.stop();
  }
});

test('containers removed behind our back are replaced; claimed ones lose their route; orphan routes are deleted', async () => {
  const node = await startNode('healing', ['--pool-size', '2', '--cull-period', '0.3']);
  try {
    await waitForWarm(node, 'default', 2);
    const { id } = JSON.parse((await http(`${node.proxy.url}/api/spawn`, { method: 'POST' })).body) as { id: string };
    await waitForWarm(node, 'default', 2);
    const all = await engineContainers(node);
    assert.equal(all.length, 3);
    for (const c of all) await docker().getContainer(c.Id).remove({ force: true });
    await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${id}`] || undefined, { what: 'the dead claim route deleted' });
    await waitForWarm(node, 'default', 2);
    const s = await stats(node);
    assert.equal(s.claimed, 0);

    // Routes: ours with no container go; other instances' and foreign routes stay.
    await node.proxy.routes.addRoute('/user/orphanAAAAAAAAAAAAAAAAAA', { target: 'http://127.0.0.1:9', instance: node.instance });
    await node.proxy.routes.addRoute('/user/otherBBBBBBBBBBBBBBBBBBBB', { target: 'http://127.0.0.1:9', instance: 'someone-else' });
    await node.proxy.routes.addRoute('/elsewhere', { target: 'http://127.0.0.1:9' });
    await waitFor(async () => !(await node.proxy.routes.getRoutes())['/user/orphanAAAAAAAAAAAAAAAAAA'] || undefined, { what: 'orphan route deleted' });
    const routes = await node.proxy.routes.getRoutes();
    assert.ok(routes['/user/otherBBBBBBBBBBBBBBBBBBBB']);
    assert.ok(routes['/elsewhere']);
  } finally {
    await node.stop();
  }
});

/** The engine failing mid-run cannot be caused on this shared engine, so the backend injects it. */
class FlakyBackend extends DockerBackend {
  broken = false;
  override list(label: string, value: string) {
    return this.broken ? Promise.reject(new Error('injected: engine unreachable')) : super.list(label, value);
  }
  override start(...args: Parameters<DockerBackend['start']>) {
    return this.broken ? Promise.reject(new Error('injected: engine unreachable')) : super.start(...args);
  }
}

test('engine errors during cull passes and refills never stop the orchestrator; it recovers', async () => {
  const proxy = await startProxy();
  const instance = uniqueInstance('flaky');
  const backend = new FlakyBackend();
  const orch = await startOrchestrator(testConfig(instance, ['--pool-size', '1', '--cull-period', '0.2']), { routes: proxy.routes, log: silentLogger(), backend });
  try {
    const warm = () => orch.orchestrator.stats().available;
    await waitFor(() => warm() === 1 || undefined, { what: 'warm' });
    backend.broken = true;
    assert.equal((await http(`${orch.url}/spawn/tree`)).status, 302, 'claims need no engine call');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(orch.orchestrator.stats().pools.default!.failures >= 1, 'failed refills counted');
    assert.equal((await http(`${orch.url}/api/stats`)).status, 200, 'still serving');
    backend.broken = false;
    await waitFor(() => warm() === 1 || undefined, { what: 'recovered after the backoff', timeoutMs: 20_000 });
  } finally {
    await orch.close();
    await proxy.stop();
    await removeInstance(instance);
  }
});
