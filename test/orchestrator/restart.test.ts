/** Restart adoption: Docker labels are the truth; a restart loses no visitor and fills no pool twice. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, waitForWarm, type Node } from './harness.js';

async function engineIds(node: Node): Promise<string[]> {
  const list = await docker().listContainers({ all: true, filters: { label: [`${LABELS.instance}=${node.instance}`] } });
  return list.map((c) => c.Id).sort();
}

test('a new orchestrator of the same instance adopts warm and claimed containers; visitors keep their routes', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('restart', ['--pool-size', '2']);
  const other = await startNode('bystander', ['--pool-size', '1']);
  try {
    await waitForWarm(node, 'default', 2);
    await waitForWarm(other, 'default', 1);
    const claims: string[] = [];
    for (let i = 0; i < 2; i++) {
      const reply = await http(`${node.proxy.url}/spawn/tree`);
      claims.push(reply.headers.location as string);
      await waitForWarm(node, 'default', 2);
    }
    const before = await engineIds(node);
    assert.equal(before.length, 4);
    const otherBefore = await engineIds(other);

    await node.restart();
    const s = await waitFor(async () => {
      const figures = await stats(node);
      return figures.available === 2 ? figures : undefined;
    }, { what: 'warm containers re-admitted' });
    assert.equal(s.claimed, 2, 'claimed containers adopted as claimed');
    assert.deepEqual(await engineIds(node), before, 'same containers: none killed, none added');
    for (const location of claims) {
      const page = await http(`${node.proxy.url}${location}`);
      assert.equal(page.status, 200, location);
      assert.match(page.body, /<title>tiny<\/title>/);
    }
    assert.deepEqual(await engineIds(other), otherBefore, "another instance's containers are left alone");

    // The adopted warm containers are handed out; the claimed ones never again.
    const next = await http(`${node.proxy.url}/spawn/tree`);
    assert.ok(!claims.includes(next.headers.location as string));
    claims.push(next.headers.location as string);

    // A restart with a smaller pool trims the surplus warm containers and keeps every visitor.
    await waitForWarm(node, 'default', 2);
    await node.restart(['--pool-size', '1']);
    await waitFor(async () => (await engineIds(node)).length === 4 || undefined, { what: 'surplus warm container removed' });
    const trimmed = await stats(node);
    assert.equal(trimmed.claimed, 3);
    assert.equal(trimmed.available, 1);
    for (const location of claims) assert.equal((await http(`${node.proxy.url}${location}`)).status, 200, location);
  } finally {
    await node.stop();
    await other.stop();
  }
});

test('claims survive a restart even when the proxy lost its routes (nbpool up restart): routes are re-added', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('lostroutes', ['--pool-size', '1']);
  try {
    await waitForWarm(node, 'default', 1);
    const location = (await http(`${node.proxy.url}/spawn/tree`)).headers.location as string;
    const path = /^(\/user\/[^/]+)/.exec(location)![1]!;
    // Let the durable claim marker (a rename) land, then stop and wipe the proxy's table.
    await waitFor(async () => {
      const list = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${node.instance}`] } });
      return list.some((c) => c.Names[0]!.endsWith('-claimed')) || undefined;
    }, { what: 'claim marker' });
    await node.orch.close();
    await node.proxy.routes.deleteRoute(path);
    await node.restart();
    await waitFor(async () => (await node.proxy.routes.getRoutes())[path] || undefined, { what: 'route re-added' });
    assert.equal((await http(`${node.proxy.url}${location}`)).status, 200);
    assert.equal((await stats(node)).claimed, 1);
  } finally {
    await node.stop();
  }
});

test('--cleanup-on-exit removes the instance\'s containers on shutdown', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('cleanup', ['--pool-size', '2', '--cleanup-on-exit']);
  try {
    await waitForWarm(node, 'default', 2);
    await http(`${node.proxy.url}/spawn/tree`);
    await node.orch.close();
    assert.deepEqual(await engineIds(node), []);
    assert.deepEqual(Object.keys(await node.proxy.routes.getRoutes()).filter((p) => p.startsWith('/user/')), []);
  } finally {
    await node.stop();
  }
});
