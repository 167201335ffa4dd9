/** ContainerBackend on a Docker engine through dockerode; DOCKER_HOST (unix, tcp, tls) is honoured by docker-modem. */
import { execFile } from 'node:child_process';
import { Agent } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { inspect, promisify } from 'node:util';
import Docker from 'dockerode';
import { OWNER_LABEL, type ContainerBackend, type ContainerSpec, type EngineWatcher, type ExecResult, type FoundContainer, type StartedContainer } from './backend.js';
import { currentOwner, InstanceTaken, ownerMayLive, type InstanceOwner } from './instance-owner.js';

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** Where the proxy reaches a container: its published host port, or its address on `network`. */
function targetOf(info: Docker.ContainerInspectInfo | Docker.ContainerInfo, port: number, network: string | undefined): string | undefined {
  if (network) {
    const networks = 'NetworkSettings' in info ? info.NetworkSettings.Networks : undefined;
    const address = networks?.[network]?.IPAddress;
    return address ? `http://${address}:${port}` : undefined;
  }
  if ('Ports' in info && Array.isArray(info.Ports)) {
    const binding = info.Ports.find((p) => p.PrivatePort === port && p.PublicPort);
    if (!binding) return undefined;
    return `http://${hostFor(binding.IP)}:${binding.PublicPort}`;
  }
  const bindings = (info as Docker.ContainerInspectInfo).NetworkSettings.Ports?.[`${port}/tcp`];
  const binding = bindings?.find((b) => b.HostPort);
  return binding ? `http://${hostFor(binding.HostIp)}:${binding.HostPort}` : undefined;
}

/** A port published on every address is reached on loopback. */
function hostFor(ip: string | undefined): string {
  if (!ip || ip === '0.0.0.0' || ip === '::') return '127.0.0.1';
  return ip.includes(':') ? `[${ip}]` : ip;
}

/** Reconnecting to a lost engine: first try soon, then no more often than this. */
const WATCH_RETRY_MAX_MS = 5_000;

