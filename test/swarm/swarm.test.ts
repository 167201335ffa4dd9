/**
 * The swarm backend on a real swarm: this engine as manager, two namespaced worker engines
 * (test/helpers/swarm.ts). One swarm for the file, tests in order: fill across nodes, a visitor
 * through the proxy, restart adoption, a paused and a drained node, a worker lost, cull, then
 * deploy/stack.yml deployed with `docker stack deploy` and the real Jupyter image. Tasks stay
 * on the workers (node.role==worker). Never run two swarm test files at once.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { LABELS, OWNER_LABEL } from '../../orchestrator/backend.js';
import { DEFAULT_COMMAND } from '../../orchestrator/config.js';
import { SwarmBackend, type SwarmTask } from '../../orchestrator/swarm-backend.js';
import { JUPYTER_IMAGE, removeLabelled, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { loadImages } from '../helpers/hosts.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startSwarm, type SwarmWorker, type TestSwarm } from '../helpers/swarm.js';
import { http, startNode, stats, TINY_COMMAND, waitForWarm, type Node } from '../orchestrator/harness.js';
import { runInKernel } from './kernel.js';

const exec = promisify(execFile);

const POOL = 4;
let swarm: TestSwarm;
let node: Node;
let networksBefore: string[];
/** The Jupyter image reaching worker 1, copied while the tiny-image tests run (392 MB). */
let jupyterLoaded: Promise<void>;

/** Where each of an instance's live tasks runs: user id -> node id. */
async function placement(instance: string): Promise<Map<string, string>> {
  const filters = { label: [`${LABELS.instance}=${instance}`] };
  const [services, tasks] = await Promise.all([swarm.docker.listServices({ filters }), swarm.docker.listTasks({ filters: { ...filters, 'desired-state': ['running'] } }) as Promise<SwarmTask[]>]);
  const userOf = new Map(services.map((s) => [s.ID, s.Spec?.Labels?.[LABELS.user] ?? '']));
  return new Map(tasks.filter((t) => t.Status?.State === 'running' && userOf.has(t.ServiceID)).map((t) => [userOf.get(t.ServiceID)!, t.NodeID ?? '']));
}

interface Visitor {
  id: string;
  location: string;
  nodeId: string;
}

async function claim(): Promise<Visitor> {
  const reply = await http(`${node.proxy.url}/spawn/tree`);
  assert.equal(reply.status, 302, reply.body.slice(0, 200));
  const location = reply.headers.location as string;
  const id = /^\/user\/([^/]+)\//.exec(location)![1]!;
  return { id, location, nodeId: (await placement(node.instance)).get(id) ?? '' };
}

async function answers(v: Visitor): Promise<boolean> {
  const page = await http(`${node.proxy.url}${v.location}`).catch(() => undefined);
  return page?.status === 200 && /<title>tiny<\/title>/.test(page.body);
}

/** Claims until some visitor runs on each of `workers` (new services spread to the emptiest node). */
async function claimOnEach(workers: SwarmWorker[], visitors: Visitor[]): Promise<void> {
  for (let i = 0; i < 12 && !workers.every((w) => visitors.some((v) => v.nodeId === w.nodeId)); i++) {
    visitors.push(await claim());
    await waitForWarm(node, 'default', POOL, 30_000);
  }
  for (const w of workers) assert.ok(visitors.some((v) => v.nodeId === w.nodeId), `a visitor on ${w.name}`);
}

/** Networks on a worker (the manager's are shared with other tests running now). */
async function networkNames(worker: SwarmWorker): Promise<string[]> {
  return (await worker.docker.listNetworks()).map((n) => n.Name).sort();
}

before(async () => {
  await requireImage(TINY_IMAGE);
  swarm = await startSwarm(2, [TINY_IMAGE]);
  jupyterLoaded = requireImage(JUPYTER_IMAGE).then(() => loadImages([swarm.workers[1]!], [JUPYTER_IMAGE]));
  jupyterLoaded.catch(() => undefined);
  const backend = new SwarmBackend(swarm.docker, { constraints: ['node.role==worker'], startTimeoutMs: 30_000 });
  node = await startNode('swarm', ['--pool-size', String(POOL), '--cull-period', '0.3', '--probe-timeout', '30'], {}, backend);
});

after(async () => {
  await node?.orch.close().catch(() => undefined);
  await node?.proxy.stop().catch(() => undefined);
  await swarm?.stop();
});

const visitors: Visitor[] = [];

test('a pool fills with services on both workers, none on the manager', { timeout: 60_000 }, async () => {
  await waitForWarm(node, 'default', POOL, 40_000);
  const nodes = new Set((await placement(node.instance)).values());
  assert.deepEqual([...nodes].sort(), swarm.workers.map((w) => w.nodeId).sort());
  // A worker's first task makes the swarm's own networks there (ingress, docker_gwbridge).
  networksBefore = await networkNames(swarm.workers[1]!);
});

