/**
 * DockerBackend against the real engine: the durable claim marker (a rename to `<name>-claimed`),
 * whether this backend started the container (name known, one engine call) or only meets it now
 * (another process started it: the name is read from the engine first).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { ContainerSpec } from '../../orchestrator/backend.js';
import { DockerBackend } from '../../orchestrator/docker-backend.js';
import { docker, removeLabelled, requireImage, TINY_IMAGE } from '../helpers/docker.js';

const run = `backend-${randomBytes(4).toString('hex')}`;
const label = 'nbpool.test-run';

function spec(name: string): ContainerSpec {
  return {
    name: `${run}-${name}`,
    image: TINY_IMAGE,
    cmd: [],
    env: [],
    labels: { [label]: run },
    port: 8888,
    publishIp: '127.0.0.1',
    binds: [],
    capAdd: [],
    readOnlyRoot: false,
    tmpfs: [],
    egress: true,
  };
}

const engineName = async (id: string) => (await docker().getContainer(id).inspect()).Name.replace(/^\//, '');

before(() => requireImage(TINY_IMAGE));
after(() => removeLabelled(label, run));

test('claim marker: the container is renamed <name>-claimed once, by the backend that started it and by one that never saw it', async () => {
  const starter = new DockerBackend();
  const [own, foreign] = await Promise.all([starter.start(spec('own')), starter.start(spec('foreign'))]);

  await starter.markClaimed(own.containerId);
  assert.equal(await engineName(own.containerId), `${run}-own-claimed`);
  await starter.markClaimed(own.containerId); // again (a restart re-marks what its journal holds): no second suffix
  assert.equal(await engineName(own.containerId), `${run}-own-claimed`);

  const stranger = new DockerBackend(); // another process: knows no names
  await stranger.markClaimed(foreign.containerId);
  assert.equal(await engineName(foreign.containerId), `${run}-foreign-claimed`);
  await stranger.markClaimed(own.containerId);
  assert.equal(await engineName(own.containerId), `${run}-own-claimed`);

  const listed = await new DockerBackend().list(label, run);
  assert.deepEqual(listed.map((c) => [c.name, c.claimed]).sort(), [[`${run}-foreign-claimed`, true], [`${run}-own-claimed`, true]]);
});

test('the names kept for claim markers forget a container removed behind the backend\'s back at the next listing', async () => {
  const backend = new DockerBackend();
  const [kept, gone] = await Promise.all([backend.start(spec('kept')), backend.start(spec('gone'))]);
  const names = (backend as unknown as { names: Map<string, string> }).names;
  assert.ok(names.has(gone.containerId));
  await docker().getContainer(gone.containerId).remove({ force: true });
  await backend.list(label, run);
  assert.equal(names.has(gone.containerId), false);
  assert.equal(names.get(kept.containerId), `${run}-kept`);
  await backend.markClaimed(kept.containerId);
  assert.equal(await engineName(kept.containerId), `${run}-kept-claimed`);
});