interface DockerEvent {
  Type?: string;
  Action?: string;
  id?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/**
 * --no-egress: one internal network (no route out of its subnet) with inter-container traffic off,
 * on a bridge of a fixed name so the host-side rule below names it. The host still routes to the
 * containers (that is how the proxy reaches them); replies come back, nothing else gets in.
 */
export const NO_EGRESS_NETWORK = 'nbpool-no-egress';
export const NO_EGRESS_BRIDGE = 'nbp-noegress';

/**
 * An internal Docker network still lets its containers open connections to the host's own
 * addresses (the INPUT chain, which Docker leaves alone): only replies to connections the host
 * opened may come in from the bridge. Idempotent (`-C` checks before `-I` inserts).
 */
async function closeHostToNoEgressBridge(): Promise<void> {
  const run = promisify(execFile);
  const rules = [
    ['-i', NO_EGRESS_BRIDGE, '-j', 'DROP'],
    ['-i', NO_EGRESS_BRIDGE, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
  ];
  try {
    for (const rule of rules) await run('iptables', ['-w', '-C', 'INPUT', ...rule]).catch(() => run('iptables', ['-w', '-I', 'INPUT', '1', ...rule]));
  } catch (err) {
    throw new Error(`--no-egress needs iptables on the engine's host (as root) to keep containers off the host's own addresses: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Instance ownership: a container named `<instance>.owner`, created and never started (the engine
 * refuses a second container of one name: 409), from an empty image made here (nothing to pull;
 * any pool image may be missing). Labels name the owner. Never carries the instance label, so no
 * listing of the instance's containers sees it.
 */
const OWNER_IMAGE = 'nbpool/owner-marker:1';
const ownerName = (instance: string) => `${instance}.owner`;
/** An empty tar archive: two zero blocks. */
const EMPTY_TAR = Buffer.alloc(1024);

function ownerFromLabels(labels: Record<string, string>): InstanceOwner {
  return {
    host: labels['nbpool.owner.host'] ?? '',
    boot: labels['nbpool.owner.boot'] ?? '',
    pid: Number(labels['nbpool.owner.pid']),
    started: labels['nbpool.owner.started'] ?? '',
    since: labels['nbpool.owner.since'] ?? '',
  };
}

/** Docker labels cannot change after creation, so a claim is marked durably by a name suffix. */
const CLAIMED_SUFFIX = '-claimed';

/**
 * The engine client, from DOCKER_HOST and friends as the docker CLI reads them. Over plain HTTP
 * (unix socket or tcp) each call opens its own connection: Node's default agent would reuse a
 * socket to an engine that is shutting down, whose calls then succeed and fail by turns for
 * seconds, while a fresh connection says at once that nobody listens (engine-link.ts).
 */
export function engineClient(): Docker {
  return process.env.DOCKER_CERT_PATH || process.env.DOCKER_TLS_VERIFY ? new Docker() : new Docker({ agent: new EngineAgent({ keepAlive: false }) } as Docker.DockerOptions); // docker-modem takes `agent`; the typings omit it
}

/**
 * docker-modem formats every request's options with `util.inspect(..., { showHidden: true, depth:
 * null })` for its debug log, enabled or not; an agent in them would be printed with every socket
 * it holds, which made that line most of the orchestrator's CPU during a burst of claims
 * (bench:claim-profile). Shown as one word instead.
 */
class EngineAgent extends Agent {
  [inspect.custom](): string {
    return 'EngineAgent';
  }
}

export class DockerBackend implements ContainerBackend {
  readonly kind = 'docker';
  readonly capabilities = { exec: true };
  private noEgress: Promise<string> | undefined;
  /**
   * Engine names of the containers this backend started or listed, so a claim marker is one engine
   * call (rename), not two (inspect for the name, then rename): 60 claims at once queue 60 markers
   * beside the refill's starts.
   */
  private readonly names = new Map<string, string>();

  constructor(
    readonly docker: Docker = engineClient(),
    private readonly portLabel = 'nbpool.port',
    private readonly networkLabel = 'nbpool.network',
  ) {}

  /** The --no-egress network, created on first use (or found) and its host rule in place. */
  private noEgressNetwork(): Promise<string> {
    const modem = this.docker.modem as { host?: string; protocol?: string };
    if (modem.host || modem.protocol === 'ssh') {
      return Promise.reject(new Error('--no-egress needs the Docker engine on this machine (DOCKER_HOST names another)'));
    }
    this.noEgress ??= (async () => {
      try {
        await this.docker.getNetwork(NO_EGRESS_NETWORK).inspect();
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
        await this.docker
          .createNetwork({
            Name: NO_EGRESS_NETWORK,
            Internal: true,
            CheckDuplicate: true,
            Labels: { 'nbpool.role': 'no-egress' },
            Options: { 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.name': NO_EGRESS_BRIDGE },
          })
          // Another orchestrator created it in the meantime: use theirs.
          .catch((e: unknown) => (statusCode(e) === 409 ? undefined : Promise.reject(e)));
      }
      await closeHostToNoEgressBridge();
      return NO_EGRESS_NETWORK;
    })();
    this.noEgress.catch(() => (this.noEgress = undefined));
    return this.noEgress;
  }

  async start(spec: ContainerSpec, signal?: AbortSignal): Promise<StartedContainer> {
    if (!spec.egress && spec.network) throw new Error('a container without egress gets a network of its own; do not name one');
    const network = spec.egress ? spec.network : await this.noEgressNetwork();
    const portKey = `${spec.port}/tcp`;
    const labels = { ...spec.labels, [this.portLabel]: String(spec.port), ...(network ? { [this.networkLabel]: network } : {}) };
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Cmd: spec.cmd.length ? spec.cmd : undefined,
      Env: spec.env,
      Labels: labels,
      User: spec.user,
      ExposedPorts: { [portKey]: {} },
      HostConfig: {
        PortBindings: network ? undefined : { [portKey]: [{ HostIp: spec.publishIp, HostPort: '' }] },
        NetworkMode: network,
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        CpuQuota: spec.cpuQuota,
        CpuPeriod: spec.cpuQuota ? 100_000 : undefined,
        CpuShares: spec.cpuShares,
        PidsLimit: spec.pidsLimit,
        SecurityOpt: ['no-new-privileges'],
        CapDrop: ['ALL'],
        CapAdd: spec.capAdd.length ? spec.capAdd : undefined,
        ReadonlyRootfs: spec.readOnlyRoot,
        Tmpfs: Object.fromEntries(spec.tmpfs.map((path) => [path, 'rw,nosuid,nodev,mode=1777'])),
        Binds: spec.binds.length ? spec.binds : undefined,
      },
      abortSignal: signal,
    } as Docker.ContainerCreateOptions);
    try {
      await container.start({ abortSignal: signal } as object);
      const info = await container.inspect({ abortSignal: signal } as object);
      const target = targetOf(info, spec.port, network);
      if (!target) throw new Error(`container ${spec.name} started but has no address for port ${spec.port}`);
      this.names.set(info.Id, spec.name);
      return { containerId: info.Id, target };
    } catch (err) {
      // Leave nothing behind: the caller only knows the container once start() returns.
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
  }

  async list(label: string, value: string): Promise<FoundContainer[]> {
    const infos = await this.docker.listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
    // The orchestrator lists by its instance label, which every container it starts carries: a
    // name not listed is of a container gone behind our back (removed by hand, lost with the
    // engine), which remove() never saw. Forgotten, so a long-running node's map stays bounded (a
    // start racing this listing may lose its entry: its marker then reads the name first).
    const listed = new Set(infos.map((info) => info.Id));
    for (const id of this.names.keys()) if (!listed.has(id)) this.names.delete(id);
    return infos.map((info) => {
      const port = Number(info.Labels[this.portLabel] ?? 0);
      const running = info.State === 'running';
      const name = (info.Names[0] ?? '').replace(/^\//, '');
      this.names.set(info.Id, name);
      return {
        containerId: info.Id,
        name,
        claimed: name.endsWith(CLAIMED_SUFFIX),
        labels: info.Labels,
        running,
        target: running ? targetOf(info, port, info.Labels[this.networkLabel]) : undefined,
      };
    });
  }

  async isRunning(containerId: string): Promise<boolean> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      return info.State.Running;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
  }

  async remove(containerId: string, signal?: AbortSignal): Promise<void> {
    this.names.delete(containerId);
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true, abortSignal: signal });
    } catch (err) {
      // 404: already gone; 409 "removal already in progress": the engine finishes it.
      if (statusCode(err) === 404 || statusCode(err) === 409) return;
      throw err;
    }
  }

  watch(label: string, value: string, watcher: EngineWatcher): () => void {
    let stopped = false;
    let lost = false;
    let attempt = 0;
    let stream: NodeJS.ReadableStream | undefined;
    let retry: NodeJS.Timeout | undefined;
    /** Containers the engine said ran out of memory; their `die` event follows. */
    const oomKilled = new Set<string>();

    const broken = (err: Error) => {
      stream = undefined;
      if (stopped) return;
      if (!lost) {
        lost = true;
        watcher.lost(err);
      }
      retry = setTimeout(connect, Math.min(WATCH_RETRY_MAX_MS, 250 * 2 ** attempt++));
      retry.unref();
    };
    const onEvent = (event: DockerEvent) => {
      const id = event.id;
      if (event.Type !== 'container' || !id) return;
      if (event.Action === 'oom') oomKilled.add(id);
      else if (event.Action === 'die') {
        const code = event.Actor?.Attributes?.exitCode;
        watcher.exited(id, oomKilled.delete(id) ? 'out of memory' : `exited with code ${code ?? '?'}`);
      } else if (event.Action === 'destroy') watcher.exited(id, 'removed');
    };
    const connect = async () => {
      try {
        const events = await this.docker.getEvents({ filters: { type: ['container'], label: [`${label}=${value}`], event: ['oom', 'die', 'destroy'] } });
        if (stopped) return void (events as unknown as { destroy(): void }).destroy();
        stream = events;
        attempt = 0;
        let buffered = '';
        events.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          let newline: number;
          while ((newline = buffered.indexOf('\n')) !== -1) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line) onEvent(JSON.parse(line) as DockerEvent);
          }
        });
        let ended = false;
        const end = (err?: Error) => {
          if (ended) return;
          ended = true;
          broken(err ?? new Error('the engine closed its event stream'));
        };
        events.on('error', end);
        events.on('end', () => end());
        events.on('close', () => end());
        if (lost) {
          lost = false;
          watcher.restored();
        }
      } catch (err) {
        broken(err as Error);
      }
    };
    void connect();
    return () => {
      stopped = true;
      clearTimeout(retry);
      (stream as unknown as { destroy?(): void } | undefined)?.destroy?.();
    };
  }

  acquireInstance(instance: string): Promise<() => Promise<void>> {
    return acquireInstanceOn(this.docker, instance);
  }

  async markClaimed(containerId: string): Promise<void> {
    const container = this.docker.getContainer(containerId);
    const name = this.names.get(containerId) ?? (await container.inspect()).Name.replace(/^\//, '');
    const claimedName = name.endsWith(CLAIMED_SUFFIX) ? name : name + CLAIMED_SUFFIX;
    if (claimedName !== name) await container.rename({ name: claimedName });
    this.names.set(containerId, claimedName);
  }

  async exec(containerId: string, cmd: string[], env: string[], timeoutMs: number): Promise<ExecResult> {
    const signal = AbortSignal.timeout(timeoutMs);
    const exec = await this.docker.getContainer(containerId).exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true, abortSignal: signal } as Docker.ExecCreateOptions);
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (d: Buffer) => {
      if (chunks.length < 256) chunks.push(d);
    });
    this.docker.modem.demuxStream(stream, sink, sink);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        stream.destroy();
        reject(new Error(`command did not finish within ${timeoutMs} ms`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stream.on('end', () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      stream.on('error', reject);
    });
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8').slice(0, 4096) };
  }
}

/**
 * Takes `instance` on an engine through its owner marker container (see OWNER_IMAGE). Shared by the
 * Swarm backend, whose manager engine holds the marker the same way.
 */
export async function acquireInstanceOn(docker: Docker, instance: string): Promise<() => Promise<void>> {
  const me = currentOwner();
  const name = ownerName(instance);
  for (let attempt = 0; attempt < 3; attempt++) {
    let created: Docker.Container;
    try {
      created = await createOwnerMarker(docker, name, instance, me);
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      let found: Docker.ContainerInspectInfo;
      try {
        found = await docker.getContainer(name).inspect();
      } catch (e) {
        if (statusCode(e) === 404) continue; // released in between: try again
        throw e;
      }
      const owner = ownerFromLabels(found.Config.Labels ?? {});
      if (ownerMayLive(owner, me)) throw new InstanceTaken(instance, owner, `docker rm ${name}`);
      // Provably gone (its pid is dead on this machine): take over. By id, so a newer owner that
      // raced us to it is never removed.
      await removeMarker(docker, found.Id);
      continue;
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      await removeMarker(docker, created.id);
    };
  }
  throw new Error(`could not take instance ${JSON.stringify(instance)}: its owner marker ${name} keeps changing hands`);
}

async function createOwnerMarker(docker: Docker, name: string, instance: string, owner: InstanceOwner): Promise<Docker.Container> {
  const options = {
    name,
    Image: OWNER_IMAGE,
    Cmd: ['owner-marker'],
    Labels: {
      [OWNER_LABEL]: instance,
      'nbpool.owner.host': owner.host,
      'nbpool.owner.boot': owner.boot,
      'nbpool.owner.pid': String(owner.pid),
      'nbpool.owner.started': owner.started,
      'nbpool.owner.since': owner.since,
    },
    HostConfig: { NetworkMode: 'none' },
  };
  try {
    return await docker.createContainer(options);
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
    // No marker image on this engine yet: import an empty one, then again.
    const progress = await docker.importImage(Readable.from([EMPTY_TAR]), { repo: OWNER_IMAGE.split(':')[0], tag: OWNER_IMAGE.split(':')[1] });
    await new Promise((resolve, reject) => docker.modem.followProgress(progress, (e: Error | null) => (e ? reject(e) : resolve(undefined))));
    return docker.createContainer(options);
  }
}

async function removeMarker(docker: Docker, id: string): Promise<void> {
  await docker.getContainer(id).remove({ force: true }).catch((err: unknown) => {
    if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
  });
}
