/**
 * Per-client caps hold behind the redirector, end to end: `nbpool up` on the real engine (tiny
 * image) and the redirector in front of it. The redirector names the visitor in X-Forwarded-For on
 * the POST /api/spawn it forwards, so the node counts visitors and not the redirector; a node's
 * "this client has had its share" 429 reaches the visitor as it is, and does not make the redirector
 * think the node is full. Visitors are named by X-Forwarded-For from loopback, a trusted front.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { parseRedirectorConfig } from '../../redirector/config.js';
import { startRedirector, type RunningRedirector } from '../../redirector/server.js';
import { silentLogger } from '../../shared/log.js';
import type { NodeStats } from '../../shared/types.js';
import { removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startUp, type UpProcess } from '../helpers/up.js';
import { TINY_COMMAND } from '../orchestrator/harness.js';

const instance = `redir-share-${randomBytes(4).toString('hex')}`;
const CAP = 3;
let node: UpProcess;
const redirectors: RunningRedirector[] = [];

before(async () => {
  await requireImage(TINY_IMAGE);
  node = await startUp([
    '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--pool-size', '15', '--max-containers', '24', '--mem-limit', '32m',
    '--max-per-client', String(CAP), '--claims-per-minute', '0', '--spawn-wait', '0',
    '--port', String(await freePort()), '--api-port', String(await freePort()), '--admin-port', '0', '--instance', instance, '--log-level', 'warn',
  ]);
  await waitFor(async () => ((await (await fetch(`${node.url}/api/stats`)).json()) as NodeStats).available >= 15 || undefined, {
    timeoutMs: 120_000,
    intervalMs: 250,
    what: 'fifteen warm containers',
  });
}, { timeout: 180_000 });

after(async () => {
  for (const r of redirectors) await r.close();
  await node?.stop();
  await removeInstance(instance);
}, { timeout: 60_000 });

/** A redirector in front of the node; a long poll period, so what it counts between polls shows. */
async function redirector(args: string[] = []): Promise<RunningRedirector> {
  const { config } = parseRedirectorConfig(
    ['--ip', '127.0.0.1', '--port', '0', '--admin-ip', '127.0.0.1', '--admin-port', '0', '--stats-period', '60', '--state-store', 'memory:', '--node', node.url, ...args],
    { ADMIN_AUTH_TOKEN: 'test-admin-token' },
  );
  const running = await startRedirector(config, silentLogger());
  redirectors.push(running);
  await waitFor(async () => ((await (await fetch(`${running.url}/api/stats`)).json()) as { nodes_up: number }).nodes_up === 1 || undefined, {
    timeoutMs: 10_000,
    what: 'the redirector to see the node',
  });
  return running;
}

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { url?: string; id?: string; message?: string; reason?: string };
}

async function spawn(base: string, client: string): Promise<Answer> {
  const res = await fetch(`${base}/api/spawn`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': client } });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Answer['body'] };
}

const statuses = (answers: Answer[]) => answers.map((a) => a.status).join(' ');

test('a client named by an untrusted peer is that peer: X-Forwarded-For from outside --trusted-proxy is not passed on', { timeout: 60_000 }, async () => {
  const front = await redirector(['--trusted-proxy', '10.0.0.0/8']);
  // Four "different" clients, all really 127.0.0.1: one client to the node, cap and all.
  const answers = await Promise.all(['198.51.100.71', '198.51.100.72', '198.51.100.73', '198.51.100.74'].map((c) => spawn(front.url, c)));
  assert.equal(answers.filter((a) => a.status === 200).length, CAP, statuses(answers));
  assert.deepEqual(answers.filter((a) => a.status !== 200).map((a) => [a.status, a.body.reason]), [[429, 'client_cap']]);
});

test('behind the redirector, one client hammering /api/spawn gets its cap and no more, while the others land', { timeout: 60_000 }, async () => {
  const front = await redirector();
  // The hammering client asks 18 times, six at once (within the room the redirector counts).
  const hammer: Answer[] = [];
  for (let round = 0; round < 3; round++) hammer.push(...(await Promise.all(Array.from({ length: 6 }, () => spawn(front.url, '198.51.100.1')))));
  assert.equal(hammer.filter((a) => a.status === 200).length, CAP, `the hammering client: ${statuses(hammer)}`);
  for (const refused of hammer.filter((a) => a.status !== 200)) {
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.retryAfter) > 0, 'the node\'s Retry-After is passed on');
    assert.equal(refused.body.reason, 'client_cap');
    assert.match(refused.body.message ?? '', /already holds 3 containers/, "the node's own answer, not \"every node is full\"");
  }
  // Fifteen refusals took no room: the redirector still sends the next nine visitors (before its
  // next poll) to the node, and each gets a container.
  const others = await Promise.all(Array.from({ length: 9 }, (_, i) => spawn(front.url, `203.0.113.${i + 1}`)));
  assert.equal(statuses(others), Array<number>(9).fill(200).join(' '), 'every other client landed');
  const landed = [...hammer, ...others].filter((a) => a.status === 200);
  assert.ok(landed.every((a) => a.body.url?.startsWith(`${node.url}/user/`)), 'URLs on the node');
  assert.equal(new Set(landed.map((a) => a.body.id)).size, 12, 'twelve visitors, twelve containers');
});
