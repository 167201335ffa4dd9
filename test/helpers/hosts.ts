/**
 * Extra Docker hosts for tests: each a dockerd of its own in a network namespace, with its own
 * address on a veth pair (10.251.N.2, host side 10.251.N.1), reached over tcp://10.251.N.2:2375;
 * or, with `bridge`, all on one bridge of the caller's (10.252.S.11, .12, ...; the bridge is .1 and
 * the hosts' default route), so every host reaches every other (a swarm needs that).
 * Names, subnets and directories are unique to the run so parallel runs never collide. Recipe
 * from DEVELOPERS.md / docker-here.md: `nsenter --net` (not `ip netns exec`, which remounts /sys
 * and breaks the engine's cgroups). Needs root. Stop removes the engine's containers (8 at a time),
 * stops dockerd by its pidfile and deletes the veth, the namespace and the directories; hosts
 * orphaned by a killed run are torn down by the next run.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { waitFor } from './net.js';

const exec = promisify(execFile);

export interface DockerHost {
  name: string;
  /** Stops the engine (SIGTERM by its pidfile, as an operator would), leaving its data. */
  stopEngine(): Promise<void>;
  /** Starts the engine again on the same data and address; resolves once it answers. */
  startEngine(): Promise<void>;
  /** The host's own address; its containers publish their ports here. */
  address: string;
  /** For DOCKER_HOST. */
  dockerHost: string;
  docker: Docker;
  /** The engine's log so far (for failure messages). */
  log(): string;
  /** Kills every process in the host's namespace at once (engine, shims, containers): a machine lost. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  try {
    await exec(cmd, args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Third octets of 10.251.N.0/24 already on some interface here (another run's hosts). */
function subnetsInUse(): Set<number> {
  const used = new Set<number>();
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      const m = /^10\.251\.(\d+)\./.exec(a.address);
      if (m) used.add(Number(m[1]));
    }
  }
  return used;
}

/** Whether a process of that pid exists (signal 0 checks without sending). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Names of one host's pieces, all derived from the run and index. */
function hostNames(run: string, index: number) {
  const dir = `/tmp/nbh-${run}-${index}`;
  return { name: `nbp-${run}-${index}`, outside: `nb${run}${index}o`, inside: `nb${run}${index}i`, dir, pidfile: `${dir}/docker.pid`, logPath: `${dir}/dockerd.log` };
}

