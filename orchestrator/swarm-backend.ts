/**
 * ContainerBackend on Docker Swarm: each pooled container is a one-replica service (restart policy
 * none: a dead task is the orchestrator's to replace, as with plain containers), placed by the
 * swarm's scheduler, which spreads services over nodes by their task counts. `containerId` is the
 * service id; labels on the service are the truth for adoption, and a claim is one more label.
 *
 * The proxy reaches a task either on its node's address and a host-mode published port (default:
 * works for a proxy outside the swarm's networks, e.g. `nbpool up` on a manager), or, with a network
 * (--docker-network naming an overlay network the proxy is attached to), on the task's address
 * there. Must talk to a manager. Swarm has no exec across nodes, so no claim hooks.
 */
import Docker from 'dockerode';
import type { ContainerBackend, ContainerSpec, FoundContainer, StartedContainer } from './backend.js';
import { acquireInstanceOn, engineClient } from './docker-backend.js';
import { defaultCapacity } from './config.js';

const PORT_LABEL = 'nbpool.port';
const NETWORK_LABEL = 'nbpool.network';
/** Services cannot be renamed; a claim is marked by this label (updating labels leaves the task alone). */
const CLAIMED_LABEL = 'nbpool.claimed';

/** The parts of the engine's answers this backend reads (dockerode's types are loose here). */
export interface SwarmNode {
  ID: string;
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Description?: { Hostname?: string; Platform?: { OS?: string; Architecture?: string }; Resources?: { MemoryBytes?: number } };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Addr?: string };
}

export interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  DesiredState?: string;
  Status?: { State?: string; Err?: string; Message?: string; PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number }[] } };
  NetworksAttachments?: { Network?: { ID?: string; Spec?: { Name?: string } }; Addresses?: string[] }[];
}

interface SwarmService {
  ID: string;
  Version?: { Index?: number };
  Spec?: { Name?: string; Labels?: Record<string, string> };
}

/** Task states after which a task never runs again. */
const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** The address other machines reach a node on (a manager may report 0.0.0.0 as its own). */
export function nodeAddress(node: SwarmNode): string | undefined {
  const addr = node.Status?.Addr;
  if (addr && addr !== '0.0.0.0') return addr;
  return node.ManagerStatus?.Addr?.replace(/:\d+$/, '');
}

/** Where the proxy reaches a running task: its overlay address on `network`, or node address + published port. */
export function taskTarget(task: SwarmTask, nodes: ReadonlyMap<string, SwarmNode>, port: number, network: string | undefined): string | undefined {
  if (network) {
    const attachment = task.NetworksAttachments?.find((a) => a.Network?.Spec?.Name === network || a.Network?.ID === network);
    const address = attachment?.Addresses?.[0]?.split('/')[0];
    return address ? `http://${address}:${port}` : undefined;
  }
  const published = task.Status?.PortStatus?.Ports?.find((p) => p.TargetPort === port)?.PublishedPort;
  const node = task.NodeID ? nodes.get(task.NodeID) : undefined;
  const address = node && nodeAddress(node);
  return published && address ? `http://${address}:${published}` : undefined;
}

/** A task that runs and is meant to: a task on a node gone down gets desired state shutdown. */
function isLive(task: SwarmTask): boolean {
  return task.DesiredState === 'running' && task.Status?.State === 'running';
}

/**
 * Whether a node satisfies swarm placement constraints (`node.role==worker`, `node.labels.x!=y`,
 * `node.hostname`, `node.id`, `node.platform.os|arch`). Others (engine labels) cannot be judged
 * from here and count as satisfied.
 */
export function nodeMatches(node: SwarmNode, constraints: readonly string[]): boolean {
  return constraints.every((constraint) => {
    const m = /^\s*([\w.-]+)\s*(==|!=)\s*(.*?)\s*$/.exec(constraint);
    if (!m) return true;
    const [, key, op, want] = m as unknown as [string, string, string, string];
    let have: string | undefined;
    if (key === 'node.role') have = node.Spec?.Role;
    else if (key === 'node.hostname') have = node.Description?.Hostname;
    else if (key === 'node.id') have = node.ID;
    else if (key === 'node.platform.os') have = node.Description?.Platform?.OS;
    else if (key === 'node.platform.arch') have = node.Description?.Platform?.Architecture;
    else if (key.startsWith('node.labels.')) have = node.Spec?.Labels?.[key.slice('node.labels.'.length)];
    else return true;
    return op === '==' ? have === want : have !== want;
  });
}

/** Containers of `memoryBytes` the swarm holds: per ready, active node that fits the constraints, as on one host. */
export function swarmCapacity(nodes: readonly SwarmNode[], constraints: readonly string[], memoryBytes: number): number {
  let total = 0;
  for (const node of nodes) {
    const memory = node.Description?.Resources?.MemoryBytes;
    if (node.Status?.State !== 'ready' || node.Spec?.Availability !== 'active' || !memory || !nodeMatches(node, constraints)) continue;
    total += defaultCapacity(memoryBytes, memory);
  }
  return Math.max(1, total);
}

