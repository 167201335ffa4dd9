// `nbpool up` as a user runs it: one process, real Docker, a visitor claims a container through
// the proxy, SIGTERM leaves the visitor's container for the next start to adopt.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { removeInstance, requireImage, TINY_IMAGE } from './helpers/docker.js';
import { waitFor } from './helpers/net.js';

const instance = `uptest-${randomUUID().slice(0, 8)}`;
const cli = new URL('../cli/nbpool.ts', import.meta.url).pathname;

interface Up {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

async function up(...extra: string[]): Promise<Up> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'up', '--image', TINY_IMAGE, '--pool-size', '2', '--port', '0', '--admin-port', '0', '--instance', instance, '--log-level', 'warn', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const url = await waitFor(() => /visitors open (http:\/\/\S+?)\/? /.exec(stderr)?.[1], { timeoutMs: 30_000, what: `nbpool up to start (stderr: ${stderr})` });
  return { child, url, stderr: () => stderr };
}

async function stop(running: Up): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => running.child.once('exit', (code) => resolve(code)));
  running.child.kill('SIGTERM');
  return exited;
}

before(() => requireImage(TINY_IMAGE));
after(() => removeInstance(instance));

test('nbpool up: a visitor claims a warm container through the proxy; a restart adopts it', async () => {
  // A proxy flag (--pid-file) reaches the proxy part of up.
  const pidFile = join(mkdtempSync(join(tmpdir(), 'nbpool-up-')), 'up.pid');
  const first = await up('--pid-file', pidFile);
  assert.equal(readFileSync(pidFile, 'utf8').trim(), String(first.child.pid));
  await waitFor(async () => ((await (await fetch(`${first.url}/api/stats`)).json()) as { available: number }).available >= 1, {
    timeoutMs: 60_000,
    what: 'a warm container',
  });
  await waitFor(() => /nbpool up: .* default \d\/2 warm/.test(first.stderr()), { what: 'pool filling progress on the terminal' });

  // No token given: both APIs that change state refuse a request without one, loopback included;
  // the status page link carries the admin token, the route API's is in the file named.
  const [, adminUrl, adminToken] = /status page (http:\/\/\S+)\/#token=([\w-]{22,})/.exec(first.stderr())!;
  const [, routeApi, tokenFile] = /route API (http:\/\/\S+) \(.*the token is in (\S+)\)/.exec(first.stderr())!;
  const routeToken = readFileSync(tokenFile!, 'utf8').trim();
  assert.equal((await fetch(`${adminUrl}/api/pools/default/drain`, { method: 'POST' })).status, 403);
  assert.equal((await fetch(`${adminUrl}/api/pools`, { headers: { Authorization: `token ${adminToken}` } })).status, 200);
  assert.equal((await fetch(`${routeApi}/api/routes/x`, { method: 'POST', body: '{"target":"http://127.0.0.1:9"}' })).status, 403);
  assert.equal((await fetch(`${routeApi}/api/routes`, { headers: { Authorization: `token ${routeToken}` } })).status, 200);

  const spawned = await fetch(`${first.url}/spawn/`, { redirect: 'manual' });
  assert.equal(spawned.status, 302);
  const location = spawned.headers.get('location')!;
  assert.match(location, /^\/user\/[A-Za-z0-9_-]{21,}\/tree$/);
  const page = await fetch(first.url + location);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>tiny<\/title>/);

  assert.equal(await stop(first), 0, 'SIGTERM exits cleanly');
  assert.equal(existsSync(pidFile), false, 'the PID file is removed on exit');

  const second = await up();
  try {
    const again = await waitFor(async () => {
      const res = await fetch(second.url + location);
      return res.status === 200 ? res.text() : undefined;
    }, { timeoutMs: 30_000, what: 'the adopted visitor route' });
    assert.match(again, /<title>tiny<\/title>/, 'the visitor keeps their container across the restart');
  } finally {
    assert.equal(await stop(second), 0);
  }
});

test('nbpool up: bad flags are one clear line and exit code 2', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'up', '--pool-size', 'many'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 2);
  assert.match(stderr.trim(), /^nbpool up: --pool-size: must be a whole number or auto$/);
});