/** Stops a host's engine by its pidfile, deletes its veth, namespace and directory. */
async function teardown(names: ReturnType<typeof hostNames>): Promise<void> {
  if (existsSync(names.pidfile)) {
    const pid = Number(readFileSync(names.pidfile, 'utf8').trim());
    if (pid && pidAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      try {
        await waitFor(() => !pidAlive(pid), { timeoutMs: 30_000, intervalMs: 100, what: `dockerd ${names.name} to stop` });
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
  }
  await exec('ip', ['link', 'del', names.outside]).catch(() => undefined);
  await exec('ip', ['netns', 'del', names.name]).catch(() => undefined);
  // An engine killed outright leaves its containers' mounts behind: deepest first.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(names.dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await exec('umount', ['-l', m]).catch(() => undefined);
  rmSync(names.dir, { recursive: true, force: true });
}

/**
 * A machine lost: every process in the host's namespace SIGKILLed (engine, containerd, shims) until
 * none is left, then its containers' processes (cgroup v1, cgroupfs: /sys/fs/cgroup/pids/docker/<id>),
 * which live in namespaces of their own and would otherwise keep answering.
 */
async function killHost(names: ReturnType<typeof hostNames>): Promise<void> {
  const { name, dir } = names;
  const containerIds = existsSync(`${dir}/data/containers`) ? readdirSync(`${dir}/data/containers`) : [];
  await waitFor(
    async () => {
      const pids = (await exec('ip', ['netns', 'pids', name]).catch(() => ({ stdout: '' }))).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      return pids.length === 0;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: `every process in namespace ${name} to die` },
  );
  for (const id of containerIds) {
    const procs = `/sys/fs/cgroup/pids/docker/${id}/cgroup.procs`;
    if (!existsSync(procs)) continue;
    for (const pid of readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
}

/**
 * Tears down hosts left by runs whose test process died without cleaning up (killed by a
 * timeout): each host directory names its owner's pid, so live parallel runs are left alone.
 */
async function sweepOrphans(): Promise<void> {
  const orphans = readdirSync('/tmp').flatMap((entry) => {
    const m = /^nbh-([0-9a-f]{4})-(\d+)$/.exec(entry);
    if (!m) return [];
    const ownerFile = `/tmp/${entry}/owner.pid`;
    // No owner file: a run is between creating the directory and writing it, leave it be.
    if (!existsSync(ownerFile)) return [];
    const owner = Number(readFileSync(ownerFile, 'utf8'));
    return owner && pidAlive(owner) ? [] : [hostNames(m[1]!, Number(m[2]))];
  });
  await Promise.all(orphans.map((names) => teardown(names)));
}

export interface HostOptions {
  /** Put every host on this bridge (its address is `${prefix}.1/24`) instead of a veth pair each. */
  bridge?: { name: string; prefix: string };
  /** Extra environment for each dockerd. */
  env?: Record<string, string>;
}

async function startHost(run: string, index: number, subnet: number, options: HostOptions): Promise<DockerHost> {
  const names = hostNames(run, index);
  const { name, outside, inside, dir, pidfile, logPath } = names;
  const { bridge } = options;
  const address = bridge ? `${bridge.prefix}.${11 + index}` : `10.251.${subnet}.2`;
  mkdirSync(`${dir}/data`, { recursive: true });
  mkdirSync(`${dir}/exec`, { recursive: true });
  writeFileSync(`${dir}/owner.pid`, String(process.pid));
  const launchEngine = () => {
    const logFd = openSync(logPath, 'a');
    const child = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${name}`,
        'dockerd',
        '-H', `tcp://${address}:2375`,
        '-H', `unix://${dir}/docker.sock`,
        '--data-root', `${dir}/data`,
        '--exec-root', `${dir}/exec`,
        '--pidfile', pidfile,
        '--bip', `172.30.${subnet}.1/24`,
      ],
      { detached: true, stdio: ['ignore', logFd, logFd], env: { ...process.env, ...options.env } },
    );
    child.unref();
    closeSync(logFd);
  };

  try {
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
    await sh('ip', ['link', 'set', inside, 'netns', name]);
    if (bridge) await sh('ip', ['link', 'set', outside, 'master', bridge.name]);
    else await sh('ip', ['addr', 'add', `10.251.${subnet}.1/24`, 'dev', outside]);
    await sh('ip', ['link', 'set', outside, 'up']);
    const inNs = (args: string[]) => sh('nsenter', [`--net=/var/run/netns/${name}`, 'ip', ...args]);
    await inNs(['addr', 'add', `${address}/24`, 'dev', inside]);
    await inNs(['link', 'set', inside, 'up']);
    await inNs(['link', 'set', 'lo', 'up']);
    if (bridge) await inNs(['route', 'add', 'default', 'via', `${bridge.prefix}.1`]);
    launchEngine();
  } catch (err) {
    await teardown(names);
    throw err;
  }

  const docker = new Docker({ host: address, port: 2375 });
  const ping = (what: string) => waitFor(() => docker.ping().then(() => true), { timeoutMs: 90_000, intervalMs: 250, what: `${what} ${name} at ${address}` });
  const host: DockerHost = {
    name,
    address,
    async stopEngine() {
      const pid = Number(readFileSync(pidfile, 'utf8').trim());
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !pidAlive(pid), { timeoutMs: 60_000, intervalMs: 100, what: `dockerd ${name} to stop` });
    },
    async startEngine() {
      launchEngine();
      await ping('dockerd again');
    },
    dockerHost: `tcp://${address}:2375`,
    docker,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    kill: () => killHost(names),
    async stop() {
      try {
        const containers = await docker.listContainers({ all: true });
        for (let i = 0; i < containers.length; i += 8) {
          await Promise.allSettled(containers.slice(i, i + 8).map((c) => docker.getContainer(c.Id).remove({ force: true })));
        }
      } catch {
        // The engine may be gone already; stopping it below is what matters.
      }
      await teardown(names);
    },
  };
  try {
    await ping('dockerd');
  } catch (err) {
    const log = host.log().split('\n').slice(-10).join('\n');
    await host.stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return host;
}

/** Copies `images` from the local engine into `hosts` (one `docker save`, loaded into all at once). */
export async function loadImages(hosts: readonly DockerHost[], images: readonly string[]): Promise<void> {
  const tar = `/tmp/nbh-images-${randomBytes(4).toString('hex')}.tar`;
  try {
    await sh('docker', ['save', '-o', tar, ...images]);
    await Promise.all(hosts.map((h) => sh('docker', ['-H', h.dockerHost, 'load', '-q', '-i', tar])));
  } finally {
    rmSync(tar, { force: true });
  }
}

/**
 * Starts `count` Docker hosts in parallel (15-25 s each here) and loads `images` from the local
 * engine into each. On any failure the hosts already started are stopped.
 */
export async function startDockerHosts(count: number, images: readonly string[], options: HostOptions = {}): Promise<DockerHost[]> {
  await sweepOrphans();
  const run = randomBytes(2).toString('hex');
  const used = subnetsInUse();
  const subnets: number[] = [];
  for (let n = 1 + (parseInt(run, 16) % 200); subnets.length < count; n = (n % 250) + 1) if (!used.has(n)) subnets.push(n);

  const started = await Promise.allSettled(subnets.map((subnet, i) => startHost(run, i, subnet, options)));
  const hosts = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await loadImages(hosts, images);
    return hosts;
  } catch (err) {
    await Promise.all(hosts.map((h) => h.stop()));
    throw err;
  }
}