test('a visitor claimed onto a worker gets their page through the proxy; the claim is a service label', { timeout: 60_000 }, async () => {
  await claimOnEach(swarm.workers, visitors);
  for (const v of visitors) assert.ok(await answers(v), v.location);
  const claimed = await swarm.docker.listServices({ filters: { label: [`${LABELS.instance}=${node.instance}`, 'nbpool.claimed=true'] } });
  await waitFor(async () => (await swarm.docker.listServices({ filters: { label: [`${LABELS.instance}=${node.instance}`, 'nbpool.claimed=true'] } })).length === visitors.length || undefined, {
    what: `${visitors.length} services labelled claimed (${claimed.length} so far)`,
  });
});

test('a restarted orchestrator adopts the services on every node: none added, none removed, visitors kept', { timeout: 60_000 }, async () => {
  const before = await placement(node.instance);
  await node.restart();
  const figures = await waitFor(async () => {
    const s = await stats(node);
    return s.available === POOL ? s : undefined;
  }, { timeoutMs: 20_000, what: 'warm services re-admitted' });
  assert.equal(figures.claimed, visitors.length);
  assert.deepEqual(await placement(node.instance), before);
  for (const v of visitors) assert.ok(await answers(v), v.location);
});

test('a paused node keeps its visitors, sheds its warm containers to the other worker and gets no new ones', { timeout: 60_000 }, async () => {
  const [paused, other] = swarm.workers as [SwarmWorker, SwarmWorker];
  await setAvailability(paused, 'pause');
  await waitFor(async () => {
    const where = await placement(node.instance);
    const warmThere = [...where].filter(([id, n]) => n === paused.nodeId && !visitors.some((v) => v.id === id));
    return warmThere.length === 0 && (await stats(node)).available === POOL || undefined;
  }, { timeoutMs: 30_000, what: 'warm containers moved off the paused node' });
  visitors.push(await claim());
  await waitForWarm(node, 'default', POOL, 20_000);
  const where = await placement(node.instance);
  for (const [id, n] of where) if (!visitors.some((v) => v.id === id)) assert.equal(n, other.nodeId, `warm ${id} placed on the active worker`);
  for (const v of visitors) assert.ok(await answers(v), `visitor ${v.id} on ${v.nodeId === paused.nodeId ? 'the paused' : 'the active'} node`);
});

test('a drained node loses its tasks (swarm stops them): their routes go, other visitors and the pool are untouched', { timeout: 60_000 }, async () => {
  const [drained] = swarm.workers as [SwarmWorker, SwarmWorker];
  const there = visitors.filter((v) => v.nodeId === drained.nodeId);
  await setAvailability(drained, 'drain');
  await waitFor(async () => (await stats(node)).claimed === visitors.length - there.length || undefined, { timeoutMs: 30_000, what: "the drained node's visitors retired" });
  for (const v of there) assert.equal(await answers(v), false);
  visitors.splice(0, visitors.length, ...visitors.filter((v) => v.nodeId !== drained.nodeId));
  for (const v of visitors) assert.ok(await answers(v), v.location);
  assert.equal((await stats(node)).available, POOL);
  assert.ok(![...(await placement(node.instance)).values()].includes(drained.nodeId), 'nothing runs on the drained node');
  await setAvailability(drained, 'active');
});

