/**
 * Chaos: the Docker engine stopped and started again under load. A namespaced engine this test
 * owns (test/helpers/hosts.ts; the shared engine is never stopped), `nbpool up` pointed at it with
 * DOCKER_HOST. The node says so once, does not spin while the engine is away, and after the
 * engine returns reconciles before claiming: it adopts what survived, refills, and never hands
 * out a container that is not running (the engine's restart killed every container).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { NodeStats } from '../../shared/types.js';
import { requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { startDockerHosts, type DockerHost } from '../helpers/hosts.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startUp, type UpProcess } from '../helpers/up.js';
import { recordFigures, secondsSince } from './figures.js';
import { claimVisitor, leaked, served, type Visitor } from './stack.js';

const TINY_COMMAND = 'tiny-notebook --base-url {base_path} --port {port} --ip {ip} --NotebookApp.token={token}';
const instance = `chaosengine-${randomUUID().slice(0, 8)}`;
let host: DockerHost;
let node: UpProcess | undefined;

before(async () => {
  await requireImage(TINY_IMAGE);
  [host] = (await startDockerHosts(1, [TINY_IMAGE])) as [DockerHost];
}, { timeout: 180_000 });
after(async () => {
  await node?.kill();
  await host?.stop();
}, { timeout: 120_000 });

/** Log lines at warn or above (pino levels 40+) written since `from` characters into the log. */
function warnings(log: string, from: number): string[] {
  return log.slice(from).split('\n').filter((line) => /"level":(4|5|6)\d/.test(line));
}

test('engine stopped and restarted under load: said once, no tight loop, reconnects, refills, never hands out a dead container', {
  timeout: 300_000,
}, async () => {
  node = await startUp(['--image', TINY_IMAGE, '--command', TINY_COMMAND, '--pool-size', '3', '--max-containers', '20', '--mem-limit', '32m', '--cull-period', '2',
    '--port', String(await freePort()), '--admin-port', '0', '--container-ip', host.address, '--instance', instance, '--log-level', 'warn'], { ...process.env, DOCKER_HOST: host.dockerHost });
  const up = node;
  const stats = async () => (await (await fetch(`${up.url}/api/stats`)).json()) as NodeStats;
  await waitFor(async () => (await stats()).available === 3 || undefined, { timeoutMs: 90_000, intervalMs: 200, what: 'a full pool' });
  const visitors: Visitor[] = [await claimVisitor(up.url), await claimVisitor(up.url)];
  for (const v of visitors) assert.ok(await served(v));

  const logBefore = up.stdout().length;
  await host.stopEngine();
  const failuresBefore = (await stats()).pools.default!.failures;
  await new Promise((r) => setTimeout(r, 8000));
  const outage = await stats();
  const outageWarnings = warnings(up.stdout(), logBefore);
  const startsDuringOutage = outage.pools.default!.failures - failuresBefore;

  await host.startEngine();
  const backAt = Date.now();
  // The first claim after the engine is back must be a running container (until the node has
  // its engine again it answers 503, so that a caller tries another node).
  const first = await waitFor(() => claimVisitor(up.url).catch((err: Error) => (/answered 503/.test(err.message) ? undefined : Promise.reject(err))), { timeoutMs: 30_000, intervalMs: 250, what: 'a claim' })
    .catch(() => undefined);
  const firstServed = first ? await served(first) : false;
  const refilled = await waitFor(async () => (await stats()).available === 3 || undefined, { timeoutMs: 60_000, intervalMs: 200, what: 'refilled' })
    .then(() => secondsSince(backAt), () => undefined);
  const after = await claimVisitor(up.url);
  const afterServed = await served(after);
  await new Promise((r) => setTimeout(r, 5000));
  const leak = await leaked(instance, await stats(), host.docker);
  await recordFigures('engine_restart', {
    visitors_lost: visitors.length, // their containers died with the engine: the dead host's visitors
    containers_leaked: leak,
    seconds_to_recover: refilled ?? -1,
    warnings_during_outage: outageWarnings.length,
    failed_starts_during_outage: startsDuringOutage,
    available_claimed_during_outage: outage.available,
    first_claim_after_served: firstServed,
  });
  assert.ok(outageWarnings.length >= 1 && outageWarnings.length <= 2, `said once (${outageWarnings.length} warnings): ${outageWarnings.map((l) => l.slice(0, 400)).join('\n')}`);
  assert.ok(startsDuringOutage <= 6, `no tight loop: ${startsDuringOutage} failed starts in 8 s`);
  assert.equal(outage.available, 0, 'nothing counted available while the engine is away');
  assert.equal(outage.room, 0, 'no room offered to new visitors while the engine is away');
  assert.ok(firstServed, 'the first claim after the engine came back is a running container');
  assert.ok(refilled !== undefined, 'refilled');
  assert.ok(afterServed);
  assert.equal(leak, 0);
});
