/** Claim flow on the real engine behind a real proxy: admission, /spawn, /api/spawn, stats, pages, tokens, hook. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { ADMIN_TOKEN, http, startNode, stats, waitForWarm, type Node } from './harness.js';

let node: Node;

before(async () => {
  await requireImage(TINY_IMAGE);
  node = await startNode('claim', ['--pool-size', '2', '--max-containers', '12']);
});
after(() => node?.stop());

test('containers join the pool only after they answer their probe', async () => {
  const slow = await startNode('slow', [
    '--pool-size', '1',
    '--command', 'tiny-notebook --base-url {base_path} --port {port} --start-delay-ms 1500',
  ]);
  try {
    await waitFor(async () => (await docker().listContainers({ filters: { label: [`${LABELS.instance}=${slow.instance}`] } })).length === 1, {
      what: 'the container running on the engine',
    });
    const first = await stats(slow);
    assert.equal(first.starting, 1);
    assert.equal(first.available, 0, 'running but not warm while it does not answer');
    const early = await http(`${slow.proxy.url}/api/spawn`, { method: 'POST', body: '{}' });
    assert.equal(early.status, 200, 'an API visitor waits for the admission instead of failing');
    assert.equal((await stats(slow)).claimed, 1);
  } finally {
    await slow.stop();
  }
});

test('GET /spawn/<path> claims a warm container: 302, route live with extra fields, page answers through the proxy', async () => {
  await waitForWarm(node, 'default', 2);
  const reply = await http(`${node.proxy.url}/spawn/notebooks/x.ipynb?a=1`);
  assert.equal(reply.status, 302);
  const location = reply.headers.location as string;
  const match = /^\/user\/([A-Za-z0-9_-]{21,})\/notebooks\/x\.ipynb\?a=1$/.exec(location);
  assert.ok(match, `redirect ${location}`);
  const id = match[1]!;
  const routes = await node.proxy.routes.getRoutes();
  const route = routes[`/user/${id}`];
  assert.ok(route, 'route registered before the redirect');
  assert.equal(route.pool, 'default');
  assert.equal(route.instance, node.instance);
  assert.match(String(route.container), /^[0-9a-f]{64}$/);
  assert.ok(Date.parse(String(route.created)) > 0);
  const page = await http(`${node.proxy.url}${location}`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>tiny<\/title>/);
  const whoami = JSON.parse((await http(`${node.proxy.url}/user/${id}/api/whoami`)).body) as { base_url: string };
  assert.equal(whoami.base_url, `/user/${id}/`, 'the container was started with its base path');
  await waitForWarm(node, 'default', 2);
  assert.equal((await stats(node)).claimed, 1, 'refilled after the claim, claim kept');
});

test('GET /spawn without a path lands on --redirect-uri', async () => {
  const reply = await http(`${node.proxy.url}/spawn/`);
  assert.equal(reply.status, 302);
  assert.match(reply.headers.location as string, /^\/user\/[A-Za-z0-9]{24}\/tree$/);
});

test('POST /api/spawn answers JSON with and without trailing slash; CORS', async () => {
  for (const path of ['/api/spawn', '/api/spawn/']) {
    const reply = await http(`${node.proxy.url}${path}`, { method: 'POST', headers: { Origin: 'http://example.org' } });
    assert.equal(reply.status, 200, reply.body);
    const body = JSON.parse(reply.body) as { url: string; id: string; pool: string };
    assert.equal(body.url, `/user/${body.id}/tree`);
    assert.equal(body.pool, 'default');
    assert.equal(reply.headers['access-control-allow-origin'], '*');
    assert.equal((await http(`${node.proxy.url}${body.url}`)).status, 200);
  }
  const preflight = await http(`${node.proxy.url}/api/spawn`, { method: 'OPTIONS', headers: { Origin: 'http://example.org', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(preflight.status, 204);
  assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
  const wrong = await http(`${node.proxy.url}/api/spawn`);
  assert.equal(wrong.status, 405);
  assert.equal((await http(`${node.proxy.url}/api/wait/abc`, { method: 'DELETE' })).status, 405, 'a ticket is only read');
  const bad = await http(`${node.proxy.url}/api/spawn`, { method: 'POST', body: '{"pool":' });
  assert.equal(bad.status, 400);
  // A pool named by something other than a string is refused, not read as the default pool.
  for (const pool of [5, null, ['default'], { name: 'default' }]) {
    const wrongType = await http(`${node.proxy.url}/api/spawn`, { method: 'POST', body: JSON.stringify({ pool }) });
    assert.equal(wrongType.status, 400, JSON.stringify(pool));
    assert.match(JSON.parse(wrongType.body).message, /"pool" must be a string/);
  }
  // A path with a query or fragment would carry them into the middle of the visitor's URL.
  for (const path of ['/a#frag', '/a?b=1', 5]) {
    const odd = await http(`${node.proxy.url}/api/spawn?x=1`, { method: 'POST', body: JSON.stringify({ path }) });
    assert.equal(odd.status, 400, JSON.stringify(path));
    assert.match(JSON.parse(odd.body).message, /"path" must be a/);
  }
  // Dot segments stay inside the visitor's prefix; what a URL cannot hold is encoded.
  const dotted = await http(`${node.proxy.url}/api/spawn?x=1`, { method: 'POST', body: JSON.stringify({ path: '/../%2e%2e/../a b/ü.ipynb' }) });
  assert.equal(dotted.status, 200, dotted.body);
  const { url, id } = JSON.parse(dotted.body) as { url: string; id: string };
  assert.equal(url, `/user/${id}/a%20b/%C3%BC.ipynb?x=1`);
  const unknown = await http(`${node.proxy.url}/api/spawn?pool=nope`, { method: 'POST' });
  assert.equal(unknown.status, 404);
  assert.match(JSON.parse(unknown.body).message, /no pool named "nope"/);
});

test('ids are unique, at least 21 URL-safe characters', async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 6; i++) {
    await waitForWarm(node, 'default', 2);
    const body = JSON.parse((await http(`${node.proxy.url}/api/spawn`, { method: 'POST' })).body) as { id: string };
    assert.match(body.id, /^[A-Za-z0-9_-]{21,}$/);
    ids.add(body.id);
  }
  assert.equal(ids.size, 6);
  const routes = Object.keys(await node.proxy.routes.getRoutes()).filter((p) => p.startsWith('/user/'));
  assert.equal(new Set(routes).size, routes.length);
});

test('GET /api/stats keeps tmpnb fields plus ours; /stats redirects', async () => {
  const s = await stats(node);
  for (const key of ['available', 'capacity', 'version', 'container_image', 'claimed', 'starting', 'room', 'waiting', 'draining', 'pools']) {
    assert.ok(key in s, key);
  }
  assert.equal(s.capacity, 12);
  assert.equal(s.room, 12 - s.claimed);
  assert.equal(s.container_image, 'nbpool/tiny:latest');
  assert.equal(s.pools.default!.size, 2);
  const redirect = await http(`${node.proxy.url}/stats`);
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.location, '/api/stats');
});

test('GET / and unrouted paths show a loading page that continues to /spawn/<path>', async () => {
  const cases: Array<[string, string]> = [
    ['/', '/spawn/'],
    ['/tree', '/spawn/tree'],
    ['/notebooks/x.ipynb', '/spawn/notebooks/x.ipynb'],
    ['/user/AAAAAAAAAAAAAAAAAAAAAAAAstale/notebooks/y.ipynb', '/spawn/notebooks/y.ipynb'],
    ['//evil.example/x', '/spawn/evil.example/x'],
  ];
  for (const [path, spawn] of cases) {
    const reply = await http(`${node.proxy.url}${path}`);
    assert.equal(reply.status, 200, path);
    assert.match(reply.headers['content-type'] as string, /text\/html/);
    assert.ok(reply.body.includes(`url=${spawn}"`), `${path} -> ${spawn}: ${reply.body}`);
  }
  const before = (await stats(node)).claimed;
  const head = await http(`${node.proxy.url}/spawn/tree`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal((await stats(node)).claimed, before, 'HEAD /spawn takes no container');
  const post = await http(`${node.proxy.url}/user/gone/api/contents`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 404, 'a stale API call gets a clear 404, not a page');
});

test('--use-tokens: each container gets a secret, appended to the redirect', async () => {
  const tokens = await startNode('tokens', ['--pool-size', '1', '--use-tokens']);
  try {
    await waitForWarm(tokens, 'default', 1);
    const reply = await http(`${tokens.proxy.url}/spawn/tree`);
    const location = reply.headers.location as string;
    const match = /^\/user\/([^/]+)\/tree\?token=([A-Za-z0-9_-]{20,})$/.exec(location);
    assert.ok(match, location);
    assert.equal((await http(`${tokens.proxy.url}${location}`)).status, 200);
    assert.equal((await http(`${tokens.proxy.url}/user/${match[1]}/tree`)).status, 403, 'the container demands its token');
    const api = JSON.parse((await http(`${tokens.proxy.url}/api/spawn`, { method: 'POST' })).body) as { url: string; token: string };
    assert.ok(api.url.endsWith(`?token=${api.token}`));
  } finally {
    await tokens.stop();
  }
});

test('claim hook runs in the claimed container before the redirect, with the request query', async () => {
  const hooked = await startNode('hook', ['--pool-size', '1', '--claim-hook', 'echo "$NBPOOL_Q_notebook" > /tmp/seed.txt']);
  try {
    await waitForWarm(hooked, 'default', 1);
    const reply = await http(`${hooked.proxy.url}/spawn/tree?notebook=intro.ipynb`);
    assert.equal(reply.status, 302);
    const id = /\/user\/([^/]+)\//.exec(reply.headers.location as string)![1]!;
    const [info] = await docker().listContainers({ filters: { label: [`${LABELS.user}=${id}`] } });
    const exec = await docker().getContainer(info!.Id).exec({ Cmd: ['cat', '/tmp/seed.txt'], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => stream.on('end', r));
    assert.match(Buffer.concat(chunks).toString('latin1'), /intro\.ipynb/);
  } finally {
    await hooked.stop();
  }
});

test('containers carry resource limits, no-new-privileges, a pids limit and labels', async () => {
  const limited = await startNode('limits', ['--pool-size', '1', '--mem-limit', '96m', '--cpu-quota', '50000', '--cpu-shares', '256', '--pids-limit', '64']);
  try {
    await waitForWarm(limited, 'default', 1);
    const [info] = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${limited.instance}`] } });
    const inspect = await docker().getContainer(info!.Id).inspect();
    assert.equal(inspect.HostConfig.Memory, 96 * 1024 ** 2);
    assert.equal(inspect.HostConfig.CpuQuota, 50000);
    assert.equal(inspect.HostConfig.CpuShares, 256);
    assert.equal(inspect.HostConfig.PidsLimit, 64);
    assert.ok(inspect.HostConfig.SecurityOpt?.includes('no-new-privileges'));
    const labels = inspect.Config.Labels;
    assert.equal(labels[LABELS.pool], 'default');
    assert.match(labels[LABELS.user]!, /^[A-Za-z0-9]{24}$/);
    assert.equal(labels[LABELS.route], `/user/${labels[LABELS.user]}`);
    assert.ok(Number(labels[LABELS.created]) > 0);
    const binding = inspect.NetworkSettings.Ports['8888/tcp']?.[0];
    assert.equal(binding?.HostIp, '127.0.0.1', 'published on --container-ip only');
  } finally {
    await limited.stop();
  }
});

test('a returning visitor (cookie) goes back to their own container; others and the culled do not', async () => {
  // A node of its own: the shared one's capacity is spent by the tests above.
  const node = await startNode('returning', ['--pool-size', '2', '--max-containers', '8']);
  try {
    await waitForWarm(node, 'default', 2);
    const first = await http(`${node.proxy.url}/spawn/`);
    assert.equal(first.status, 302);
    const cookie = String(first.headers['set-cookie']);
    assert.match(cookie, /^nbpool_visitor=[A-Za-z0-9]{24}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=None; Secure; Partitioned$/, 'loopback: partitioned cookie usable in a cross-site iframe');
    const pair = cookie.split(';')[0]!;

    const back = await http(`${node.proxy.url}/spawn/notebooks/a.ipynb`, { headers: { Cookie: `other=1; ${pair}` } });
    assert.equal(back.status, 302);
    assert.equal(back.headers.location, `${first.headers.location!.toString().replace(/\/tree$/, '')}/notebooks/a.ipynb`, 'same container, new path');
    assert.equal(back.headers['set-cookie'], undefined);

    const stranger = await http(`${node.proxy.url}/spawn/`);
    assert.notEqual(stranger.headers.location, first.headers.location, 'no cookie: a container of their own');

    await waitForWarm(node, 'default', 2);
    const forged = await http(`${node.proxy.url}/spawn/`, { headers: { Cookie: 'nbpool_visitor=AAAAAAAAAAAAAAAAAAAAAAAA' } });
    assert.notEqual(forged.headers.location, '/user/AAAAAAAAAAAAAAAAAAAAAAAA/tree', 'an unknown id claims a fresh container');
    assert.match(String(forged.headers['set-cookie']), /^nbpool_visitor=/);

    const id = /^nbpool_visitor=(\w+)/.exec(pair)![1]!;
    const removed = await http(`${node.orch.adminUrl}/api/pools/default/empty`, { method: 'POST', headers: { Authorization: `token ${ADMIN_TOKEN}` } });
    assert.equal(removed.status, 200, removed.body);
    await waitFor(async () => !(await node.proxy.routes.getRoutes())[`/user/${id}`], { timeoutMs: 30_000, what: 'the emptied pool' });
    const after = await http(`${node.proxy.url}/spawn/`, { headers: { Cookie: pair } });
    assert.notEqual(after.status, 302, 'the pool is empty and draining: no way back into the removed container');
    assert.doesNotMatch(String(after.headers.location), new RegExp(id), 'a removed container is not handed back');
  } finally {
    await node.stop();
  }
});
