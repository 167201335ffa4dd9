// The locally built test images, started on the real Docker engine.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { docker, JUPYTER_IMAGE, removeLabelled, requireImage, TINY_IMAGE } from './helpers/docker.js';
import { waitFor } from './helpers/net.js';

const label = randomUUID();

async function run(image: string, cmd: string[]): Promise<string> {
  const container = await docker().createContainer({
    Image: image,
    Cmd: cmd,
    Labels: { 'nbpool.test': label },
    ExposedPorts: { '8888/tcp': {} },
    HostConfig: { PortBindings: { '8888/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  await container.start();
  const info = await container.inspect();
  const port = info.NetworkSettings.Ports['8888/tcp']?.[0]?.HostPort;
  assert.ok(port, 'port published');
  return `127.0.0.1:${port}`;
}

before(async () => {
  await requireImage(TINY_IMAGE);
  await requireImage(JUPYTER_IMAGE);
});
after(() => removeLabelled('nbpool.test', label));

test('tiny image answers HTTP and WebSocket under its base path', async () => {
  const address = await run(TINY_IMAGE, ['/usr/local/bin/tiny-notebook', '--port', '8888', '--base-url', '/user/abc/']);
  const api = await waitFor(async () => {
    const res = await fetch(`http://${address}/user/abc/api`);
    return res.ok ? res.json() : undefined;
  }, { timeoutMs: 5000, what: 'tiny image' });
  assert.deepEqual(api, { version: 'tiny-1' });
  assert.equal((await fetch(`http://${address}/elsewhere`)).status, 404);

  const ws = new WebSocket(`ws://${address}/user/abc/ws`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
  ws.send('hello');
  assert.equal(await echoed, 'hello');
  ws.close();
});

test('jupyter image serves the notebook API under its base path', async () => {
  const address = await run(JUPYTER_IMAGE, [
    'jupyter-notebook', '--ip=0.0.0.0', '--port=8888', '--allow-root', '--no-browser', '--NotebookApp.base_url=/user/j/', "--NotebookApp.token=",
  ]);
  const api = (await waitFor(async () => {
    const res = await fetch(`http://${address}/user/j/api`);
    return res.ok ? res.json() : undefined;
  }, { timeoutMs: 30_000, what: 'jupyter' })) as { version: string };
  assert.match(api.version, /^6\./);
});
