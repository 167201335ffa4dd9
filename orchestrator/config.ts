/**
 * The orchestrator's configuration: tmpnb's flag names for the default pool, our additions, and
 * named pools from the config file's `pools` section. `nbpool up` reuses `orchestratorOptionSpecs`.
 */
import { totalmem } from 'node:os';
import { checks, parseConfig, renderHelp, type ConfigValues, type OptionSpecs } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { LOG_LEVELS } from '../shared/log.js';

export const DEFAULT_IMAGE = 'nbpool/jupyter:latest';
/**
 * Jupyter 6.4, ready to be embedded in a publisher's iframe on another site: its `_xsrf` cookie has
 * no SameSite attribute, so browsers drop it in cross-site frames and every POST (new notebook,
 * start kernel) would fail with 403. Each container is anonymous, throwaway and reachable only
 * under its unguessable /user/<id>/ path, so the XSRF check is turned off.
 */
export const DEFAULT_COMMAND =
  'jupyter-notebook --no-browser --allow-root --ip=0.0.0.0 --NotebookApp.disable_check_xsrf=True --port={port} --NotebookApp.base_url={base_path} --NotebookApp.token={token}';
/** Memory kept for the engine, the proxy and the system when --max-containers is not given. */
export const MEMORY_RESERVE_FRACTION = 0.1;
export const MEMORY_RESERVE_MIN_BYTES = 1024 ** 3;

