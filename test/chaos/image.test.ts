/**
 * Chaos: the pool's image removed from the engine (a missing image is the same fault as an image
 * deleted under a running node). Starts fail and back off (no tight loop), the API and the status
 * page say why, and the pool fills by itself once the image is back (here: tagged again).
 * A full disk cannot be caused on the shared engine; it fails the same code path (the engine's
 * create or start call refusing), so this test stands for both.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { docker, removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, ADMIN_TOKEN } from '../orchestrator/harness.js';
import { recordFigures, secondsSince } from './figures.js';
import { leaked } from './stack.js';

test('image missing: failures back off, the API and status page say why, the pool recovers when the image is back', { timeout: 180_000 }, async () => {
  await requireImage(TINY_IMAGE);
  const repo = `nbpool/chaos-missing-${randomBytes(4).toString('hex')}`;
  const node = await startNode('chaosimage', ['--image', `${repo}:latest`, '--pool-size', '2']);
  try {
    const failing = await waitFor(async () => {
      const pool = (await stats(node)).pools.default!;
      return pool.failures >= 2 && pool.backoff_until ? pool : undefined;
    }, { timeoutMs: 30_000, what: 'failed starts and a backoff' });
    assert.match(failing.last_failure ?? '', new RegExp(`container failed to start: .*(No such image|not found).*${repo}`, 'i'));
    assert.equal(failing.warm, 0);
    // Backing off: over 6 s, a few attempts, not a tight loop (500 ms doubling, up to 30 s).
    const before = failing.failures;
    await new Promise((r) => setTimeout(r, 6000));
    const attempts = (await stats(node)).pools.default!.failures - before;
    assert.ok(attempts <= 10, `${attempts} failed starts in 6 s`);
    // The status page draws its pool table from the admin API's figures.
    const admin = JSON.parse((await http(`${node.orch.adminUrl}/api/stats`, { headers: { Authorization: `token ${ADMIN_TOKEN}` } })).body) as Awaited<ReturnType<typeof stats>>;
    assert.equal(admin.pools.default!.last_failure, failing.last_failure);
    // A visitor meanwhile: a clear "try again", not a 5xx page.
    const visitor = await http(`${node.proxy.url}/api/spawn`, { method: 'POST' });
    assert.equal(visitor.status, 429, visitor.body);

    await docker().getImage(TINY_IMAGE).tag({ repo, tag: 'latest' });
    const fixedAt = Date.now();
    await waitFor(async () => (await stats(node)).pools.default!.warm === 2 || undefined, { timeoutMs: 60_000, intervalMs: 200, what: 'the pool filled again' });
    const recovered = secondsSince(fixedAt);
    const after = (await stats(node)).pools.default!;
    assert.equal(after.last_failure, undefined, 'the reason goes once a start succeeds');
    const leak = await leaked(node.instance, await stats(node));
    await recordFigures('image_missing', { visitors_lost: 0, containers_leaked: leak, seconds_to_recover: recovered, failed_starts_in_6s: attempts });
    assert.equal(leak, 0);
  } finally {
    await node.stop();
    await removeInstance(node.instance);
    await docker().getImage(`${repo}:latest`).remove({ noprune: true }).catch(() => undefined);
  }
});
