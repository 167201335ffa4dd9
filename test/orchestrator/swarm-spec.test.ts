/** The swarm backend's pure parts and the options only one engine understands (no engine needed). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Docker from 'dockerode';
import { openBackend } from '../../orchestrator/backends.js';
import { nodeMatches, serviceSpec, swarmCapacity, taskTarget, type SwarmNode, type SwarmTask } from '../../orchestrator/swarm-backend.js';
import { ConfigError } from '../../shared/errors.js';
import { testConfig } from './harness.js';

const GiB = 1024 ** 3;

function node(id: string, extra: Partial<{ role: string; availability: string; state: string; memory: number; labels: Record<string, string>; addr: string }> = {}): SwarmNode {
  return {
    ID: id,
    Spec: { Role: extra.role ?? 'worker', Availability: extra.availability ?? 'active', Labels: extra.labels ?? {} },
    Description: { Hostname: `host-${id}`, Resources: { MemoryBytes: extra.memory ?? 8 * GiB } },
    Status: { State: extra.state ?? 'ready', Addr: extra.addr ?? `10.0.0.${id.length}` },
  };
}

test('placement constraints are judged on the node fields they name; unknown ones count as met', () => {
  const n = node('abc', { role: 'worker', labels: { nbpool: 'yes' } });
  assert.ok(nodeMatches(n, ['node.role==worker', 'node.labels.nbpool==yes', 'node.hostname!=other']));
  assert.ok(!nodeMatches(n, ['node.role==manager']));
  assert.ok(!nodeMatches(n, ['node.labels.nbpool!=yes']));
  assert.ok(!nodeMatches(n, ['node.labels.gpu==true']));
  assert.ok(nodeMatches(n, ['engine.labels.ssd==true']));
});

test('capacity sums the ready, active nodes that fit the constraints, each with its own reserve', () => {
  const nodes = [
    node('m', { role: 'manager' }),
    node('w1'),
    node('w2', { memory: 4 * GiB }),
    node('down', { state: 'down' }),
    node('paused', { availability: 'pause' }),
  ];
  const perNode = (mem: number) => Math.floor((mem - Math.max(GiB, mem / 10)) / (512 * 1024 ** 2));
  assert.equal(swarmCapacity(nodes, ['node.role==worker'], 512 * 1024 ** 2), perNode(8 * GiB) + perNode(4 * GiB));
  assert.equal(swarmCapacity(nodes, [], 512 * 1024 ** 2), 2 * perNode(8 * GiB) + perNode(4 * GiB));
  assert.equal(swarmCapacity([], [], 512 * 1024 ** 2), 1);
});

test("a task's target: node address + host-mode published port, or its address on the overlay", () => {
  const nodes = new Map([['n1', node('n1', { addr: '10.252.1.11' })], ['mgr', { ...node('mgr', { addr: '0.0.0.0' }), ManagerStatus: { Addr: '10.252.1.1:2377' } }]]);
  const task: SwarmTask = {
    ID: 't',
    ServiceID: 's',
    NodeID: 'n1',
    Status: { State: 'running', PortStatus: { Ports: [{ TargetPort: 8888, PublishedPort: 30001 }] } },
    NetworksAttachments: [{ Network: { ID: 'x', Spec: { Name: 'nbnet' } }, Addresses: ['10.253.0.7/24'] }],
  };
  assert.equal(taskTarget(task, nodes, 8888, undefined), 'http://10.252.1.11:30001');
  assert.equal(taskTarget({ ...task, NodeID: 'mgr' }, nodes, 8888, undefined), 'http://10.252.1.1:30001');
  assert.equal(taskTarget(task, nodes, 8888, 'nbnet'), 'http://10.253.0.7:8888');
  assert.equal(taskTarget(task, nodes, 9999, undefined), undefined);
});

test('the service: one replica, no restarts, labels on service and container, limits and memory reservation', () => {
  const spec = serviceSpec(
    { name: 'i-default-x', image: 'img', cmd: ['run', '--port', '8888'], env: ['A=1'], labels: { 'nbpool.instance': 'i' }, port: 8888, publishIp: '127.0.0.1', memoryBytes: 64 << 20, cpuQuota: 50_000, pidsLimit: 100, binds: ['/data:/data:ro'], capAdd: ['CHOWN'], readOnlyRoot: true, tmpfs: ['/tmp'], egress: true },
    ['node.role==worker'],
  ) as { Labels: Record<string, string>; TaskTemplate: Record<string, Record<string, unknown>>; Mode: unknown; EndpointSpec: { Ports: unknown[] } };
  assert.equal(spec.Labels['nbpool.instance'], 'i');
  assert.equal(spec.Labels['nbpool.port'], '8888');
  assert.deepEqual(spec.Mode, { Replicated: { Replicas: 1 } });
  assert.deepEqual(spec.TaskTemplate.RestartPolicy, { Condition: 'none' });
  assert.deepEqual(spec.TaskTemplate.Resources, { Limits: { MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, Pids: 100 }, Reservations: { MemoryBytes: 64 << 20 } });
  assert.deepEqual(spec.TaskTemplate.Placement, { Constraints: ['node.role==worker'] });
  assert.deepEqual(spec.TaskTemplate.ContainerSpec!.Args, ['run', '--port', '8888']);
  assert.deepEqual(spec.TaskTemplate.ContainerSpec!.Mounts, [
    { Type: 'bind', Source: '/data', Target: '/data', ReadOnly: true },
    { Type: 'tmpfs', Target: '/tmp' },
  ]);
  assert.deepEqual(spec.TaskTemplate.ContainerSpec!.CapabilityDrop, ['ALL'], 'hardened as on plain Docker');
  assert.deepEqual(spec.TaskTemplate.ContainerSpec!.CapabilityAdd, ['CHOWN']);
  assert.equal(spec.TaskTemplate.ContainerSpec!.ReadOnly, true);
  assert.deepEqual(spec.EndpointSpec.Ports, [{ Protocol: 'tcp', TargetPort: 8888, PublishMode: 'host' }]);
});

test('engine-specific options are refused by the backend that cannot honour them, in one line', async () => {
  const unreachable = new Docker({ socketPath: '/nonexistent/docker.sock' });
  await assert.rejects(openBackend(testConfig('x', ['--placement-constraint', 'node.role==worker']), unreachable), (e: Error) => e instanceof ConfigError && /needs --backend swarm/.test(e.message));
  await assert.rejects(openBackend(testConfig('x', ['--backend', 'swarm', '--cpu-shares', '512']), unreachable), (e: Error) => e instanceof ConfigError && /--cpu-shares: swarm services have no CPU shares/.test(e.message));
  await assert.rejects(openBackend(testConfig('x', ['--backend', 'swarm', '--claim-hook', 'true']), unreachable), (e: Error) => e instanceof ConfigError && /claim-hook/.test(e.message));
  await assert.rejects(openBackend(testConfig('x', ['--backend', 'swarm', '--no-egress']), unreachable), (e: Error) => e instanceof ConfigError && /--no-egress/.test(e.message));
  await assert.rejects(openBackend(testConfig('x', ['--backend', 'swarm']), unreachable), (e: Error) => e instanceof ConfigError && /^--backend swarm: /.test(e.message));
  const { backend } = await openBackend(testConfig('x'), unreachable);
  assert.equal(backend.kind, 'docker');
});
