// `nbpool redirector` as an operator runs it: flags, the listening line, SIGTERM, bad flags.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { waitFor } from '../helpers/net.js';
import { startStandIn } from './standin.js';

const cli = new URL('../../cli/nbpool.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'nbpool-redir-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function nbpool(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'redirector', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

test('nbpool redirector serves the link, keeps its nodes in the state store and exits cleanly on SIGTERM', async () => {
  const node = await startStandIn('a', { available: 2, capacity: 10, room: 10 });
  const store = join(dir, 'nodes.json');
  // No admin token given: one is generated, and the status page link carries it.
  const run = nbpool(['--ip', '127.0.0.1', '--port', '0', '--admin-port', '0', '--node', node.url, '--stats-period', '0.2', '--state-store', pathToFileURL(store).href], { ADMIN_AUTH_TOKEN: '' });
  try {
    const line = await waitFor(() => run.output().split('\n').find((l) => l.includes('redirector listening')), { timeoutMs: 30_000, what: `the listening line (${run.output()})` });
    const { url } = JSON.parse(line) as { url: string };
    await waitFor(async () => ((await (await fetch(`${url}/api/stats`)).json()) as { nodes_up: number }).nodes_up === 1, { what: 'node up' });
    const res = await fetch(`${url}/tree?x=1`, { redirect: 'manual' });
    assert.equal(res.headers.get('location'), `${node.url}/tree?x=1`);
    const [, adminUrl, token] = await waitFor(() => /status page (http:\/\/\S+)\/#token=([\w-]{22,})/.exec(run.output()) ?? undefined, { what: 'the status page link' });
    assert.equal((await fetch(`${adminUrl}/api/nodes`)).status, 403, 'the admin API is never open, loopback included');
    assert.equal((await fetch(`${adminUrl}/api/nodes/x/drain`, { method: 'POST' })).status, 403);
    assert.equal((await fetch(`${adminUrl}/api/nodes`, { headers: { Authorization: `token ${token}` } })).status, 200);
    assert.deepEqual(Object.values(JSON.parse(readFileSync(store, 'utf8')) as Record<string, { url: string }>).map((r) => r.url), [node.url]);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0);
  } finally {
    run.child.kill('SIGKILL');
    await node.close();
  }
});

test('nbpool redirector: a bad flag is one clear line and exit code 2', async () => {
  const run = nbpool(['--node', 'ftp://x.test']);
  assert.equal(await run.exited, 2);
  assert.equal(run.output().trim(), 'nbpool redirector: node URL "ftp://x.test" must use http or https');
});
