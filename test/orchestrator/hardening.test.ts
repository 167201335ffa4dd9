/**
 * Container hardening, checked twice: in the engine's inspect output and from inside the container
 * (docker exec). Also the container flags an operator uses: --docker-network, --host-directories,
 * --container-user. The no-egress test compares with a container on the default bridge, which
 * does reach the same targets, so it fails if the isolation is gone.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { LABELS } from '../../orchestrator/backend.js';
import { DockerBackend, NO_EGRESS_BRIDGE, NO_EGRESS_NETWORK } from '../../orchestrator/docker-backend.js';
import { docker, requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { http, startNode, waitForWarm, type Node } from './harness.js';

const run = promisify(execFile);
const backend = new DockerBackend();

/** Runs a shell command in the container; returns exit code and output. */
async function inside(containerId: string, script: string): Promise<{ exitCode: number; output: string }> {
  return backend.exec(containerId, ['sh', '-c', script], [], 15_000);
}

async function containersOf(node: Node): Promise<Docker.ContainerInspectInfo[]> {
  const list = await docker().listContainers({ filters: { label: [`${LABELS.instance}=${node.instance}`] } });
  return Promise.all(list.map((c) => docker().getContainer(c.Id).inspect()));
}

/** Effective capability mask of the container's main process, from /proc. */
async function effectiveCaps(containerId: string): Promise<bigint> {
  const { output } = await inside(containerId, 'grep CapEff /proc/1/status');
  return BigInt('0x' + /CapEff:\s*([0-9a-f]+)/.exec(output)![1]!);
}

/** Whether an HTTP GET to host:port from inside the container gets an HTTP answer within 3 s. */
async function reaches(containerId: string, host: string, port: number): Promise<boolean> {
  const { output } = await inside(containerId, `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`);
  return output.includes('HTTP/1.');
}

before(() => requireImage(TINY_IMAGE));

