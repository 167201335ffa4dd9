/**
 * The redirector in front of real nodes on real, separate Docker hosts: two extra engines in
 * network namespaces (test/helpers/hosts.ts) plus this machine's engine, a `nbpool up` per host.
 * Shows spread across nodes, a node added and used, a node killed mid-run (visitors go elsewhere
 * at once), and a node drained and removed while its visitors keep working.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { parseRedirectorConfig } from '../../redirector/config.js';
import type { NodeView } from '../../redirector/nodes.js';
import { startRedirector, type RunningRedirector } from '../../redirector/server.js';
import { silentLogger } from '../../shared/log.js';
import { removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { startDockerHosts, type DockerHost } from '../helpers/hosts.js';
import { waitFor } from '../helpers/net.js';

const TOKEN = 'hosts-test-token';
const instance = `redir-${randomUUID().slice(0, 8)}`;
const cli = new URL('../../cli/nbpool.ts', import.meta.url).pathname;
/** Every request of this test is bounded, so a hang fails with a message instead of stalling. */
const fetch = (url: string, init: RequestInit = {}) => globalThis.fetch(url, { signal: AbortSignal.timeout(20_000), ...init });
const TINY_COMMAND = 'tiny-notebook --base-url {base_path} --port {port} --ip {ip} --NotebookApp.token={token}';

