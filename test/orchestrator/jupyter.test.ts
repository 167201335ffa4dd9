/** End to end with the real Jupyter Notebook image, the default command, through the proxy. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_COMMAND, DEFAULT_IMAGE } from '../../orchestrator/config.js';
import { JUPYTER_IMAGE, requireImage } from '../helpers/docker.js';
import { http, startNode, waitForWarm } from './harness.js';

test('real Jupyter: admitted after it answers, claimed through the proxy, tree and API answer under /user/<id>/', async () => {
  assert.equal(DEFAULT_IMAGE, JUPYTER_IMAGE);
  await requireImage(JUPYTER_IMAGE);
  const node = await startNode('jupyter', ['--image', DEFAULT_IMAGE, '--command', DEFAULT_COMMAND, '--pool-size', '1', '--mem-limit', '512m', '--probe-timeout', '60']);
  try {
    await waitForWarm(node, 'default', 1, 60_000);
    const reply = await http(`${node.proxy.url}/spawn/`);
    assert.equal(reply.status, 302);
    const location = reply.headers.location as string;
    const id = /^\/user\/([A-Za-z0-9]+)\/tree$/.exec(location)![1]!;
    const tree = await http(`${node.proxy.url}${location}`);
    assert.equal(tree.status, 200, tree.body.slice(0, 300));
    assert.match(tree.body, /Jupyter/);
    const api = JSON.parse((await http(`${node.proxy.url}/user/${id}/api`)).body) as { version: string };
    assert.match(api.version, /^6\./);
    const contents = await http(`${node.proxy.url}/user/${id}/api/contents`);
    assert.equal(contents.status, 200, 'no token needed when --use-tokens is off');
  } finally {
    await node.stop();
  }
});

test('real Jupyter with --use-tokens demands the token it was given', async () => {
  await requireImage(JUPYTER_IMAGE);
  const node = await startNode('jupytok', ['--image', DEFAULT_IMAGE, '--command', DEFAULT_COMMAND, '--pool-size', '1', '--mem-limit', '512m', '--probe-timeout', '60', '--use-tokens']);
  try {
    await waitForWarm(node, 'default', 1, 60_000);
    const { url, id, token } = JSON.parse((await http(`${node.proxy.url}/api/spawn`, { method: 'POST' })).body) as { url: string; id: string; token: string };
    assert.ok(url.endsWith(`?token=${token}`));
    assert.equal((await http(`${node.proxy.url}/user/${id}/api/contents`)).status, 403);
    assert.equal((await http(`${node.proxy.url}/user/${id}/api/contents`, { headers: { Authorization: `token ${token}` } })).status, 200);
  } finally {
    await node.stop();
  }
});