test('by default: every capability dropped, no new privileges, a pids limit, /tmp a tmpfs', async () => {
  const node = await startNode('harden', ['--pool-size', '1']);
  try {
    await waitForWarm(node, 'default', 1);
    const [info] = await containersOf(node);
    assert.ok(info);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.CapAdd ?? null, null);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(info.HostConfig.PidsLimit, 512);
    assert.ok(info.HostConfig.Tmpfs && '/tmp' in info.HostConfig.Tmpfs, JSON.stringify(info.HostConfig.Tmpfs));
    assert.equal(info.HostConfig.ReadonlyRootfs, false);

    assert.equal(await effectiveCaps(info.Id), 0n, 'no capability at all, though root');
    assert.match((await inside(info.Id, 'grep NoNewPrivs /proc/1/status')).output, /NoNewPrivs:\s*1/);
    assert.match((await inside(info.Id, 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max')).output.trim(), /^512$/);
    assert.match((await inside(info.Id, 'grep " /tmp " /proc/mounts')).output, /^tmpfs \/tmp tmpfs rw,nosuid,nodev/);
    assert.equal((await inside(info.Id, 'echo x > /tmp/x && echo x > /home/user/x')).exitCode, 0, '/tmp and the root filesystem are writable');
    // Without CAP_CHOWN even root cannot give a file away.
    assert.notEqual((await inside(info.Id, 'chown 1000 /tmp/x')).exitCode, 0);
  } finally {
    await node.stop();
  }
});

test('--read-only, --cap-add, --container-user and --host-directories, in inspect and inside', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-hostdir-'));
  writeFileSync(join(dir, 'shared.txt'), 'from the host\n', { mode: 0o644 });
  chmodSync(dir, 0o755);
  const node = await startNode('hardro', [
    '--pool-size', '1', '--read-only', '--cap-add', 'NET_BIND_SERVICE,CAP_KILL', '--container-user', '1000', '--host-directories', `${dir}:/data:ro`,
  ]);
  try {
    await waitForWarm(node, 'default', 1);
    const [info] = await containersOf(node);
    assert.ok(info);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(info.HostConfig.CapAdd, ['NET_BIND_SERVICE', 'CAP_KILL']);
    assert.equal(info.Config.User, '1000');
    assert.deepEqual(info.HostConfig.Binds, [`${dir}:/data:ro`]);

    assert.equal((await inside(info.Id, 'id -u')).output.trim(), '1000');
    assert.notEqual((await inside(info.Id, 'echo x > /home/user/x')).exitCode, 0, 'root filesystem read-only');
    assert.equal((await inside(info.Id, 'echo x > /tmp/x')).exitCode, 0, '/tmp still writable');
    assert.equal((await inside(info.Id, 'cat /data/shared.txt')).output, 'from the host\n');
    assert.notEqual((await inside(info.Id, 'echo x > /data/other')).exitCode, 0, 'mounted read-only');
    // A non-root process holds no effective capabilities; the bounding set is what was added back.
    const { output } = await inside(info.Id, 'grep CapBnd /proc/1/status');
    const bounding = BigInt('0x' + /CapBnd:\s*([0-9a-f]+)/.exec(output)![1]!);
    assert.equal(bounding, (1n << 10n) | (1n << 5n), 'NET_BIND_SERVICE (10) and KILL (5) only');

    const claim = await http(`${node.proxy.url}/spawn/tree`);
    assert.equal((await http(node.proxy.url + (claim.headers.location as string))).status, 200, 'the visitor is served');
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--docker-network: containers on the named network, routed by their address on it', async () => {
  const name = `nbpool-test-${randomBytes(4).toString('hex')}`;
  const network = await docker().createNetwork({ Name: name, Labels: { 'nbpool.test': 'hardening' } });
  const node = await startNode('hardnet', ['--pool-size', '1', '--docker-network', name]);
  try {
    await waitForWarm(node, 'default', 1);
    const [info] = await containersOf(node);
    assert.ok(info);
    const address = info.NetworkSettings.Networks[name]?.IPAddress;
    assert.ok(address, 'attached to the named network');
    assert.deepEqual(info.HostConfig.PortBindings ?? {}, {}, 'no port published on the host');
    const location = (await http(`${node.proxy.url}/spawn/tree`)).headers.location as string;
    const route = (await node.proxy.routes.getRoutes())[/^(\/user\/[^/]+)/.exec(location)![1]!];
    assert.equal(route?.target, `http://${address}:8888`);
    assert.equal((await http(node.proxy.url + location)).status, 200);
  } finally {
    await node.stop();
    await network.remove();
  }
});

/** A machine of our own at 10.251.N.2 (a network namespace with an HTTP listener), reached over a veth. */
async function namespaceHost(): Promise<{ address: string; port: number; stop(): Promise<void> }> {
  const tag = randomBytes(2).toString('hex');
  const ns = `nbeg-${tag}`;
  const subnet = 200 + (parseInt(tag, 16) % 50);
  const address = `10.251.${subnet}.2`;
  const port = await freePort();
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['link', 'add', `nbeg${tag}o`, 'type', 'veth', 'peer', 'name', `nbeg${tag}i`]);
  await run('ip', ['link', 'set', `nbeg${tag}i`, 'netns', ns]);
  await run('ip', ['addr', 'add', `10.251.${subnet}.1/24`, 'dev', `nbeg${tag}o`]);
  await run('ip', ['link', 'set', `nbeg${tag}o`, 'up']);
  for (const args of [['addr', 'add', `${address}/24`, 'dev', `nbeg${tag}i`], ['link', 'set', `nbeg${tag}i`, 'up'], ['link', 'set', 'lo', 'up'], ['route', 'add', 'default', 'via', `10.251.${subnet}.1`]]) {
    await run('nsenter', [`--net=/var/run/netns/${ns}`, 'ip', ...args]);
  }
  const server: ChildProcess = spawn('nsenter', [`--net=/var/run/netns/${ns}`, process.execPath, '-e',
    `require('http').createServer((q, s) => s.end('ok')).listen(${port}, '${address}')`], { stdio: 'ignore' });
  await waitFor(async () => (await fetch(`http://${address}:${port}/`)).ok, { what: 'the namespace host to answer' });
  return {
    address,
    port,
    async stop() {
      server.kill('SIGKILL');
      await run('ip', ['link', 'del', `nbeg${tag}o`]).catch(() => undefined);
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    },
  };
}

let outside: Awaited<ReturnType<typeof namespaceHost>>;
before(async () => {
  outside = await namespaceHost();
});
after(() => outside?.stop());

test('--no-egress: the proxy reaches the container; the container reaches no other machine, container or host address', async () => {
  // On the host, on the no-egress bridge's gateway address: what a container could try first.
  const hostPort = await freePort();
  const hostServer = spawn(process.execPath, ['-e', `require('http').createServer((q, s) => s.end('host')).listen(${hostPort}, '0.0.0.0')`], { stdio: 'ignore' });
  const isolated = await startNode('hardegress', ['--pool-size', '2', '--no-egress']);
  const open = await startNode('hardopen', ['--pool-size', '1']);
  try {
    await Promise.all([waitForWarm(isolated, 'default', 2), waitForWarm(open, 'default', 1)]);
    const [a, b] = await containersOf(isolated);
    const [control] = await containersOf(open);
    assert.ok(a && b && control);
    assert.deepEqual(Object.keys(a.NetworkSettings.Networks), [NO_EGRESS_NETWORK]);
    const net = await docker().getNetwork(NO_EGRESS_NETWORK).inspect();
    assert.equal(net.Internal, true);
    assert.equal(net.Options?.['com.docker.network.bridge.enable_icc'], 'false');
    const gateway = a.NetworkSettings.Networks[NO_EGRESS_NETWORK]!.Gateway;
    const peer = b.NetworkSettings.Networks[NO_EGRESS_NETWORK]!.IPAddress;
    const { stdout: rules } = await run('iptables', ['-w', '-S', 'INPUT']);
    assert.match(rules, new RegExp(`-A INPUT -i ${NO_EGRESS_BRIDGE} -j DROP`));

    // The proxy reaches it: a visitor is served.
    const location = (await http(`${isolated.proxy.url}/spawn/tree`)).headers.location as string;
    const page = await http(isolated.proxy.url + location);
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>tiny<\/title>/);

    // The control container, on the default bridge, reaches the same places...
    const controlGateway = control.NetworkSettings.Networks.bridge!.Gateway;
    assert.equal(await reaches(control.Id, outside.address, outside.port), true, 'a normal container reaches the other machine');
    assert.equal(await reaches(control.Id, controlGateway, hostPort), true, 'a normal container reaches the host');
    // ...the isolated one none of them.
    assert.equal(await reaches(a.Id, outside.address, outside.port), false, 'no other machine (10.x)');
    assert.equal(await reaches(a.Id, gateway, hostPort), false, 'no service on the host');
    assert.equal(await reaches(a.Id, peer, 8888), false, 'no other visitor\'s container');
  } finally {
    hostServer.kill('SIGKILL');
    await isolated.stop();
    await open.stop();
  }
});
