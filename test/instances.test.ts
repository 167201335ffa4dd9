/**
 * Two orchestrators on one engine (issue 15 part 5): two `nbpool up` started at the same moment
 * without --instance each get their own instance (from their port), both fill, neither removes
 * the other's containers; a second one with the same explicit --instance is refused with one
 * line; the instance of a SIGKILLed owner is taken over and its containers adopted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { OWNER_LABEL } from '../orchestrator/backend.js';
import { docker, removeInstance, requireImage, TINY_IMAGE } from './helpers/docker.js';
import { freePort, waitFor } from './helpers/net.js';
import { spawnUp, startUp, type UpProcess } from './helpers/up.js';

const TINY_COMMAND = 'tiny-notebook --base-url {base_path} --port {port} --ip {ip} --NotebookApp.token={token}';
const common = ['--image', TINY_IMAGE, '--command', TINY_COMMAND, '--pool-size', '3', '--mem-limit', '64m', '--max-containers', '10', '--admin-port', '0', '--api-port', '0', '--cull-period', '1', '--log-level', 'info'];
const instances: string[] = [];
const running: UpProcess[] = [];

async function containerIds(instance: string): Promise<string[]> {
  const list = await docker().listContainers({ all: true, filters: { label: [`nbpool.instance=${instance}`] } });
  return list.map((c) => c.Id).sort();
}

async function available(node: UpProcess): Promise<number> {
  return ((await (await fetch(`${node.url}/api/stats`)).json()) as { available: number }).available;
}

before(() => requireImage(TINY_IMAGE));
after(async () => {
  for (const node of running) if (node.child.exitCode === null && node.child.signalCode === null) await node.stop();
  for (const instance of instances) {
    await removeInstance(instance);
  }
});

test('two nodes on one engine at once: own instances, both fill, neither loses a container; a same --instance is refused; a dead owner is taken over', { timeout: 240_000 }, async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  instances.push(`nbpool-${portA}`, `nbpool-${portB}`);
  const [a, b] = await Promise.all([startUp([...common, '--port', String(portA)]), startUp([...common, '--port', String(portB)])]);
  running.push(a, b);
  await waitFor(async () => (await available(a)) === 3 && (await available(b)) === 3, { timeoutMs: 60_000, intervalMs: 200, what: 'both pools full' });
  const visitorA = (await fetch(`${a.url}/spawn/tree`, { redirect: 'manual' })).headers.get('location')!;
  const visitorB = (await fetch(`${b.url}/spawn/tree`, { redirect: 'manual' })).headers.get('location')!;
  await waitFor(async () => (await available(a)) === 3 && (await available(b)) === 3, { timeoutMs: 30_000, intervalMs: 200, what: 'both pools refilled' });
  const [idsA, idsB] = [await containerIds(`nbpool-${portA}`), await containerIds(`nbpool-${portB}`)];
  assert.equal(idsA.length, 4);
  assert.equal(idsB.length, 4);

  // A few cull passes (1 s period) later, every container is still there and both visitors served.
  await new Promise((r) => setTimeout(r, 3000));
  assert.deepEqual(await containerIds(`nbpool-${portA}`), idsA, "A's containers untouched");
  assert.deepEqual(await containerIds(`nbpool-${portB}`), idsB, "B's containers untouched");
  assert.equal((await fetch(a.url + visitorA)).status, 200);
  assert.equal((await fetch(b.url + visitorB)).status, 200);
  for (const node of [a, b]) assert.doesNotMatch(node.stderr(), /cannot be adopted/);

  // The same explicit instance while its owner lives: refused, one line, exit 2, nothing touched.
  const same = spawnUp([...common, '--port', '0', '--instance', `nbpool-${portA}`]);
  assert.equal(await same.exited, 2);
  assert.match(
    same.stderr().trim(),
    new RegExp(`^nbpool up: instance "nbpool-${portA}" is run on this engine by another orchestrator \\(pid ${a.child.pid} on \\S+ since \\S+\\); give this one its own --instance NAME \\(if that one is gone for good: docker rm nbpool-${portA}.owner\\)$`),
  );
  assert.deepEqual(await containerIds(`nbpool-${portA}`), idsA);

  // Its owner SIGKILLed: a node restarted on the same port takes the instance over and adopts.
  await a.kill();
  const again = await startUp([...common, '--port', String(portA)]);
  running.push(again);
  const page = await waitFor(async () => {
    const res = await fetch(again.url + visitorA);
    return res.status === 200 ? res.text() : undefined;
  }, { timeoutMs: 30_000, what: "A's visitor served by the node that took over" });
  assert.match(page, /<title>tiny<\/title>/);
  await waitFor(async () => (await available(again)) === 3, { timeoutMs: 30_000, intervalMs: 200, what: 'adopted pool full' });
  assert.deepEqual(await containerIds(`nbpool-${portA}`), idsA, 'the same containers, adopted');
  assert.equal(await again.stop(), 0);
  assert.equal(await b.stop(), 0);
  assert.equal((await docker().listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=nbpool-${portA}`] } })).length, 0, 'ownership released at shutdown');
});
