/**
 * Chaos: a visitor's container dies under them (killed; out of memory at --mem-limit is the usual
 * way). Within a few seconds the node notices (no cull pass needed: the period here is an hour),
 * removes the route, and the visitor's next request lands on a page that says their notebook
 * stopped and gives them a fresh one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, TINY_COMMAND, waitForWarm, type Node } from '../orchestrator/harness.js';
import { recordFigures, secondsSince } from './figures.js';
import { leakedAfterRemovals } from './stack.js';

const NOTICE_WITHIN_MS = 5000;

/** A visitor served from a warm container of `node`: their URL, id and container on the engine. */
async function visitorWithContainer(node: Node) {
  await waitForWarm(node, 'default', 1, 60_000);
  const location = (await http(`${node.proxy.url}/spawn/tree`)).headers.location as string;
  const id = /^\/user\/([^/]+)/.exec(location)![1]!;
  assert.equal((await http(node.proxy.url + location)).status, 200);
  const [container] = await docker().listContainers({ filters: { label: [`${LABELS.user}=${id}`] } });
  assert.ok(container);
  return { location, id, container };
}

test("a visitor's container killed: route gone within seconds, their next request says it stopped and offers a fresh one", { timeout: 120_000 }, async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('chaosdies', ['--pool-size', '1', '--cull-period', '3600']);
  try {
    const { location, id, container } = await visitorWithContainer(node);
    await docker().getContainer(container.Id).kill();
    const killedAt = Date.now();

    const noticed = await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${id}`] || undefined, { timeoutMs: NOTICE_WITHIN_MS * 2, what: 'the dead container\'s route removed' })
      .then(() => secondsSince(killedAt), () => undefined);
    const next = await http(node.proxy.url + location);
    await waitForWarm(node, 'default', 1, 30_000).catch(() => undefined);
    const figures = await stats(node);
    await recordFigures('container_killed', {
      visitors_lost: 1,
      containers_leaked: await leakedAfterRemovals(node.instance, () => stats(node)),
      seconds_to_recover: noticed ?? -1,
      next_request_status: next.status,
    });
    assert.ok(noticed !== undefined && noticed * 1000 <= NOTICE_WITHIN_MS, `noticed after ${noticed ?? 'more than 10'} s`);
    assert.equal(figures.claimed, 0, 'no longer counted claimed');
    assert.equal(next.status, 410, `the visitor gets a page saying it is gone, not a proxy error: ${next.status} ${next.body.slice(0, 200)}`);
    assert.match(next.body, /stopped/i, 'the page says their notebook stopped');
    assert.match(next.body, /\/spawn\//, 'and leads to a fresh one');
  } finally {
    await node.stop();
  }
});

/**
 * The main process waits for a file, then reads zeros into a shell variable until the kernel kills it
 * at the memory limit: the way a notebook dies, with no test hook in the image (busybox's sh and tr).
 */
const GROWING_COMMAND = `sh -c '${TINY_COMMAND} & until [ -e /tmp/grow ]; do sleep 0.1; done; hog=$(tr "\\0" x </dev/zero)'`;

test("a visitor's container out of memory at --mem-limit: route gone within seconds, their next request says it ran out of memory", { timeout: 120_000 }, async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('chaosoom', ['--pool-size', '1', '--cull-period', '3600', '--command', GROWING_COMMAND, '--mem-limit', '32m']);
  try {
    const { location, id, container } = await visitorWithContainer(node);
    // Timed from its death as the engine tells it: how fast it fills its memory depends on the machine's load.
    const events = await docker().getEvents({ filters: { container: [container.Id], event: ['die'] } });
    const died = new Promise<number>((resolve) => events.once('data', () => resolve(Date.now())));
    const grewAt = Date.now();
    await (await docker().getContainer(container.Id).exec({ Cmd: ['touch', '/tmp/grow'] })).start({});
    const diedAt = await Promise.race([died, new Promise<number>((r) => setTimeout(() => r(Date.now()), 30_000))]);
    (events as unknown as { destroy(): void }).destroy();

    const noticed = await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${id}`] || undefined, { timeoutMs: NOTICE_WITHIN_MS * 2, what: 'the dead container\'s route removed' })
      .then(() => secondsSince(diedAt), () => undefined);
    const engineSaid = await docker().getContainer(container.Id).inspect().then((i) => i.State.OOMKilled, () => undefined);
    const next = await http(node.proxy.url + location);
    await waitForWarm(node, 'default', 1, 30_000).catch(() => undefined);
    const figures = await stats(node);
    const leak = await leakedAfterRemovals(node.instance, () => stats(node));
    await recordFigures('container_oom', {
      visitors_lost: 1,
      containers_leaked: leak,
      seconds_to_recover: noticed ?? -1,
      next_request_status: next.status,
      engine_oom_killed: engineSaid ?? 'removed before inspect',
      seconds_to_fill_memory: secondsSince(grewAt, diedAt),
    });
    assert.ok(noticed !== undefined && noticed * 1000 <= NOTICE_WITHIN_MS, `noticed after ${noticed ?? 'more than 10'} s`);
    assert.equal(figures.claimed, 0, 'no longer counted claimed');
    assert.equal(next.status, 410, `the visitor gets a page saying it is gone: ${next.status} ${next.body.slice(0, 200)}`);
    assert.equal(leak, 0, 'the dead container removed');
    assert.match(next.body, /out of memory/i, `the page says why: ${next.body.slice(0, 400)}`);
    assert.match(next.body, /\/spawn\//, 'and leads to a fresh one');
  } finally {
    await node.stop();
  }
});