export const orchestratorOptionSpecs = {
  image: { type: 'string', default: DEFAULT_IMAGE, help: 'image of the default pool', metavar: 'IMAGE' },
  command: {
    type: 'string',
    default: DEFAULT_COMMAND,
    help: 'command run in each container; placeholders {base_path} {port} {ip} {token}',
    metavar: 'CMD',
  },
  poolSize: { type: 'int', default: 3, min: 0, help: 'warm containers kept ready in the default pool (a claim is replaced at once)', metavar: 'N' },
  maxContainers: {
    type: 'int',
    min: 1,
    help: 'cap on warm + claimed + starting containers; default: (host memory - reserve) / --mem-limit, reserve = max(1 GiB, 10% of memory)',
    metavar: 'N',
  },
  cullTimeout: { type: 'number', default: 3600, min: 0, help: 'seconds a claimed container may stay idle (proxy last_activity) before it is removed; 0 = never', metavar: 'SECONDS' },
  cullPeriod: { type: 'number', default: 600, min: 0.05, help: 'seconds between cull and heal passes', metavar: 'SECONDS' },
  cullMax: { type: 'number', default: 14400, min: 0, help: 'maximum age in seconds of any container; 0 = no limit', metavar: 'SECONDS' },
  memLimit: { type: 'string', default: '512m', help: 'memory limit per container (bytes, or with k/m/g suffix)', metavar: 'SIZE' },
  cpuQuota: { type: 'int', min: 1000, help: 'CPU time per container in microseconds per 100 ms period (100000 = one CPU)', metavar: 'US' },
  cpuShares: { type: 'int', min: 2, help: 'relative CPU weight per container', metavar: 'N' },
  pidsLimit: { type: 'int', default: 512, min: 0, help: 'process limit per container; 0 = unlimited', metavar: 'N' },
  containerIp: { type: 'string', default: '127.0.0.1', help: 'host address container ports are published on (ephemeral host ports)', metavar: 'IP' },
  containerPort: { type: 'int', default: 8888, min: 1, max: 65535, help: 'port the program listens on inside the container', metavar: 'PORT' },
  containerUser: { type: 'string', help: 'user to run containers as', metavar: 'USER' },
  dockerNetwork: { type: 'string', help: 'Docker network to attach containers to; the proxy then routes to their address on it', metavar: 'NAME' },
  hostDirectories: { type: 'list', help: 'host directories to mount, host:container[:ro], comma-separated', metavar: 'DIRS' },
  redirectUri: { type: 'string', default: '/tree', help: 'path inside the container a visitor lands on when the request names none', metavar: 'PATH', check: checks.urlPath },
  probePath: { type: 'string', default: 'api', help: 'path, relative to the base path, that must answer before a container joins the pool', metavar: 'PATH' },
  probeTimeout: { type: 'number', default: 60, min: 0.1, help: 'seconds a new container has to answer its probe before it is removed', metavar: 'SECONDS' },
  claimHook: { type: 'string', help: 'shell command run in a container when it is claimed (env NBPOOL_QUERY and NBPOOL_Q_<name> from the request query)', metavar: 'CMD' },
  claimHookTimeout: { type: 'number', default: 10, min: 0.1, help: 'seconds the claim hook may run', metavar: 'SECONDS' },
  useTokens: { type: 'boolean', help: 'give each container a random secret ({token}) and append it to the redirect' },
  ip: { type: 'string', default: '127.0.0.1', help: 'address of the public handler (the proxy default target)', metavar: 'IP' },
  port: { type: 'int', default: 9999, min: 0, max: 65535, check: checks.port, help: 'port of the public handler', metavar: 'PORT' },
  adminIp: { type: 'string', default: '127.0.0.1', help: 'address of the admin API', metavar: 'IP' },
  adminPort: { type: 'int', default: 10000, min: 0, max: 65535, help: 'port of the admin API (also /metrics and /api/stats/history)', metavar: 'PORT' },
  adminAuthToken: { type: 'string', env: 'ADMIN_AUTH_TOKEN', help: 'token required on the admin API (Authorization: token T); default: generated, kept in .nbpool/admin-token', metavar: 'TOKEN' },
  instance: { type: 'string', default: 'nbpool', help: 'name written as a label on every container; only this instance\'s containers are adopted', metavar: 'NAME', check: (s: string) => (/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(s) ? undefined : 'letters, digits, _ . - only') },
  spawnWait: { type: 'number', default: 10, min: 0, help: 'seconds POST /api/spawn waits for a container before answering 429', metavar: 'SECONDS' },
  queueWait: { type: 'number', default: 300, min: 1, help: 'seconds a visitor may wait on the loading page for a container', metavar: 'SECONDS' },
  queueSize: { type: 'int', default: 1000, min: 0, help: 'visitors who may wait at once; beyond it they get a "full" page', metavar: 'N' },
  startParallel: { type: 'int', default: 8, min: 1, help: 'container starts in flight at once on the engine', metavar: 'N' },
  removeParallel: { type: 'int', default: 4, min: 1, help: 'container removals in flight at once on the engine', metavar: 'N' },
  allowOrigin: { type: 'string', default: '*', help: 'Access-Control-Allow-Origin for the public API; empty = no CORS', metavar: 'ORIGIN' },
  cleanupOnExit: { type: 'boolean', help: 'remove this instance\'s containers on shutdown (default: leave them for the next start)' },
  configproxyEndpoint: { type: 'url', default: 'http://127.0.0.1:8001', env: 'CONFIGPROXY_ENDPOINT', help: 'proxy REST API (nbpool orchestrator only)', metavar: 'URL' },
  configproxyAuthToken: { type: 'string', env: 'CONFIGPROXY_AUTH_TOKEN', help: 'proxy REST API token (nbpool orchestrator only); default: .nbpool/route-api-token when nbpool proxy keeps one there', metavar: 'TOKEN' },
  logLevel: { type: 'string', default: 'info', env: 'NBPOOL_LOG_LEVEL', choices: LOG_LEVELS, help: 'log level', metavar: 'LEVEL' },
} as const satisfies OptionSpecs;

export type OrchestratorOptions = ConfigValues<typeof orchestratorOptionSpecs>;

/** One pool's settings; the default pool comes from the flags, others from the file's `pools`. */
export interface PoolConfig {
  name: string;
  image: string;
  command: string;
  size: number;
  /** Path inside the container a visitor lands on when the request names none. */
  redirectUri: string;
  probePath: string;
  claimHook?: string;
  memoryBytes?: number;
  cpuQuota?: number;
  cpuShares?: number;
}

export interface OrchestratorConfig extends OrchestratorOptions {
  /** The default pool first. */
  pools: PoolConfig[];
  /** Resolved cap (from --max-containers or host memory). */
  capacity: number;
  memoryBytes: number;
}

export const DEFAULT_POOL = 'default';

export function parseSize(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!match) throw new ConfigError(`${what} must be a size such as 512m or 2g, got ${JSON.stringify(text)}`);
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const bytes = Math.floor(Number(match[1]) * scale);
  if (bytes < 6 * 1024 ** 2) throw new ConfigError(`${what} must be at least 6m (Docker's minimum), got ${JSON.stringify(text)}`);
  return bytes;
}

