// The docker-compose stack for real: Debian's docker-compose 1.29 builds the nbpool image on the
// locally made Node base image, starts proxy + orchestrator (host network, Docker socket mounted)
// with the tiny image as the pool image, and a visitor claims a container through the proxy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { removeInstance, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const suffix = randomBytes(4).toString('hex');
const project = `nbpoolcompose${suffix}`;
const instance = `compose-test-${suffix}`;
const ports = { public: 0, api: 0, orchestrator: 0, admin: 0, redis: 0, redirector: 0, redirectorAdmin: 0 };
let env: NodeJS.ProcessEnv = {};
/** The orchestrator's config file (NBPOOL_ORCHESTRATOR_CONFIG): visitors land on /lab. */
const configDir = mkdtempSync(join(tmpdir(), 'nbpool-compose-'));
let started = false;
let failed = false;
/** The route of the visitor claimed below, e.g. /user/abc...; checked again after a restart. */
let claimedPath = '';

/** A test whose failure also prints the stack's logs (at the end). */
function stackTest(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    try {
      await body();
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

function compose(args: string[], timeoutMs: number) {
  return run('docker-compose', ['-p', project, '-f', `${root}/docker-compose.yml`, ...args], {
    cwd: root,
    env,
    timeout: timeoutMs,
    maxBuffer: 32 * 1024 * 1024,
  });
}

before(async () => {
  await requireImage(TINY_IMAGE);
  await requireImage('nbpool/node:20');
  await requireImage('nbpool/redis:latest');
  // The image is built from dist/: compile it when the sources are newer (as npm test does).
  await run('bash', ['scripts/ensure.sh', 'deps'], { cwd: root, timeout: 120_000 });
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  writeFileSync(join(configDir, 'orchestrator.json'), JSON.stringify({ redirectUri: '/lab' }));
  env = {
    ...process.env,
    NBPOOL_ORCHESTRATOR_CONFIG: join(configDir, 'orchestrator.json'),
    CONFIGPROXY_AUTH_TOKEN: randomBytes(16).toString('hex'),
    ADMIN_AUTH_TOKEN: randomBytes(16).toString('hex'),
    NBPOOL_IP: '127.0.0.1',
    NBPOOL_PORT: String(ports.public),
    NBPOOL_PROXY_API_PORT: String(ports.api),
    NBPOOL_ORCHESTRATOR_PORT: String(ports.orchestrator),
    NBPOOL_ADMIN_PORT: String(ports.admin),
    NBPOOL_POOL_IMAGE: TINY_IMAGE,
    NBPOOL_POOL_SIZE: '1',
    NBPOOL_MEM_LIMIT: '64m',
    NBPOOL_INSTANCE: instance,
    NBPOOL_LOG_LEVEL: 'info',
    COMPOSE_PROFILES: 'redis,redirector',
    NBPOOL_REDIS_PORT: String(ports.redis),
    NBPOOL_REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    NBPOOL_REDIRECTOR_PORT: String(ports.redirector),
    NBPOOL_REDIRECTOR_ADMIN_PORT: String(ports.redirectorAdmin),
    NBPOOL_NODE_URL: `http://127.0.0.1:${ports.public}`,
    // The classic builder: the engine here (20.10) has no BuildKit session support for this client.
    DOCKER_BUILDKIT: '0',
    COMPOSE_DOCKER_CLI_BUILD: '0',
  };
  started = true;
  try {
    await compose(['up', '-d', '--build'], 100_000);
  } catch (err) {
    failed = true;
    throw err;
  }
}, { timeout: 150_000 });

after(async () => {
  rmSync(configDir, { recursive: true, force: true });
  if (!started) return;
  try {
    const { stdout } = await compose(['logs', '--no-color', '--tail=40'], 20_000);
    if (failed || process.env.NBPOOL_TEST_LOGS) process.stderr.write(stdout);
  } finally {
    await compose(['down', '--volumes', '--timeout', '10'], 60_000).catch((err: Error) => process.stderr.write(`compose down: ${err.message}\n`));
    await removeInstance(instance);
  }
}, { timeout: 120_000 });

stackTest('compose stack: proxy, orchestrator, redis and redirector run as containers', async () => {
  const { stdout } = await compose(['ps', '--services', '--filter', 'status=running'], 20_000);
  assert.deepEqual(stdout.trim().split('\n').sort(), ['orchestrator', 'proxy', 'redirector', 'redis']);
  const health = await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.public}/_chp_healthz`)).status === 200 || undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: 'the proxy in its container',
  });
  assert.equal(health, true);
});

stackTest('compose stack: a visitor follows the stable link and claims a container through the proxy', async () => {
  const base = `http://127.0.0.1:${ports.public}`;
  const node = await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${ports.redirector}/`, { redirect: 'manual' });
    return res.status === 302 ? res.headers.get('location') : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, what: 'the redirector sending visitors to the node' });
  assert.equal(node, `${base}/`);
  const loading = await waitFor(async () => {
    const res = await fetch(node);
    return res.status === 200 ? res.text() : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, what: 'the loading page through the proxy' });
  assert.match(loading, /spawn/, 'the loading page continues to /spawn');

  // The pool fills behind the proxy; then /spawn answers 302 into the visitor's own container. (Asking
  // /spawn before that would put a visitor in line each time, and each would take the next container.)
  await waitFor(async () => {
    const res = await fetch(`${base}/api/stats`);
    return (res.ok && ((await res.json()) as { available: number }).available >= 1) || undefined;
  }, { timeoutMs: 45_000, intervalMs: 250, what: 'a warm container' });
  const res = await fetch(`${base}/spawn/`, { redirect: 'manual' });
  assert.equal(res.status, 302, 'a claim from the warm pool');
  const location = res.headers.get('location');
  assert.ok(location, 'redirect location');
  const target = new URL(location, base);
  assert.match(target.pathname, /^\/user\/[A-Za-z0-9_-]{21,}\/lab$/, 'the redirect URI from the config file');

  const page = await waitFor(async () => {
    const res = await fetch(target);
    return res.status === 200 ? res.text() : undefined;
  }, { timeoutMs: 10_000, what: 'the claimed container page' });
  assert.match(page, /<title>tiny<\/title>/);
  const userPath = target.pathname.split('/').slice(0, 3).join('/');
  const whoami = (await (await fetch(`${base}${userPath}/api/whoami`)).json()) as { base_url: string };
  assert.equal(whoami.base_url, `${userPath}/`, 'the container serves under the visitor route');
  claimedPath = userPath;
  const { stdout: keys } = await run('redis-cli', ['-p', String(ports.redis), '--scan']);
  assert.ok(keys.trim().length > 0, 'the proxy keeps its routes in the Redis service');
});

stackTest('compose stack: stop (SIGTERM) exits cleanly, keeps the visitor container, and a restart adopts it', async () => {
  assert.ok(claimedPath, 'a visitor claimed a container in the test before');
  const { stdout: ids } = await compose(['ps', '-q'], 20_000);
  // As users do: compose stops the proxy and Redis at once (the optional profile cannot be a
  // dependency), so the proxy must also shut down cleanly when its store is already gone.
  await compose(['stop', '--timeout', '20'], 60_000);
  for (const id of ids.trim().split('\n')) {
    const { stdout } = await run('docker', ['inspect', '-f', '{{.State.Running}} {{.State.ExitCode}} {{.Name}}', id]);
    assert.match(stdout.trim(), /^false 0 /, `exited with status 0 on SIGTERM: ${stdout.trim()}`);
  }
  const { stdout: kept } = await run('docker', ['ps', '-q', '--filter', `label=nbpool.instance=${instance}`]);
  assert.ok(kept.trim().length > 0, "the visitors' containers keep running while nbpool is stopped");
  // The claim journal is in the orchestrator's state volume, so a recreated container has it too.
  const { stdout: mountpoint } = await run('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', `${project}_orchestrator-state`]);
  assert.ok(statSync(join(mountpoint.trim(), `claims-${instance}.log`)).size > 0, 'the claim is journaled in the state volume');

  await compose(['start'], 60_000);
  const base = `http://127.0.0.1:${ports.public}`;
  const whoami = await waitFor(async () => {
    const res = await fetch(`${base}${claimedPath}/api/whoami`);
    return res.status === 200 ? ((await res.json()) as { base_url: string }) : undefined;
  }, { timeoutMs: 30_000, intervalMs: 250, what: 'the visitor route again after the restart' });
  assert.equal(whoami.base_url, `${claimedPath}/`, 'the same container serves the visitor after the restart');
  // Routes live in Redis, so the route alone proves little: the new orchestrator counts the
  // visitor's container as claimed (adopted by its labels), not as one to replace.
  const stats = await waitFor(async () => {
    const res = await fetch(`${base}/api/stats`);
    return res.ok && res.headers.get('content-type')?.includes('json') ? ((await res.json()) as { claimed: number }) : undefined;
  }, { timeoutMs: 30_000, intervalMs: 250, what: 'the restarted orchestrator' });
  assert.equal(stats.claimed, 1, 'the restarted orchestrator adopted the claimed container');
});
