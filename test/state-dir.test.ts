/**
 * --state-dir (NBPOOL_STATE_DIR): where the programs keep what must outlive a run. A proxy and an
 * orchestrator given the same directory find each other's token there, the journal and the
 * tokens land in it, and nothing is written under the working directory.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseRedirectorConfig } from '../redirector/config.js';
import { removeInstance, requireImage, TINY_IMAGE } from './helpers/docker.js';
import { freePort, waitFor } from './helpers/net.js';
import { TINY_COMMAND, uniqueInstance } from './orchestrator/harness.js';

const cli = fileURLToPath(new URL('../cli/nbpool.ts', import.meta.url));
// Resolved here: the programs run in other working directories, where `--import tsx` would not be found.
const tsx = import.meta.resolve('tsx');

/** The environment without anything that would choose the tokens or the state directory for the programs. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['NBPOOL_STATE_DIR', 'CONFIGPROXY_AUTH_TOKEN', 'ADMIN_AUTH_TOKEN', 'CONFIGPROXY_ENDPOINT']) delete env[name];
  return { ...env, ...extra };
}

function nbpool(args: string[], cwd: string, env: NodeJS.ProcessEnv): { child: ChildProcess; stderr(): string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', tsx, cli, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  return { child, stderr: () => stderr, exited: new Promise((resolve) => child.once('exit', resolve)) };
}

test('a proxy and an orchestrator with one --state-dir share its tokens and keep their state there, none in the working directory', async () => {
  await requireImage(TINY_IMAGE);
  const work = mkdtempSync(join(tmpdir(), 'nbpool-state-dir-'));
  const state = join(work, 'var', 'nbpool');
  const instance = uniqueInstance('statedir');
  const [port, apiPort] = [await freePort(), await freePort()];
  // Relative to the working directory, as an operator would write it.
  const proxy = nbpool(['proxy', '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--state-dir', 'var/nbpool', '--log-level', 'warn'], work, cleanEnv());
  let orchestrator: ReturnType<typeof nbpool> | undefined;
  try {
    await waitFor(() => /route API/.test(proxy.stderr()) || undefined, { what: 'the proxy to start', timeoutMs: 20_000 });
    const routeToken = join(state, 'route-api-token');
    assert.match(proxy.stderr(), new RegExp(`the token is in var/nbpool/route-api-token`));
    assert.ok(readFileSync(routeToken, 'utf8').trim().length >= 22);

    // Its working directory is elsewhere: only the state directory links the two.
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere);
    orchestrator = nbpool(
      ['orchestrator', '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--instance', instance, '--ip', '127.0.0.1', '--port', '0', '--admin-ip', '127.0.0.1', '--admin-port', '0', '--pool-size', '0', '--log-level', 'warn'],
      elsewhere,
      cleanEnv({ NBPOOL_STATE_DIR: state, CONFIGPROXY_ENDPOINT: `http://127.0.0.1:${apiPort}` }),
    );
    const started = orchestrator;
    // It reaches the status page line only once the proxy took the token it read from the directory.
    await Promise.race([
      waitFor(() => /status page/.test(started.stderr()) || undefined, { what: 'the orchestrator to start', timeoutMs: 30_000 }),
      started.exited.then((code) => Promise.reject(new Error(`orchestrator exited ${code}: ${started.stderr()}`))),
    ]);
    assert.deepEqual(readdirSync(state).sort(), ['admin-token', `claims-${instance}.log`, 'route-api-token']);
    assert.deepEqual(readdirSync(elsewhere), []);
    assert.ok(!existsSync(join(work, '.nbpool')));
  } finally {
    orchestrator?.child.kill('SIGTERM');
    proxy.child.kill('SIGTERM');
    await Promise.all([orchestrator?.exited, proxy.exited]);
    await removeInstance(instance);
    rmSync(work, { recursive: true, force: true });
  }
});

test("the redirector's node list defaults to the state directory, and an empty --state-dir is refused", () => {
  const env = cleanEnv();
  assert.equal(parseRedirectorConfig([], env, '/srv/site').config.stateStore, pathToFileURL('/srv/site/.nbpool/redirector-nodes.json').href);
  assert.equal(parseRedirectorConfig([], { ...env, NBPOOL_STATE_DIR: 'state' }, '/srv/site').config.stateStore, pathToFileURL('/srv/site/state/redirector-nodes.json').href);
  assert.equal(parseRedirectorConfig(['--state-dir', '/var/lib/nbpool'], env, '/srv/site').config.stateStore, pathToFileURL('/var/lib/nbpool/redirector-nodes.json').href);
  // An explicit store wins over the directory.
  assert.equal(parseRedirectorConfig(['--state-dir', '/var/lib/nbpool', '--state-store', 'memory:'], env, '/srv/site').config.stateStore, 'memory:');
  assert.throws(() => parseRedirectorConfig(['--state-dir', ''], env, '/srv/site'), /--state-dir.*must name a directory/);
});
