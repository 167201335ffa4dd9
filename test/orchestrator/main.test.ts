/** `nbpool orchestrator` as a process: --help, bad flags, REST-API proxy client, SIGTERM leaves containers. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LABELS } from '../../orchestrator/backend.js';
import { docker, removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { http, startProxy, TINY_COMMAND, uniqueInstance } from './harness.js';

const cli = fileURLToPath(new URL('../../cli/nbpool.ts', import.meta.url));
const nodeArgs = ['--import', 'tsx', cli, 'orchestrator'];

test('--help starts with the usage line and says how --max-containers is computed', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [...nodeArgs, '--help']);
  assert.match(stdout, /^Usage: nbpool orchestrator/);
  for (const flag of ['--image', '--command', '--pool-size', '--cull-timeout', '--cull-period', '--cull-max', '--mem-limit', '--cpu-quota', '--cpu-shares', '--container-ip', '--container-port', '--container-user', '--docker-network', '--host-directories', '--redirect-uri', '--ip', '--port', '--admin-ip', '--admin-port', '--max-containers', '--spawn-wait', '--instance']) {
    assert.ok(stdout.includes(`  ${flag} `), flag);
  }
  assert.match(stdout, /reserve = max\(1 GiB, 10% of memory\)/);
});

test('bad flags are one clear line and exit code 2', async () => {
  for (const [args, message] of [
    [['--pool-size', '-1'], /--pool-size: must be a whole number or auto/],
    [['--mem-limit', 'lots'], /--mem-limit must be a size/],
    [['--instance', 'a b'], /--instance: letters/],
  ] as const) {
    const result = await promisify(execFile)(process.execPath, [...nodeArgs, ...args]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, message);
  }
});

test('runs against the proxy REST API (CONFIGPROXY_*), and SIGTERM leaves containers for the next start', async () => {
  await requireImage(TINY_IMAGE);
  const proxy = await startProxy();
  const instance = uniqueInstance('main');
  const child = spawn(process.execPath, [...nodeArgs, '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--instance', instance, '--port', '0', '--admin-port', '0', '--pool-size', '1', '--mem-limit', '64m'], {
    env: { ...process.env, CONFIGPROXY_ENDPOINT: proxy.apiUrl, CONFIGPROXY_AUTH_TOKEN: proxy.token, NBPOOL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const record = JSON.parse(line) as { msg: string; url?: string };
        if (record.msg === 'orchestrator ready') resolve(record.url!);
      });
    });
    await proxy.routes.addRoute('/', { target: url });
    await waitFor(async () => (JSON.parse((await http(`${proxy.url}/api/stats`)).body) as { available: number }).available === 1 || undefined, { what: 'warm', timeoutMs: 20_000 });
    const reply = await http(`${proxy.url}/spawn/tree`);
    assert.equal(reply.status, 302);
    assert.equal((await http(`${proxy.url}${reply.headers.location}`)).status, 200);
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const left = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${instance}`] } });
    assert.ok(left.length >= 2, 'claimed and warm containers left running');
    assert.equal((await http(`${proxy.url}${reply.headers.location}`)).status, 200, 'the visitor is still served');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await proxy.stop();
    await removeInstance(instance);
  }
});

test('waits for a proxy REST API that is not up yet, then starts; a refusing one is one clear line', async () => {
  await requireImage(TINY_IMAGE);
  const apiPort = await freePort();
  const instance = uniqueInstance('wait');
  const args = [...nodeArgs, '--image', TINY_IMAGE, '--command', TINY_COMMAND, '--instance', instance, '--port', '0', '--admin-port', '0', '--pool-size', '0'];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, CONFIGPROXY_ENDPOINT: `http://127.0.0.1:${apiPort}`, CONFIGPROXY_AUTH_TOKEN: 'secret', NBPOOL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const messages: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => messages.push((JSON.parse(line) as { msg: string }).msg));
  let api: Server | undefined;
  try {
    await waitFor(() => messages.includes('waiting for the proxy REST API'), { what: 'the waiting log line' });
    assert.equal(child.exitCode, null, 'still waiting, not crashed');
    // A stand-in for the proxy API: CHP's GET /api/routes answer is all the orchestrator needs at start.
    api = createServer((req, res) => {
      const ok = req.headers.authorization === 'token secret';
      res.writeHead(ok ? 200 : 403, { 'Content-Type': 'application/json' }).end(ok ? '{}' : '{"status":403}');
    }).listen(apiPort, '127.0.0.1');
    await waitFor(() => messages.includes('orchestrator ready'), { what: 'the orchestrator to start once the API answers', timeoutMs: 20_000 });
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  const refused = await promisify(execFile)(process.execPath, args, {
    env: { ...process.env, CONFIGPROXY_ENDPOINT: `http://127.0.0.1:${apiPort}`, CONFIGPROXY_AUTH_TOKEN: 'wrong' },
  }).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
  api?.close();
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^nbpool orchestrator: the proxy REST API at http:\/\/127\.0\.0\.1:\d+ refused us: .*403/m);
});
