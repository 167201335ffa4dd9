/**
 * A real Docker Swarm for tests: this machine's engine as the manager, plus worker engines in
 * network namespaces (hosts.ts) on one bridge of the run's own (10.252.S.0/24; the manager
 * advertises 10.252.S.1), joined with `docker swarm join`. Workers run with
 * DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (else every task first waits ~12 s on a registry pull) and
 * get the images by `docker save | docker load`. Tasks belong on workers (`node.role==worker`): the
 * manager is the engine other tests share.
 *
 * Stop leaves the manager as found: services removed, `docker swarm leave --force`, the swarm's
 * docker_gwbridge removed when the run created it, workers stopped, bridge and its FORWARD rule
 * deleted. A run killed before that is cleaned up by the next one (its state directory names its pid).
 * Never run two swarm test files at once: the manager can be in one swarm only.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { pidAlive, startDockerHosts, type DockerHost } from './hosts.js';
import { waitFor } from './net.js';

const exec = promisify(execFile);

export interface SwarmWorker extends DockerHost {
  nodeId: string;
}

export interface TestSwarm {
  /** The manager's client (this machine's engine). */
  docker: Docker;
  /** Address the manager advertises; reachable from every worker. */
  managerAddress: string;
  workers: SwarmWorker[];
  /** The worker a swarm node id belongs to. */
  workerOf(nodeId: string): SwarmWorker | undefined;
  stop(): Promise<void>;
}

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await exec(cmd, args, { maxBuffer: 8 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}


const STATE_PREFIX = '/tmp/nbsw-';

interface SwarmState {
  owner: number;
  bridge: string;
  /** Whether this run created docker_gwbridge (then it removes it). */
  gwbridge: boolean;
}

function forwardRule(bridge: string): string[] {
  return ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
}

async function swarmState(docker: Docker): Promise<string> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
  return info.Swarm?.LocalNodeState ?? 'inactive';
}

/**
 * Undoes what a run did on the manager: swarm left, bridge and its FORWARD rule deleted. Leaving
 * has failed here under heavy load ("grpc: the client connection is closing"), so it is retried,
 * and the state directory stays (for the next run's sweep) until the engine is out of the swarm.
 */
async function undo(dir: string, state: SwarmState): Promise<void> {
  const docker = new Docker();
  for (let attempt = 1; ; attempt++) {
    await exec('docker', ['swarm', 'leave', '--force']).catch(() => undefined);
    if ((await swarmState(docker).catch(() => 'error')) === 'inactive') break;
    if (attempt === 10) throw new Error(`this engine did not leave the swarm; run docker swarm leave --force (state in ${dir})`);
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (state.gwbridge) await exec('docker', ['network', 'rm', 'docker_gwbridge']).catch(() => undefined);
  await exec('iptables', ['-D', ...forwardRule(state.bridge)]).catch(() => undefined);
  await exec('ip', ['link', 'del', state.bridge]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}

/** Cleans up after swarm runs whose process died (their workers are swept by hosts.ts). */
async function sweepOrphans(): Promise<void> {
  for (const entry of readdirSync('/tmp')) {
    const dir = `/tmp/${entry}`;
    if (!dir.startsWith(STATE_PREFIX) || !existsSync(`${dir}/state.json`)) continue;
    const state = JSON.parse(readFileSync(`${dir}/state.json`, 'utf8')) as SwarmState;
    if (!pidAlive(state.owner)) await undo(dir, state);
  }
}

/** A /24 under 10.252 that no interface here uses. */
function freePrefix(seed: number): string {
  const used = new Set<number>();
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      const m = /^10\.252\.(\d+)\./.exec(a.address);
      if (m) used.add(Number(m[1]));
    }
  }
  for (let n = 1 + (seed % 250); ; n = (n % 250) + 1) if (!used.has(n)) return `10.252.${n}`;
}


/**
 * Starts a swarm of this engine (manager) and `workerCount` namespaced worker engines holding
 * `images`. Dispatcher heartbeat `heartbeat` (swarm's default is 5 s; a node is marked down a few
 * heartbeats after it stops answering).
 */
export async function startSwarm(workerCount: number, images: readonly string[], { heartbeat = '2s' } = {}): Promise<TestSwarm> {
  await sweepOrphans();
  const docker = new Docker();
  const before = await swarmState(docker);
  if (before !== 'inactive') throw new Error(`this Docker engine is already in a swarm (${before}); another swarm test may be running, and two cannot share the manager`);

  const run = randomBytes(2).toString('hex');
  const prefix = freePrefix(parseInt(run, 16));
  const managerAddress = `${prefix}.1`;
  const dir = `${STATE_PREFIX}${run}`;
  const hadGwbridge = await docker.getNetwork('docker_gwbridge').inspect().then(() => true, () => false);
  const state: SwarmState = { owner: process.pid, bridge: `nbsw${run}`, gwbridge: !hadGwbridge };
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/state.json`, JSON.stringify(state));

  let workers: SwarmWorker[] = [];
  const stop = async () => {
    const services = await docker.listServices().catch(() => []);
    for (let i = 0; i < services.length; i += 8) await Promise.allSettled(services.slice(i, i + 8).map((s) => docker.getService(s.ID).remove()));
    await Promise.allSettled(workers.map((w) => w.stop()));
    await undo(dir, state);
  };
  try {
    await sh('ip', ['link', 'add', state.bridge, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${managerAddress}/24`, 'dev', state.bridge]);
    await sh('ip', ['link', 'set', state.bridge, 'up']);
    // Docker sets FORWARD's policy to DROP and bridged frames pass iptables: let workers talk.
    await sh('iptables', ['-I', ...forwardRule(state.bridge)]);
    const hostsStarted = startDockerHosts(workerCount, images, { bridge: { name: state.bridge, prefix }, env: { DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' } });
    hostsStarted.catch(() => undefined);
    await sh('docker', ['swarm', 'init', '--advertise-addr', managerAddress, '--dispatcher-heartbeat', heartbeat, '--default-addr-pool', '10.253.0.0/16']);
    const token = (await sh('docker', ['swarm', 'join-token', '-q', 'worker'])).trim();
    const hosts = await hostsStarted;
    workers = hosts.map((h) => Object.assign(h, { nodeId: '' }));
    await Promise.all(workers.map((w) => sh('docker', ['-H', w.dockerHost, 'swarm', 'join', '--token', token, `${managerAddress}:2377`])));
    for (const w of workers) w.nodeId = ((await w.docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
    await waitFor(
      async () => {
        const nodes = await docker.listNodes();
        return workers.every((w) => nodes.some((n) => n.ID === w.nodeId && n.Status?.State === 'ready'));
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'every worker Ready in the swarm' },
    );
  } catch (err) {
    await stop();
    throw err;
  }

  // A run interrupted (Ctrl-C, the test runner's timeout) still leaves the manager as found.
  const onSignal = (signal: NodeJS.Signals) => void stop().finally(() => process.kill(process.pid, signal));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    docker,
    managerAddress,
    workers,
    workerOf: (nodeId) => workers.find((w) => w.nodeId === nodeId),
    async stop() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stop();
    },
  };
}