/** The service for one pooled container. */
export function serviceSpec(spec: ContainerSpec, constraints: readonly string[]): Record<string, unknown> {
  const labels = { ...spec.labels, [PORT_LABEL]: String(spec.port), ...(spec.network ? { [NETWORK_LABEL]: spec.network } : {}) };
  return {
    Name: spec.name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        // Args, not Command: like `docker run IMAGE CMD...`, the image's entrypoint stays.
        Args: spec.cmd,
        Env: spec.env,
        Labels: labels,
        User: spec.user,
        Mounts: [
          ...spec.binds.map((bind) => {
            const [source, target, mode] = bind.split(':');
            return { Type: 'bind', Source: source, Target: target, ReadOnly: mode === 'ro' };
          }),
          ...spec.tmpfs.map((target) => ({ Type: 'tmpfs', Target: target })),
        ],
        // Hardened as on plain Docker (API 1.41): every capability dropped but those the pool adds back.
        CapabilityDrop: ['ALL'],
        CapabilityAdd: spec.capAdd.length ? spec.capAdd : undefined,
        ReadOnly: spec.readOnlyRoot || undefined,
      },
      Resources: {
        Limits: {
          MemoryBytes: spec.memoryBytes,
          NanoCPUs: spec.cpuQuota ? Math.round((spec.cpuQuota / 100_000) * 1e9) : undefined,
          Pids: spec.pidsLimit,
        },
        // Memory is reserved so the scheduler places by it; CPU is shared (notebooks idle mostly).
        Reservations: { MemoryBytes: spec.memoryBytes },
      },
      RestartPolicy: { Condition: 'none' },
      Placement: { Constraints: constraints.length ? [...constraints] : undefined },
      Networks: spec.network ? [{ Target: spec.network }] : undefined,
    },
    Mode: { Replicated: { Replicas: 1 } },
    // dnsrr: no virtual IP to allocate (nobody reaches these by service name).
    EndpointSpec: spec.network
      ? { Mode: 'dnsrr' }
      : { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: spec.port, PublishMode: 'host' }] },
  };
}

export interface SwarmBackendOptions {
  /** Placement constraints of every service (--placement-constraint). */
  constraints?: readonly string[];
  /** How long a new service's task may take to run before start() gives up. */
  startTimeoutMs?: number;
}