test('a worker lost costs only its visitors; its warm containers come back on the survivor', { timeout: 90_000 }, async () => {
  const [lost, survivor] = swarm.workers as [SwarmWorker, SwarmWorker];
  await claimOnEach([lost, survivor], visitors);
  const safe = visitors.filter((v) => v.nodeId === survivor.nodeId);
  let failures = 0;
  let requests = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      for (const v of safe) {
        requests++;
        if (!(await answers(v))) failures++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await lost.kill();
  await waitFor(async () => {
    const where = [...(await placement(node.instance)).values()];
    const s = await stats(node);
    return (s.available === POOL && !where.includes(lost.nodeId) && s.claimed === safe.length) || undefined;
  }, { timeoutMs: 60_000, intervalMs: 100, what: 'the pool back to size on the survivor, the lost visitors retired' });
  polling = false;
  await poller;
  assert.equal(failures, 0, `${failures} of ${requests} requests to visitors on the surviving node failed`);
  visitors.splice(0, visitors.length, ...safe);
});

test('cull removes the services, leaving no tasks or networks behind', { timeout: 60_000 }, async () => {
  await node.restart(['--pool-size', '0', '--cull-timeout', '0.5']);
  const filters = { label: [`${LABELS.instance}=${node.instance}`] };
  await waitFor(async () => (await swarm.docker.listServices({ filters })).length === 0 || undefined, { timeoutMs: 30_000, what: 'every service culled' });
  await waitFor(async () => ((await swarm.docker.listTasks({ filters })) as SwarmTask[]).filter((t) => t.NodeID !== swarm.workers[0]!.nodeId).length === 0 || undefined, {
    timeoutMs: 20_000,
    what: 'no tasks left on live nodes',
  });
  assert.deepEqual(await networkNames(swarm.workers[1]!), networksBefore, 'the surviving worker has only the networks it had with the pool running');
});

test('deploy/stack.yml: docker stack deploy runs proxy, orchestrator and Redis; a visitor lands in a service on a worker', { timeout: 240_000 }, async () => {
  const name = `nbstack${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-stack-'));
  const config = join(dir, 'orchestrator.json');
  writeFileSync(config, JSON.stringify({ command: TINY_COMMAND }));
  const [port, adminPort] = [await freePort(), await freePort()];
  const image = `nbpool/nbpool:${name}`;
  const env = {
    ...process.env,
    NBPOOL_IMAGE: image,
    CONFIGPROXY_AUTH_TOKEN: randomBytes(16).toString('hex'),
    ADMIN_AUTH_TOKEN: randomBytes(16).toString('hex'),
    NBPOOL_PORT: String(port),
    NBPOOL_ADMIN_PORT: String(adminPort),
    NBPOOL_POOL_IMAGE: TINY_IMAGE,
    NBPOOL_POOL_SIZE: '2',
    NBPOOL_MEM_LIMIT: '64m',
    NBPOOL_PLACEMENT_CONSTRAINT: 'node.role==worker',
    NBPOOL_INSTANCE: name,
    NBPOOL_NETWORK: `${name}-visitors`,
    NBPOOL_ORCHESTRATOR_CONFIG: config,
  };
  const stack = (...args: string[]) => exec('docker', ['stack', ...args], { env, maxBuffer: 8 << 20 });
  try {
    await exec('bash', ['deploy/build-image.sh'], { env, maxBuffer: 8 << 20 });
    await stack('deploy', '--resolve-image', 'never', '-c', 'deploy/stack.yml', name);
    const node = `http://127.0.0.1:${port}`;
    await waitFor(async () => {
      const res = await fetch(`${node}/api/stats`).catch(() => undefined);
      return (res?.ok && ((await res.json()) as { available: number }).available >= 2) || undefined;
    }, { timeoutMs: 120_000, intervalMs: 500, what: 'the stack up with a full pool' });
    const reply = await http(`${node}/spawn/tree`);
    assert.equal(reply.status, 302, reply.body.slice(0, 200));
    const page = await http(`${node}${reply.headers.location as string}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>tiny<\/title>/);
    const id = /^\/user\/([^/]+)\//.exec(reply.headers.location as string)![1]!;
    const onNode = (await placement(name)).get(id);
    assert.ok(swarm.workers.some((w) => w.nodeId === onNode), 'the visitor\'s service runs on a worker');
    const routes = await fetch(`http://127.0.0.1:${adminPort}/api/pools`, { headers: { authorization: `token ${env.ADMIN_AUTH_TOKEN}` } });
    assert.equal(routes.status, 200, 'the admin API answers its token on the published port');
  } finally {
    await stack('rm', name).catch(() => undefined);
    // The stack's orchestrator keeps visitors' services on SIGTERM (as on plain Docker): remove them, then their network.
    await waitFor(async () => (await swarm.docker.listServices({ filters: { label: [`com.docker.stack.namespace=${name}`] } })).length === 0 || undefined, { timeoutMs: 60_000, what: 'stack services removed' });
    for (const service of await swarm.docker.listServices({ filters: { label: [`${LABELS.instance}=${name}`] } })) await swarm.docker.getService(service.ID).remove().catch(() => undefined);
    // and the owner marker its orchestrator, stopped with the stack, may not have let go of
    await removeLabelled(OWNER_LABEL, name);
    await waitFor(async () => {
      const left = await swarm.docker.listNetworks({ filters: { name: [name] } });
      for (const n of left) await swarm.docker.getNetwork(n.Id).remove().catch(() => undefined);
      return left.length === 0 || undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000, what: 'stack networks removed' });
    await swarm.docker.getImage(image).remove({ force: true }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('real Jupyter on a worker: a page and a kernel over WebSocket through the proxy', { timeout: 240_000 }, async () => {
  const worker = swarm.workers[1]!;
  await jupyterLoaded;
  const backend = new SwarmBackend(swarm.docker, { constraints: [`node.id==${worker.nodeId}`], startTimeoutMs: 60_000 });
  const jupyter = await startNode('swarmjup', ['--image', JUPYTER_IMAGE, '--command', DEFAULT_COMMAND, '--pool-size', '1', '--mem-limit', '512m', '--probe-timeout', '60'], {}, backend);
  try {
    await waitForWarm(jupyter, 'default', 1, 60_000);
    const reply = await http(`${jupyter.proxy.url}/spawn/`);
    const location = reply.headers.location as string;
    const base = `${jupyter.proxy.url}${location.replace(/\/tree$/, '')}`;
    const tree = await http(`${jupyter.proxy.url}${location}`);
    assert.equal(tree.status, 200, tree.body.slice(0, 300));
    assert.match(tree.body, /Jupyter/);
    assert.equal(await runInKernel(base, 'print(6 * 7)'), '42\n');
  } finally {
    await jupyter.orch.close();
    await jupyter.proxy.stop();
  }
});

/** `docker node update --availability`. */
async function setAvailability(worker: SwarmWorker, availability: 'active' | 'pause' | 'drain'): Promise<void> {
  const n = swarm.docker.getNode(worker.nodeId);
  const info = (await n.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
  await n.update({ _query: { version: info.Version.Index }, _body: { ...info.Spec, Availability: availability } });
}
