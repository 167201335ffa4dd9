/**
 * Chaos: behind the redirector, one node's Docker engine killed outright (engine, shims and
 * containers SIGKILLed: a machine's container runtime lost) while the node process itself keeps
 * running. Two `nbpool up` on two namespaced engines (test/helpers/hosts.ts). Only that node's
 * visitors are affected: the other node's visitors see no failed request, during or after; new
 * visitors through the redirector go elsewhere from its next poll (the node reports no room
 * without its engine), and a publisher's spawn sent there in the window fails over at once (the
 * node answers 503, the redirector tries the next node).
 */
import assert from 'node:assert/strict';
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
import type { NodeStats } from '../../shared/types.js';
import { requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { startDockerHosts, type DockerHost } from '../helpers/hosts.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startUp, type UpProcess } from '../helpers/up.js';
import { recordFigures, secondsSince } from './figures.js';
import { claimVisitor, fetchSoon, keepBusy, leakedAfterRemovals, served, type Visitor } from './stack.js';

const TOKEN = 'chaos-node-engine-token';
const TINY_COMMAND = 'tiny-notebook --base-url {base_path} --port {port} --ip {ip} --NotebookApp.token={token}';
const run = randomUUID().slice(0, 8);
const stateDir = mkdtempSync(join(tmpdir(), 'nbpool-chaos-engine-kill-'));
let hosts: DockerHost[] = [];
const nodes: UpProcess[] = [];
let redirector: RunningRedirector;

/** `nbpool up` on one namespaced engine, as an operator runs it there. */
function startNode(host: DockerHost, name: string, entryUrl: string): Promise<UpProcess> {
  return startUp(
    ['--entry-url', entryUrl, '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--pool-size', '3', '--max-containers', '30', '--mem-limit', '32m', '--max-per-client', '0', '--claims-per-minute', '0',
      '--port', '0', '--admin-port', '0', '--container-ip', host.address, '--instance', `chaoskill-${run}-${name}`, '--log-level', 'warn'],
    { ...process.env, DOCKER_HOST: host.dockerHost },
  );
}

before(async () => {
  await requireImage(TINY_IMAGE);
  hosts = await startDockerHosts(2, [TINY_IMAGE]);
  const port = await freePort();
  nodes.push(...(await Promise.all([startNode(hosts[0]!, 'a', `http://127.0.0.1:${port}`), startNode(hosts[1]!, 'b', `http://127.0.0.1:${port}`)])));
  const { config } = parseRedirectorConfig(
    ['--ip', '127.0.0.1', '--port', String(port), '--admin-ip', '127.0.0.1', '--admin-port', '0', '--stats-period', '2', '--stats-timeout', '1',
      '--state-store', pathToFileURL(join(stateDir, 'nodes.json')).href, '--node', nodes[0]!.url, '--node', nodes[1]!.url],
    { ADMIN_AUTH_TOKEN: TOKEN },
  );
  redirector = await startRedirector(config, silentLogger());
}, { timeout: 180_000 });

after(async () => {
  await redirector?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(hosts.map((h) => h.stop()));
  rmSync(stateDir, { recursive: true, force: true });
}, { timeout: 180_000 });

async function listed(): Promise<NodeView[]> {
  const res = await fetchSoon(`${redirector.adminUrl}/api/nodes`, { headers: { authorization: `token ${TOKEN}` } });
  return ((await res.json()) as { nodes: NodeView[] }).nodes;
}

/** Visitors the redirector sent to node `id` so far (redirects, and spawns it answered or failed), from its metrics. */
async function sentTo(id: string): Promise<number> {
  const text = await (await fetchSoon(`${redirector.adminUrl}/metrics`)).text();
  const lines = text.split('\n').filter((l) => /^nbpool_redirector_(visitors|spawn_failures)_total\{/.test(l) && l.includes(`node="${id}"`));
  return lines.reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

const onNode = (url: string) => nodes.findIndex((n) => url.startsWith(n.url + '/'));

/**
 * A new visitor as a browser without JavaScript goes: from `start` (the public link) through every
 * redirect and refresh (a node's loading page, its "another server" page, its waiting line) to a
 * container. Resolves to the node whose container they got, every node they passed, and whether it works.
 */
async function pageVisit(start = `${redirector.url}/tree`, cookie?: string): Promise<{ node: number; passed: number[]; ok: boolean; how: string }> {
  const passed: number[] = [];
  let url = start;
  const done = (node: number, ok: boolean, how: string) => ({ node, passed, ok, how });
  try {
    for (let hop = 0; hop < 12; hop++) {
      const node = onNode(url);
      if (node !== -1 && passed.at(-1) !== node) passed.push(node);
      const res = await fetchSoon(url, cookie ? { headers: { cookie } } : {});
      if (res.status === 302) {
        url = new URL(res.headers.get('location')!, url).href;
        if (/\/user\//.test(url)) {
          const ok = await served({ url });
          return done(onNode(url), ok, ok ? `served after ${hop + 1} steps` : 'container did not answer');
        }
        continue;
      }
      const html = await res.text();
      if (res.status !== 200) return done(node, false, `${url} answered ${res.status}`);
      const ticket = /\/api\/wait\/([^"]+)"/.exec(html)?.[1];
      if (ticket) {
        const base = nodes[node]!.url;
        const location = await waitFor(async () => ((await (await fetchSoon(`${base}/api/wait/${ticket}`)).json()) as { url?: string }).url, { timeoutMs: 15_000, what: 'a container' })
          .catch(() => undefined);
        if (!location) return done(node, false, 'waited in line for 15 s');
        url = new URL(location, base + '/').href;
        const ok = await served({ url });
        return done(node, ok, ok ? 'served after waiting in line' : 'container did not answer');
      }
      const refresh = /http-equiv="refresh" content="(\d+);url=([^"]+)"/.exec(html);
      if (!refresh) return done(node, false, `${url}: a page that leads nowhere: ${html.slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, Number(refresh[1]) * 1000));
      url = new URL(refresh[2]!.replace(/&amp;/g, '&'), url).href;
    }
    return done(-1, false, 'more than 12 steps');
  } catch (err) {
    return done(-1, false, (err as Error).message);
  }
}

/** A publisher's script: POST /api/spawn on the link, then the container it names. */
async function apiVisit(): Promise<{ node: number; passed: number[]; ok: boolean; how: string }> {
  try {
    const visitor = await claimVisitor(redirector.url);
    const ok = await served(visitor);
    return { node: onNode(visitor.url), passed: [onNode(visitor.url)], ok, how: ok ? 'served' : 'container did not answer' };
  } catch (err) {
    return { node: -1, passed: [], ok: false, how: (err as Error).message };
  }
}

test("one node's engine killed behind the redirector: only its visitors affected, new visitors go elsewhere from the next request", { timeout: 240_000 }, async () => {
  const [a, b] = nodes as [UpProcess, UpProcess];
  await waitFor(async () => (await listed()).every((n) => n.up && n.available >= 3) || undefined, { timeoutMs: 90_000, intervalMs: 200, what: 'both nodes up with warm containers' });
  const visitors: Visitor[] = [];
  for (let i = 0; i < 6; i++) visitors.push(await claimVisitor(redirector.url));
  const onA = visitors.filter((v) => onNode(v.url) === 0);
  const onB = visitors.filter((v) => onNode(v.url) === 1);
  assert.ok(onA.length >= 2 && onB.length >= 2, `visitors on both nodes: ${onA.length} on a, ${onB.length} on b`);
  for (const v of visitors) assert.ok(await served(v), `${v.url} served before the fault`);
  await waitFor(async () => (await listed()).every((n) => n.available >= 3) || undefined, { timeoutMs: 30_000, intervalMs: 200, what: 'pools refilled' });

  const aId = (await listed()).find((n) => n.url === a.url)!.id;
  const sentToABefore = await sentTo(aId);
  const stopBusy = keepBusy(onB);
  // Timed from the start of the kill: killing every process of the namespace takes a moment itself.
  const killedAt = Date.now();
  const killed = hosts[0]!.kill().then(() => secondsSince(killedAt));
  // The redirector stops choosing a once a poll shows it has no room.
  const redirectorLeft = waitFor(async () => (await listed()).find((n) => n.url === a.url)!.remaining === 0 || undefined, { timeoutMs: 20_000, intervalMs: 50, what: 'the redirector to stop choosing a' })
    .then(() => secondsSince(killedAt), () => undefined);

  // New visitors, page and API by turns: four at once just after the engine died (before the
  // redirector's next poll, so some are sent to a), then four one by one.
  const newcomers: Array<{ node: number; passed: number[]; ok: boolean; how: string; at: number; kind: string }> = [];
  const newcomer = async (i: number) => {
    const at = secondsSince(killedAt);
    const kind = i % 2 ? 'api' : 'page';
    newcomers.push({ ...(await (kind === 'api' ? apiVisit() : pageVisit())), at, kind });
  };
  await new Promise((r) => setTimeout(r, 300));
  await Promise.all([0, 1, 2, 3].map(newcomer));
  for (let i = 4; i < 8; i++) await newcomer(i);
  const killTook = await killed;
  const stoppedSendingAfter = await redirectorLeft;
  const sentToA = (await sentTo(aId)) - sentToABefore;
  // A visitor the redirector sent to a just before its poll (its cookie names a as their node):
  // a, without its engine, sends them back to the link, which by then chooses b.
  const windowVisitor = await pageVisit(`${a.url}/tree`, `nbpool_node=${aId}`);
  // After: b's visitors keep working for a while longer.
  await new Promise((r) => setTimeout(r, 2000));
  const failuresOnB = await stopBusy();

  const nodeAlive = a.child.exitCode === null && a.child.signalCode === null;
  const statsA = (await (await fetchSoon(`${a.url}/api/stats`)).json()) as NodeStats;
  const leak = await leakedAfterRemovals(`chaoskill-${run}-b`, async () => (await (await fetchSoon(`${b.url}/api/stats`)).json()) as NodeStats, hosts[1]!.docker);
  const failedNew = newcomers.filter((n) => !n.ok);
  const lost = failuresOnB.filter((f) => f > 0).length;
  await recordFigures('node_engine_killed', {
    visitors_lost: lost,
    containers_leaked: leak,
    seconds_to_recover: stoppedSendingAfter ?? -1,
    failed_requests_other_node: failuresOnB.reduce((x, y) => x + y, 0),
    new_visitors: newcomers.length,
    new_visitors_sent_to_dead_node: sentToA,
    new_visitors_failed: failedNew.length,
    dead_node_visitors: onA.length,
    seconds_to_kill: killTook,
    visitor_sent_in_window_served_elsewhere: windowVisitor.ok && windowVisitor.node === 1,
  });
  assert.ok(nodeAlive, 'the node process outlives its engine (it ran in the root namespace)');
  assert.deepEqual(failuresOnB, onB.map(() => 0), "the other node's visitors: no failed request during or after");
  assert.deepEqual(failedNew, [], `every new visitor got a working container: ${JSON.stringify(newcomers)}`);
  assert.ok(stoppedSendingAfter !== undefined, 'the redirector stopped choosing the dead node');
  assert.ok(newcomers.filter((n) => n.at > stoppedSendingAfter).every((n) => n.node === 1), `after that, every new visitor went to b: ${JSON.stringify(newcomers)}`);
  assert.equal(windowVisitor.passed[0], 0, 'the window visitor started at a');
  assert.ok(windowVisitor.ok && windowVisitor.node === 1, `a visitor sent to a in the window gets a container on b: ${JSON.stringify(windowVisitor)}`);
  assert.equal(statsA.available, 0, 'the dead node offers nothing');
  assert.equal(statsA.room, 0, 'and no room');
  assert.equal(leak, 0);
});