/** How often the tasks of starting services are polled. */
const START_POLL_MS = 100;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class SwarmBackend implements ContainerBackend {
  readonly kind = 'swarm';
  readonly capabilities = { exec: false };
  private readonly constraints: readonly string[];
  private readonly startTimeoutMs: number;
  /** Services whose task start() waits for, by service id. */
  private readonly starting = new Map<string, { resolve(task: SwarmTask): void; reject(err: Error): void }>();
  /** The last state seen of each starting service's task, for the timeout's message. */
  private readonly lastSeen = new Map<string, string>();
  private polling = false;
  /** Nodes by id, refreshed when a task lands on a node not in it. */
  private nodeCache = new Map<string, SwarmNode>();

  constructor(
    readonly docker: Docker = engineClient(),
    options: SwarmBackendOptions = {},
  ) {
    this.constraints = options.constraints ?? [];
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
  }
  /** The instance's owner marker lives on the manager engine, as with plain Docker. */
  acquireInstance(instance: string): Promise<() => Promise<void>> {
    return acquireInstanceOn(this.docker, instance);
  }


  /** Checks that the engine is a swarm manager and that `network` (if any) is a swarm-scoped network. */
  async check(network: string | undefined): Promise<void> {
    const info = (await this.docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
      throw new Error('this Docker engine is not a swarm manager (run `docker swarm init`, or point DOCKER_HOST at a manager)');
    }
    if (network) {
      const net = (await this.docker.getNetwork(network).inspect().catch(() => undefined)) as { Scope?: string; Driver?: string } | undefined;
      if (!net) throw new Error(`network ${network} does not exist (docker network create -d overlay --attachable ${network})`);
      if (net.Scope !== 'swarm') throw new Error(`network ${network} is a ${net.Scope ?? 'local'} ${net.Driver ?? ''} network; services need a swarm-scoped one (an overlay)`);
    }
  }

  async nodes(): Promise<SwarmNode[]> {
    return (await this.docker.listNodes()) as SwarmNode[];
  }

  async capacity(memoryBytes: number): Promise<number> {
    return swarmCapacity(await this.nodes(), this.constraints, memoryBytes);
  }

  async start(spec: ContainerSpec, signal?: AbortSignal): Promise<StartedContainer> {
    const service = (await this.docker.createService(serviceSpec(spec, this.constraints) as Docker.CreateServiceOptions)) as { id: string };
    try {
      return { containerId: service.id, target: await this.untilRunning(service.id, spec, signal) };
    } catch (err) {
      // Leave nothing behind: the caller only knows the service once start() returns.
      await this.remove(service.id).catch(() => undefined);
      throw err;
    }
  }

  /** Waits for the service's task to run (then its target) or to end without running. */
  private async untilRunning(serviceId: string, spec: ContainerSpec, signal?: AbortSignal): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const settled = new Promise<SwarmTask>((resolve, reject) => {
      this.starting.set(serviceId, { resolve, reject });
      timer = setTimeout(() => reject(new Error(`service ${spec.name}: no task running within ${this.startTimeoutMs / 1000} s (${this.lastSeen.get(serviceId) ?? 'no task yet'})`)), this.startTimeoutMs);
      onAbort = () => reject(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      void this.pollStarting();
    });
    try {
      const task = await settled;
      if (!isLive(task)) throw new Error(`service ${spec.name}: task ${task.Status?.State}: ${task.Status?.Err || task.Status?.Message || 'no reason given'}`);
      let nodes = this.nodeCache;
      if (!spec.network && task.NodeID && !nodes.has(task.NodeID)) nodes = this.nodeCache = new Map((await this.nodes()).map((n) => [n.ID, n]));
      const target = taskTarget(task, nodes, spec.port, spec.network);
      if (!target) throw new Error(`service ${spec.name} runs but has no address for port ${spec.port}`);
      return target;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      this.starting.delete(serviceId);
      this.lastSeen.delete(serviceId);
    }
  }

  /**
   * One poller for every start in flight: one tasks list a tick, whatever the number of services
   * starting (the engine has no task events; a poll per start would load the manager 8 times over).
   */
  private async pollStarting(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      while (this.starting.size > 0) {
        await sleep(START_POLL_MS);
        const ids = [...this.starting.keys()];
        if (ids.length === 0) break;
        let tasks: SwarmTask[];
        try {
          tasks = (await this.docker.listTasks({ filters: { service: ids } })) as SwarmTask[];
        } catch {
          continue; // The start's own deadline bounds a manager that stops answering.
        }
        for (const task of tasks) {
          const waiter = this.starting.get(task.ServiceID);
          if (!waiter) continue;
          this.lastSeen.set(task.ServiceID, `${task.Status?.State}: ${task.Status?.Err || task.Status?.Message || ''}`);
          if (isLive(task) || TERMINAL.has(task.Status?.State ?? '')) {
            this.starting.delete(task.ServiceID);
            waiter.resolve(task);
          }
        }
      }
    } finally {
      this.polling = false;
    }
  }

  /** One services list, one tasks list, one nodes list, whatever the pool size. */
  async list(label: string, value: string): Promise<FoundContainer[]> {
    const services = (await this.docker.listServices({ filters: { label: [`${label}=${value}`] } })) as SwarmService[];
    if (services.length === 0) return [];
    const [tasks, nodeList] = await Promise.all([
      this.docker.listTasks({ filters: { label: [`${label}=${value}`], 'desired-state': ['running'] } }) as Promise<SwarmTask[]>,
      this.nodes(),
    ]);
    const nodes = new Map(nodeList.map((n) => [n.ID, n]));
    const live = new Map<string, SwarmTask>();
    for (const task of tasks) if (isLive(task)) live.set(task.ServiceID, task);
    return services.map((service) => {
      const labels = service.Spec?.Labels ?? {};
      const task = live.get(service.ID);
      const target = task ? taskTarget(task, nodes, Number(labels[PORT_LABEL] ?? 0), labels[NETWORK_LABEL]) : undefined;
      const availability = task?.NodeID ? nodes.get(task.NodeID)?.Spec?.Availability : undefined;
      return {
        containerId: service.ID,
        name: service.Spec?.Name ?? '',
        labels,
        running: task !== undefined,
        target,
        claimed: labels[CLAIMED_LABEL] === 'true',
        // Paused: swarm places nothing new there and keeps what runs (drain stops every task).
        leaving: availability !== undefined && availability !== 'active',
      };
    });
  }

  async isRunning(containerId: string): Promise<boolean> {
    try {
      const tasks = (await this.docker.listTasks({ filters: { service: [containerId], 'desired-state': ['running'] } })) as SwarmTask[];
      return tasks.some(isLive);
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
  }

  async remove(containerId: string): Promise<void> {
    try {
      await this.docker.getService(containerId).remove();
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw err;
    }
  }

  async markClaimed(containerId: string): Promise<void> {
    const service = this.docker.getService(containerId);
    // The update carries the spec's version: a concurrent update makes it fail, so read again.
    for (let attempt = 1; ; attempt++) {
      const info = (await service.inspect()) as SwarmService & { Spec: Record<string, unknown> & { Labels?: Record<string, string> } };
      if (info.Spec.Labels?.[CLAIMED_LABEL] === 'true') return;
      try {
        await service.update({ _query: { version: info.Version?.Index }, _body: { ...info.Spec, Labels: { ...info.Spec.Labels, [CLAIMED_LABEL]: 'true' } } });
        return;
      } catch (err) {
        if (attempt >= 3 || statusCode(err) === 404) throw err;
      }
    }
  }
}
