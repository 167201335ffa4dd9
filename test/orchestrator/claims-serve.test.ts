/**
 * Every claim answered must serve: sequential claims while the pool refills, a burst, and warm
 * containers killed behind the orchestrator's back. Each visitor's page is fetched through the
 * proxy and must come from their own container (the tiny server echoes its base path).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { http, startNode, waitForWarm, type Node } from './harness.js';

let node: Node;

before(async () => {
  await requireImage(TINY_IMAGE);
  node = await startNode('serve', ['--pool-size', '6', '--max-containers', '40', '--refill-delay', '0.1', '--spawn-wait', '60']);
});
after(() => node?.stop());

/** Claims through the proxy (waiting in line when the pool ran dry) and checks, at once, that the visitor's own container answers. */
async function claimAndServe(): Promise<string> {
  const reply = await http(`${node.proxy.url}/api/spawn`, { method: 'POST', body: '{}' });
  assert.equal(reply.status, 200, reply.body);
  const location = (JSON.parse(reply.body) as { url: string }).url;
  const base = /^(\/user\/[^/]+\/)/.exec(location)![1]!;
  const page = await http(`${node.proxy.url}${base}api/whoami`);
  assert.equal(page.status, 200, `claim ${location} answered ${page.status}: ${page.body.slice(0, 200)}`);
  assert.equal((JSON.parse(page.body) as { base_url: string }).base_url, base, `${location} is served by another container`);
  return location;
}

test('sequential claims while the pool refills, then a burst: every claim serves its own container', async () => {
  await waitForWarm(node, 'default', 6, 60_000);
  for (let i = 0; i < 12; i++) await claimAndServe();
  await waitForWarm(node, 'default', 6, 60_000);
  const burst = await Promise.all(Array.from({ length: 6 }, () => claimAndServe()));
  assert.equal(new Set(burst).size, 6, 'six visitors, six containers');
});

test('warm containers killed behind its back are never handed out', async () => {
  await waitForWarm(node, 'default', 6, 60_000);
  const warm = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${node.instance}`] } });
  const unclaimed = warm.filter((c) => !c.Names[0]!.endsWith('-claimed'));
  await Promise.all(unclaimed.slice(0, 3).map((c) => docker().getContainer(c.Id).kill()));
  for (let i = 0; i < 6; i++) await claimAndServe();
});
