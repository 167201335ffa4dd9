/** Docker for benchmarks: cold starts of the tiny image, the engine's own start rate, clean-up. */
import { execFile } from 'node:child_process';
import Docker from 'dockerode';
import { forEachLimited, httpRequest } from './http.js';
import { freePort, sleep } from './procs.js';

export const TINY_IMAGE = 'nbpool/tiny:latest';
export const engine = new Docker();

function dockerCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`docker ${args[0]}: ${stderr || err.message}`)) : resolve(stdout.trim())));
  });
}

/** Polls `url` every few ms until it answers 200; returns ms since `t0` (hrtime ns). */
export async function untilAnswers(url: string, t0: bigint, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await httpRequest(url, { timeoutMs: 2000 });
      if (res.status === 200) return Number(process.hrtime.bigint() - t0) / 1e6;
    } catch {
      // not listening yet (Docker's port proxy resets the connection)
    }
    await sleep(5);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** One cold `docker run` of the tiny image until its page answers: ms. */
export async function coldDockerRun(label: string, i: number): Promise<number> {
  const port = await freePort();
  const base = `/user/cold${i}/`;
  const t0 = process.hrtime.bigint();
  await dockerCli(['run', '-d', '--label', label, '-p', `127.0.0.1:${port}:8888`, TINY_IMAGE, 'tiny-notebook', '--port', '8888', '--base-url', base]);
  return untilAnswers(`http://127.0.0.1:${port}${base}`, t0);
}

/** The engine's own start time through its API: `count` create+start, `parallel` at a time; seconds. */
export async function engineStartSeconds(label: string, count: number, parallel = 8): Promise<number> {
  const [key, value] = label.split('=') as [string, string];
  const t0 = process.hrtime.bigint();
  await forEachLimited(count, parallel, async (i) => {
    const c = await engine.createContainer({
      Image: TINY_IMAGE,
      Cmd: ['tiny-notebook', '--port', '8888', '--base-url', `/user/engine${i}/`],
      Labels: { [key]: value },
      ExposedPorts: { '8888/tcp': {} },
      HostConfig: { PortBindings: { '8888/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    await c.start();
  });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Removes every container with `label` (key=value), at most 8 at a time. */
export async function removeLabelled(label: string): Promise<number> {
  const containers = await engine.listContainers({ all: true, filters: { label: [label] } });
  await forEachLimited(containers.length, 8, (i) => engine.getContainer(containers[i]!.Id).remove({ force: true }).catch(() => undefined));
  return containers.length;
}

/** Removes every container whose name starts with `prefix` (the original tmpnb names them tmp.<pool>.<user>). */
export async function removeNamed(prefix: string): Promise<number> {
  const containers = (await engine.listContainers({ all: true, filters: { name: [prefix] } })).filter((c) => c.Names.some((n) => n.replace(/^\//, '').startsWith(prefix)));
  await forEachLimited(containers.length, 8, (i) => engine.getContainer(containers[i]!.Id).remove({ force: true }).catch(() => undefined));
  return containers.length;
}

export interface CreateWatch {
  /** Wall-clock ms of the engine's first container create that matched, if any yet. */
  firstAt(): number | undefined;
  stop(): void;
}

/**
 * Watches the engine's container create events from now on and keeps the time of the first one
 * that `matches` (by container name and labels): the moment a pool starts filling, as the engine
 * saw it, whatever the program does before (start-up, clean-up of old containers).
 */
export async function watchFirstCreate(matches: (name: string, labels: Record<string, string>) => boolean): Promise<CreateWatch> {
  const stream = (await engine.getEvents({ filters: { type: ['container'], event: ['create'] } })) as NodeJS.ReadableStream & { destroy(): void };
  let first: number | undefined;
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.trim() || first !== undefined) continue;
      const event = JSON.parse(line) as { timeNano: number; Actor: { Attributes: Record<string, string> } };
      const { name = '', ...labels } = event.Actor.Attributes;
      if (matches(name, labels)) first = event.timeNano / 1e6;
    }
  });
  stream.on('error', () => undefined);
  return { firstAt: () => first, stop: () => stream.destroy() };
}
