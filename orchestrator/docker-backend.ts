/** ContainerBackend on a Docker engine through dockerode; DOCKER_HOST (unix, tcp, tls) is honoured by docker-modem. */
import Docker from 'dockerode';
import { PassThrough } from 'node:stream';
import type { ContainerBackend, ContainerSpec, EngineWatcher, ExecResult, FoundContainer, StartedContainer } from './backend.js';

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

/** Docker labels cannot change after creation, so a claim is marked durably by a name suffix. */
const CLAIMED_SUFFIX = '-claimed';

export class DockerBackend implements ContainerBackend {
  readonly kind = 'docker';
  readonly capabilities = { exec: true };

  constructor(
    readonly docker: Docker = new Docker(),
    private readonly portLabel = 'nbpool.port',
    private readonly networkLabel = 'nbpool.network',
  ) {}

  async start(spec: ContainerSpec, signal?: AbortSignal): Promise<StartedContainer> {
    const portKey = `${spec.port}/tcp`;
    const labels = { ...spec.labels, [this.portLabel]: String(spec.port), ...(spec.network ? { [this.networkLabel]: spec.network } : {}) };
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Cmd: spec.cmd.length ? spec.cmd : undefined,
      Env: spec.env,
      Labels: labels,
      User: spec.user,
      ExposedPorts: { [portKey]: {} },
      HostConfig: {
        PortBindings: spec.network ? undefined : { [portKey]: [{ HostIp: spec.publishIp, HostPort: '' }] },
        NetworkMode: spec.network,
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        CpuQuota: spec.cpuQuota,
        CpuPeriod: spec.cpuQuota ? 100_000 : undefined,
        CpuShares: spec.cpuShares,
        PidsLimit: spec.pidsLimit,
        SecurityOpt: ['no-new-privileges'],
        Binds: spec.binds.length ? spec.binds : undefined,
      },
      abortSignal: signal,
    } as Docker.ContainerCreateOptions);
    try {
      await container.start({ abortSignal: signal } as object);
      const info = await container.inspect({ abortSignal: signal } as object);
      const target = targetOf(info, spec.port, spec.network);
      if (!target) throw new Error(`container ${spec.name} started but has no address for port ${spec.port}`);
      return { containerId: info.Id, target };
    } catch (err) {
      // Leave nothing behind: the caller only knows the container once start() returns.
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
  }

  async list(label: string, value: string): Promise<FoundContainer[]> {
    const infos = await this.docker.listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
    return infos.map((info) => {
      const port = Number(info.Labels[this.portLabel] ?? 0);
      const running = info.State === 'running';
      const name = (info.Names[0] ?? '').replace(/^\//, '');
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

  async markClaimed(containerId: string): Promise<void> {
    const container = this.docker.getContainer(containerId);
    const name = (await container.inspect()).Name.replace(/^\//, '');
    if (!name.endsWith(CLAIMED_SUFFIX)) await container.rename({ name: name + CLAIMED_SUFFIX });
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