interface Node {
  name: string;
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

let hosts: DockerHost[] = [];
const nodes: Record<string, Node> = {};
let redirector: RunningRedirector;
const stateDir = mkdtempSync(join(tmpdir(), 'nbpool-redir-hosts-'));

/** `nbpool up` for one Docker host, as an operator runs it. */
async function startNode(name: string, dockerHost: string | undefined, containerIp: string): Promise<Node> {
  const env = { ...process.env };
  if (dockerHost) env.DOCKER_HOST = dockerHost;
  else delete env.DOCKER_HOST;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'up', '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--pool-size', '3', '--max-containers', '40', '--mem-limit', '64m', '--max-per-client', '0', '--claims-per-minute', '0',
      '--port', '0', '--admin-port', '0', '--container-ip', containerIp, '--instance', instance, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'], env },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const url = await waitFor(() => /visitors open (http:\/\/\S+?)\/? /.exec(stderr)?.[1], { timeoutMs: 60_000, what: `node ${name} to start (stderr: ${stderr})` });
  const node = { name, url, child, stderr: () => stderr };
  nodes[name] = node;
  return node;
}

interface Visitor {
  node: string;
  /** The visitor's own notebook, absolute. */
  url: string;
}

function nodeNamed(url: string): string {
  const node = Object.values(nodes).find((n) => url.startsWith(n.url + '/'));
  assert.ok(node, `${url} is on one of our nodes`);
  return node.name;
}

/** A visitor through the public link, as a browser without JavaScript goes: 302, loading page, /spawn, container. */
async function visit(path = '/notebooks/x.ipynb?kernel=python3'): Promise<Visitor> {
  const started = Date.now();
  try {
    return await visitOnce(path);
  } finally {
    if (process.env.NBPOOL_TEST_TRACE) process.stderr.write(`visit ${path} took ${Date.now() - started} ms\n`);
  }
}

async function visitOnce(path: string): Promise<Visitor> {
  const first = await fetch(redirector.url + path, { redirect: 'manual' });
  assert.equal(first.status, 302, `the link redirects (${first.status})`);
  const atNode = first.headers.get('location')!;
  const name = nodeNamed(atNode);
  const base = nodes[name]!.url;
  assert.equal(atNode, base + path, 'path and query kept');
  const loading = await fetch(atNode, { redirect: 'manual' });
  const html = await loading.text();
  const next = /content="0;url=([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, '&');
  assert.ok(next, `node ${name} shows its loading page (${loading.status}): ${html.slice(0, 200)}`);
  const spawned = await fetch(base + next, { redirect: 'manual' });
  let location = spawned.headers.get('location');
  if (spawned.status === 200) {
    // All warm containers are taken for a moment: wait in the node's line as its page does.
    const ticket = /\/api\/wait\/([^"]+)"/.exec(await spawned.text())?.[1];
    assert.ok(ticket, `node ${name} shows its waiting page`);
    location = await waitFor(async () => {
      const body = (await (await fetch(`${base}/api/wait/${ticket}`)).json()) as { url?: string };
      return body.url;
    }, { timeoutMs: 60_000, what: `a container on node ${name}` });
  } else {
    assert.equal(spawned.status, 302, `node ${name} hands out a container`);
  }
  const url = new URL(location!, base + '/').href;
  await assertWorks({ node: name, url });
  return { node: name, url };
}

/** A publisher's script: POST /api/spawn on the link, then the notebook it names. */
async function apiVisit(): Promise<Visitor> {
  const res = await fetch(`${redirector.url}/api/spawn`, { method: 'POST' });
  assert.equal(res.status, 200, `spawn through the link: ${await res.clone().text()}`);
  const { url } = (await res.json()) as { url: string };
  const visitor = { node: nodeNamed(url), url };
  await assertWorks(visitor);
  return visitor;
}

async function assertWorks(visitor: Visitor): Promise<void> {
  const res = await fetch(visitor.url);
  assert.equal(res.status, 200, `${visitor.url} answers`);
  assert.match(await res.text(), /<title>tiny<\/title>/);
}

function count(visitors: Visitor[]): Record<string, number> {
  const got: Record<string, number> = {};
  for (const v of visitors) got[v.node] = (got[v.node] ?? 0) + 1;
  return got;
}


async function listed(): Promise<NodeView[]> {
  const res = await fetch(`${redirector.adminUrl}/api/nodes`, { headers: { authorization: `token ${TOKEN}` } });
  return ((await res.json()) as { nodes: NodeView[] }).nodes;
}

function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(redirector.adminUrl + path, {
    method,
    headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function waitForNode(url: string, what: string, check: (n: NodeView) => boolean): Promise<NodeView> {
  return waitFor(async () => (await listed()).find((n) => n.url === url && check(n)), { timeoutMs: 90_000, intervalMs: 200, what });
}

before(async () => {
  await requireImage(TINY_IMAGE);
  hosts = await startDockerHosts(2, [TINY_IMAGE]);
  await Promise.all([startNode('a', hosts[0]!.dockerHost, hosts[0]!.address), startNode('b', hosts[1]!.dockerHost, hosts[1]!.address)]);
  const { config } = parseRedirectorConfig(
    ['--ip', '127.0.0.1', '--port', '0', '--admin-ip', '127.0.0.1', '--admin-port', '0', '--stats-period', '0.2', '--stats-timeout', '1',
      '--state-store', pathToFileURL(join(stateDir, 'nodes.json')).href, '--node', nodes.a!.url, '--node', nodes.b!.url],
    { ADMIN_AUTH_TOKEN: TOKEN },
  );
  redirector = await startRedirector(config, silentLogger());
}, { timeout: 180_000 });

after(async () => {
  await redirector?.close();
  await Promise.all(
    Object.values(nodes).map((n) => {
      if (n.child.exitCode !== null || n.child.signalCode !== null) return undefined;
      const exited = new Promise((resolve) => n.child.once('exit', resolve));
      n.child.kill('SIGTERM');
      return exited;
    }),
  );
  await Promise.all(hosts.map((h) => h.stop()));
  await removeInstance(instance);
  rmSync(stateDir, { recursive: true, force: true });
}, { timeout: 180_000 });

const visitors: Visitor[] = [];

test('visitors spread across nodes on two Docker hosts, each in a container on its node\'s engine', { timeout: 180_000 }, async () => {
  for (const node of [nodes.a!, nodes.b!]) await waitForNode(node.url, `node ${node.name} up with warm containers`, (n) => n.up && n.available >= 3);
  for (let i = 0; i < 6; i++) visitors.push(await visit());
  for (let i = 0; i < 2; i++) visitors.push(await apiVisit());
  const got = count(visitors);
  assert.ok((got.a ?? 0) >= 2 && (got.b ?? 0) >= 2, JSON.stringify(got));
  // Each container really runs on its own host's engine.
  for (const [i, name] of ['a', 'b'].entries()) {
    const running = await hosts[i]!.docker.listContainers({ filters: { label: [`nbpool.instance=${instance}`] } });
    assert.ok(running.length >= (got[name] ?? 0), `${name}'s engine runs its visitors' containers`);
  }
});

test('a node added through the admin API is used', { timeout: 180_000 }, async () => {
  const c = await startNode('c', undefined, '127.0.0.1');
  assert.equal((await admin('POST', '/api/nodes', { url: c.url, id: 'host-c' })).status, 201);
  await waitForNode(c.url, 'node c up with warm containers', (n) => n.up && n.available >= 3);
  const more: Visitor[] = [];
  for (let i = 0; i < 6; i++) more.push(await visit('/tree'));
  visitors.push(...more);
  assert.ok((count(more).c ?? 0) >= 1, JSON.stringify(count(more)));
});

test('a node killed mid-run: publishers\' spawns never fail, and visitors go elsewhere at once', { timeout: 180_000 }, async () => {
  const b = nodes.b!;
  const spawned: Visitor[] = [];
  let killed = false;
  const publisher = (async () => {
    for (let i = 0; i < 12; i++) {
      if (i === 4) {
        b.child.kill('SIGKILL');
        killed = true;
      }
      spawned.push(await apiVisit());
    }
  })();
  await publisher;
  assert.ok(killed);
  assert.equal(spawned.length, 12, 'every spawn succeeded');
  assert.ok(spawned.slice(4).every((v) => v.node !== 'b'), JSON.stringify(count(spawned.slice(4))));
  const down = await waitForNode(b.url, 'b down', (n) => !n.up);
  assert.equal(down.up, false);
  const after: Visitor[] = [];
  for (let i = 0; i < 6; i++) after.push(await visit());
  assert.equal(count(after).b, undefined, JSON.stringify(count(after)));
  visitors.push(...spawned, ...after);
});

test("a node drained and removed while its visitors keep working", { timeout: 180_000 }, async () => {
  const a = nodes.a!;
  const onA = visitors.filter((v) => v.node === 'a');
  assert.ok(onA.length > 0);
  const id = (await listed()).find((n) => n.url === a.url)!.id;
  const drained = (await (await admin('POST', `/api/nodes/${id}/drain`)).json()) as NodeView;
  assert.equal(drained.draining, true);
  // Not empty while its visitors are there (once a poll shows them all).
  const shown = await waitForNode(a.url, 'a draining with its visitors', (n) => n.draining && (n.claimed ?? 0) >= onA.length);
  assert.equal(shown.drained, false);
  const more: Visitor[] = [];
  for (let i = 0; i < 6; i++) more.push(await visit());
  assert.deepEqual(Object.keys(count(more)), ['c'], JSON.stringify(count(more)));
  for (const v of onA) await assertWorks(v);

  assert.equal((await admin('DELETE', `/api/nodes/${id}`)).status, 204);
  assert.ok(!(await listed()).some((n) => n.url === a.url));
  for (const v of onA) await assertWorks(v);
  for (const v of visitors.filter((x) => x.node === 'c')) await assertWorks(v);
});
