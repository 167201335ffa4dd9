/** Capacity cap, room, and the waiting line when the pool is empty. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, waitForWarm } from './harness.js';

test('the cap bounds warm + claimed + starting; room is cap minus claimed', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('cap', ['--pool-size', '2', '--max-containers', '3', '--spawn-wait', '0']);
  try {
    await waitForWarm(node, 'default', 2);
    for (let i = 0; i < 3; i++) {
      const reply = await http(`${node.proxy.url}/api/spawn`, { method: 'POST' });
      if (reply.status !== 200) {
        // The third claim may arrive before the refill is warm; it is answered 429 at once.
        assert.equal(reply.status, 429);
        await waitForWarm(node, 'default', 1);
        i--;
      }
    }
    const s = await stats(node);
    assert.equal(s.claimed, 3);
    assert.equal(s.room, 0);
    assert.equal(s.capacity, 3);
    assert.equal(s.available + s.starting, 0, 'nothing may start past the cap');
    const engine = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${node.instance}`] } });
    assert.equal(engine.length, 3);
    const full = await http(`${node.proxy.url}/api/spawn`, { method: 'POST' });
    assert.equal(full.status, 429);
    assert.ok(Number(full.headers['retry-after']) >= 1, 'Retry-After always set');
  } finally {
    await node.stop();
  }
});

test('empty pool: visitors wait in line and all land once room frees; API gets 429 + Retry-After after --spawn-wait; beyond the line a full page', async () => {
  await requireImage(TINY_IMAGE);
  // Cap 2, claimed containers culled after ~1.5 s idle: room frees up by itself, one by one.
  const node = await startNode('queue', [
    '--pool-size', '1', '--max-containers', '2', '--spawn-wait', '1', '--queue-size', '3',
    '--cull-timeout', '1.5', '--cull-period', '0.5',
  ]);
  try {
    await waitForWarm(node, 'default', 1);
    const first = await http(`${node.proxy.url}/spawn/tree`);
    assert.equal(first.status, 302);
    await waitForWarm(node, 'default', 1);
    assert.equal((await http(`${node.proxy.url}/spawn/tree`)).status, 302);
    assert.equal((await stats(node)).room, 0);

    // Three loading-page visitors queue up in arrival order.
    const tickets: string[] = [];
    for (let i = 0; i < 3; i++) {
      const page = await http(`${node.proxy.url}/spawn/tree?visitor=${i}`);
      assert.equal(page.status, 200);
      const ticket = /\/api\/wait\/([A-Za-z0-9]+)/.exec(page.body)?.[1];
      assert.ok(ticket, 'a waiting page with a ticket');
      assert.ok(page.body.includes(`You are number ${i + 1} in line`), page.body);
      tickets.push(ticket);
    }
    // The line is full: a clear page with Retry-After; the API gets 429 with Retry-After.
    const full = await http(`${node.proxy.url}/spawn/tree`);
    assert.ok(full.status === 503 || full.status === 429);
    assert.ok(Number(full.headers['retry-after']) >= 1);
    assert.match(full.body, /No notebook is free/);
    const api = await http(`${node.proxy.url}/api/spawn`, { method: 'POST' });
    assert.equal(api.status, 429);
    assert.ok(Number(api.headers['retry-after']) >= 1);
    assert.equal((await stats(node)).waiting, 3);

    // Everyone lands as culls free room, in arrival order.
    const landed: Array<{ ticket: string; url: string; at: number }> = [];
    await Promise.all(
      tickets.map(async (ticket) => {
        for (;;) {
          const poll = await http(`${node.proxy.url}/api/wait/${ticket}`);
          assert.equal(poll.status, 200, poll.body);
          const body = JSON.parse(poll.body) as { ready: boolean; url?: string };
          if (body.ready) {
            landed.push({ ticket, url: body.url!, at: Date.now() });
            return;
          }
        }
      }),
    );
    assert.deepEqual(landed.map((l) => l.ticket), tickets, 'served in arrival order');
    for (const [i, l] of landed.entries()) assert.match(l.url, new RegExp(`^/user/[A-Za-z0-9]+/tree\\?visitor=${i}$`));
    // A no-JS visitor re-loading their spawn link with the ticket is redirected too.
    const again = await http(`${node.proxy.url}/spawn/tree?ticket=${tickets[2]}`);
    assert.equal(again.status, 302);
    assert.equal(again.headers.location, landed[2]!.url);
  } finally {
    await node.stop();
  }
});

test('an API visitor waiting within --spawn-wait gets the next container', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('apiwait', ['--pool-size', '1', '--spawn-wait', '15', '--command', 'tiny-notebook --base-url {base_path} --port {port} --start-delay-ms 400']);
  try {
    await waitForWarm(node, 'default', 1);
    const replies = await Promise.all([0, 1, 2].map(() => http(`${node.proxy.url}/api/spawn`, { method: 'POST' })));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200]);
    await waitFor(async () => (await stats(node)).claimed === 3, { what: '3 claimed' });
  } finally {
    await node.stop();
  }
});

test('an API caller who hangs up while waiting leaves the line: the next container stays warm, claimed for nobody', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('apigone', ['--pool-size', '1', '--max-containers', '1', '--spawn-wait', '30']);
  try {
    await waitForWarm(node, 'default', 1);
    const first = await http(`${node.proxy.url}/api/spawn`, { method: 'POST' });
    assert.equal(first.status, 200);
    // Waits (no room), then gives up, as a publisher's script with a timeout does.
    await assert.rejects(fetch(`${node.proxy.url}/api/spawn`, { method: 'POST', signal: AbortSignal.timeout(500) }));
    await waitFor(async () => (await stats(node)).waiting === 0 || undefined, { what: 'the line to empty' });
    // Room frees: what starts must wait warm for the next visitor, not be claimed for the one gone.
    const [claimed] = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${node.instance}`] } });
    await docker().getContainer(claimed!.Id).kill();
    await waitForWarm(node, 'default', 1, 30_000);
    const s = await stats(node);
    assert.equal(s.claimed, 0, 'nothing claimed for the caller who hung up');
  } finally {
    await node.stop();
  }
});

test('a claim whose visitor never arrives is removed after --unvisited-timeout; one whose visitor came stays', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('unvisited', ['--pool-size', '2', '--unvisited-timeout', '1.5', '--cull-timeout', '3600', '--cull-period', '0.2', '--reconcile-period', '0.2']);
  try {
    await waitForWarm(node, 'default', 2);
    const claim = async () => JSON.parse((await http(`${node.proxy.url}/api/spawn`, { method: 'POST' })).body) as { id: string; url: string };
    const gone = await claim();
    const came = await claim();
    assert.equal((await http(`${node.proxy.url}${came.url}`)).status, 200, 'the visitor arrives');
    await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${gone.id}`] || undefined, { what: 'the unvisited claim to be culled', timeoutMs: 15_000 });
    assert.ok((await node.proxy.routes.getRoutes())[`/user/${came.id}`], 'the visited claim keeps its route');
    assert.equal((await http(`${node.proxy.url}${came.url}`)).status, 200, 'and its container');
  } finally {
    await node.stop();
  }
});
