/** Building a container's spec from its pool and visitor id: pure, so it is tested alone. */
import { LABELS, type ContainerSpec } from './backend.js';
import type { OrchestratorConfig, PoolConfig } from './config.js';
import { basePath, routePath } from './visitor.js';

/** Splits a command line the way a shell would for plain words and '...' / "..." quoting. */
export function splitCommand(command: string): string[] {
  const out: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) current += command[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      current += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in command ${JSON.stringify(command)}`);
  if (inWord) out.push(current);
  return out;
}

export function fillPlaceholders(args: readonly string[], values: Record<string, string>): string[] {
  return args.map((arg) => arg.replace(/\{(base_path|port|ip|token)\}/g, (_, key: string) => values[key] ?? ''));
}

/** Name on the engine: `<instance>-<pool>-<id>` (ids have no '-', so the name parses back). */
export function containerName(instance: string, pool: string, id: string): string {
  return `${instance}-${pool}-${id}`;
}

export interface SpecInput {
  id: string;
  /** Secret for the container's own auth (Jupyter's token), or '' when tokens are off. */
  token: string;
  createdAt: number;
  generation: number;
}

export function containerSpec(config: OrchestratorConfig, pool: PoolConfig, input: SpecInput): ContainerSpec {
  const { id, token } = input;
  const base = basePath(id);
  return {
    name: containerName(config.instance, pool.name, id),
    image: pool.image,
    cmd: fillPlaceholders(splitCommand(pool.command), { base_path: base, port: String(config.containerPort), ip: '0.0.0.0', token }),
    env: [`NBPOOL_BASE_PATH=${base}`, ...(token ? [`JUPYTER_TOKEN=${token}`] : [])],
    labels: {
      [LABELS.instance]: config.instance,
      [LABELS.pool]: pool.name,
      [LABELS.user]: id,
      [LABELS.route]: routePath(id),
      [LABELS.created]: String(input.createdAt),
      [LABELS.generation]: String(input.generation),
      ...(token ? { [LABELS.token]: token } : {}),
    },
    port: config.containerPort,
    publishIp: config.containerIp,
    network: config.dockerNetwork,
    user: config.containerUser,
    memoryBytes: pool.memoryBytes,
    cpuQuota: pool.cpuQuota,
    cpuShares: pool.cpuShares,
    pidsLimit: config.pidsLimit || undefined,
    binds: config.hostDirectories,
    capAdd: pool.capAdd,
    readOnlyRoot: config.readOnly,
    tmpfs: ['/tmp'],
    egress: !config.noEgress,
  };
}
