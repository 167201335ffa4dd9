/** Docker for tests: the real engine, and clean-up of what a test file started. */
import Docker from 'dockerode';
import { LABELS, OWNER_LABEL } from '../../orchestrator/backend.js';

export const TINY_IMAGE = 'nbpool/tiny:latest';
export const JUPYTER_IMAGE = 'nbpool/jupyter:latest';

export function docker(): Docker {
  return new Docker();
}

/** Fails loudly (instead of skipping) when the engine or an image is missing: npm test sets them up. */
export async function requireImage(image: string): Promise<void> {
  const engine = docker();
  try {
    await engine.ping();
  } catch (err) {
    throw new Error(`no Docker engine answers (${(err as Error).message}); run the tests with npm test, which starts it`);
  }
  try {
    await engine.getImage(image).inspect();
  } catch {
    throw new Error(`image ${image} is missing; npm test builds it (bash test/images/build.sh)`);
  }
}

/** Removes every container carrying label `key=value` (a test's own), with bounded concurrency. */
export async function removeLabelled(key: string, value: string): Promise<void> {
  const engine = docker();
  const containers = await engine.listContainers({ all: true, filters: { label: [`${key}=${value}`] } });
  for (let i = 0; i < containers.length; i += 8) {
    await Promise.allSettled(containers.slice(i, i + 8).map((c) => engine.getContainer(c.Id).remove({ force: true })));
  }
}

/**
 * Removes an instance's containers and its owner marker (labelled apart), which is left behind
 * when its orchestrator was killed or stopped before it let go.
 */
export async function removeInstance(instance: string): Promise<void> {
  await removeLabelled(LABELS.instance, instance);
  await removeLabelled(OWNER_LABEL, instance);
}
