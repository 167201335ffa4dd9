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

/** The engine's own start rate through its API: `count` create+start, `parallel` at a time; containers/s. */
export async function engineStartRate(label: string, count: number, parallel = 8): Promise<number> {
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
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Removes every container with `label` (key=value), at most 8 at a time. */
export async function removeLabelled(label: string): Promise<number> {
  const containers = await engine.listContainers({ all: true, filters: { label: [label] } });
  await forEachLimited(containers.length, 8, (i) => engine.getContainer(containers[i]!.Id).remove({ force: true }).catch(() => undefined));
  return containers.length;
}