/** (host memory - reserve) / per-container limit, at least 1. */
export function defaultCapacity(memoryBytes: number, hostBytes = totalmem()): number {
  const reserve = Math.max(MEMORY_RESERVE_MIN_BYTES, hostBytes * MEMORY_RESERVE_FRACTION);
  return Math.max(1, Math.floor((hostBytes - reserve) / memoryBytes));
}

const POOL_KEYS = ['image', 'command', 'size', 'redirectUri', 'probePath', 'claimHook', 'memLimit', 'cpuQuota', 'cpuShares'] as const;

function parsePools(section: unknown, base: PoolConfig): PoolConfig[] {
  if (section === undefined) return [];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new ConfigError('config file: "pools" must be an object of pool name -> settings');
  }
  const out: PoolConfig[] = [];
  for (const [name, raw] of Object.entries(section)) {
    const where = `config file: pools.${name}`;
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}$/.test(name)) throw new ConfigError(`${where}: pool names are letters, digits, _ and - (at most 32)`);
    if (name === DEFAULT_POOL) throw new ConfigError(`${where}: "${DEFAULT_POOL}" is the pool the flags define`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${where} must be an object`);
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!(POOL_KEYS as readonly string[]).includes(key)) throw new ConfigError(`${where}: unknown setting ${JSON.stringify(key)}; known: ${POOL_KEYS.join(', ')}`);
    }
    const str = (key: string, fallback: string | undefined): string | undefined => {
      const v = entry[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}.${key} must be a non-empty string`);
      return v;
    };
    const int = (key: string, fallback: number | undefined, min: number): number | undefined => {
      const v = entry[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigError(`${where}.${key} must be an integer >= ${min}`);
      return v;
    };
    const redirectUri = str('redirectUri', base.redirectUri)!;
    if (!redirectUri.startsWith('/')) throw new ConfigError(`${where}.redirectUri must start with /`);
    const memLimit = str('memLimit', undefined);
    out.push({
      name,
      image: str('image', base.image)!,
      command: str('command', base.command)!,
      size: int('size', base.size, 0)!,
      redirectUri,
      probePath: str('probePath', base.probePath)!,
      claimHook: str('claimHook', undefined),
      memoryBytes: memLimit ? parseSize(memLimit, `${where}.memLimit`) : base.memoryBytes,
      cpuQuota: int('cpuQuota', base.cpuQuota, 1000),
      cpuShares: int('cpuShares', base.cpuShares, 2),
    });
  }
  return out;
}

/** Builds the full configuration from parsed options and the config file (for `pools`). */
export function buildOrchestratorConfig(values: OrchestratorOptions, file: Record<string, unknown> = {}): OrchestratorConfig {
  const memoryBytes = parseSize(values.memLimit, '--mem-limit');
  const defaultPool: PoolConfig = {
    name: DEFAULT_POOL,
    image: values.image,
    command: values.command,
    size: values.poolSize,
    redirectUri: values.redirectUri,
    probePath: values.probePath,
    claimHook: values.claimHook,
    memoryBytes,
    cpuQuota: values.cpuQuota,
    cpuShares: values.cpuShares,
  };
  const pools = [defaultPool, ...parsePools(file.pools, defaultPool)];
  return { ...values, pools, memoryBytes, capacity: values.maxContainers ?? defaultCapacity(memoryBytes) };
}

/** Parses argv + env + config file into an OrchestratorConfig; `help` is set when --help was asked. */
export function loadOrchestratorConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { help: true } | { help: false; config: OrchestratorConfig } {
  const parsed = parseConfig(orchestratorOptionSpecs, argv, env, ['pools']);
  if (parsed.help) return { help: true };
  if (parsed.positionals.length) throw new ConfigError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  return { config: buildOrchestratorConfig(parsed.values, parsed.file), help: false };
}

export function orchestratorHelp(): string {
  return renderHelp(
    'Usage: nbpool orchestrator [options]',
    'Keeps pools of warm containers on a Docker engine (DOCKER_HOST honoured) and hands one to each\n' +
      'visitor through the proxy: GET /spawn/<path>, POST /api/spawn, GET /api/stats.\n' +
      'Named pools come from the config file: {"pools": {"name": {"image", "command", "size",\n' +
      '"redirectUri", "probePath", "claimHook", "memLimit", "cpuQuota", "cpuShares"}}}.',
    orchestratorOptionSpecs,
  );
}
