/**
 * The orchestrator's configuration: tmpnb's flag names for the default pool, our additions, and
 * named pools from the config file's `pools` section. `nbpool up` reuses `orchestratorOptionSpecs`.
 */
import { totalmem } from 'node:os';
import { checks, parseConfig, renderHelp, type ConfigValues, type OptionSpecs } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { LOG_LEVELS } from '../shared/log.js';

export const DEFAULT_IMAGE = 'nbpool/jupyter:latest';
export const DEFAULT_INSTANCE = 'nbpool';
/** The public port `nbpool orchestrator` listens on by default. */
export const DEFAULT_PORT = 9999;
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

export const BACKENDS = ['docker', 'swarm'] as const;

export const orchestratorOptionSpecs = {
  backend: {
    type: 'string',
    default: 'docker',
    env: 'NBPOOL_BACKEND',
    choices: BACKENDS,
    help: 'container engine: docker (one engine, DOCKER_HOST honoured) or swarm (a one-replica service per container, placed across the nodes; talk to a manager)',
    metavar: 'KIND',
  },
  placementConstraint: {
    type: 'list',
    splitCommas: false,
    help: 'swarm placement constraint of every container, e.g. node.labels.nbpool==yes (repeatable; --backend swarm only)',
    metavar: 'EXPR',
  },
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
    help: 'cap on warm + claimed + starting containers; default: (host memory - reserve) / --mem-limit, reserve = max(1 GiB, 10% of memory); on swarm, summed over the ready, active nodes that fit the placement constraints',
    metavar: 'N',
  },
  cullTimeout: { type: 'number', default: 3600, min: 0, help: 'seconds a claimed container may stay idle (proxy last_activity) before it is removed; 0 = never', metavar: 'SECONDS' },
  cullPeriod: { type: 'number', default: 600, min: 0.05, help: 'seconds between cull passes', metavar: 'SECONDS' },
  reconcilePeriod: {
    type: 'number',
    default: 10,
    min: 0.05,
    help: 'seconds between passes that compare the engine, the pools and the proxy routes and repair them (also run on engine events and reconnects)',
    metavar: 'SECONDS',
  },
  claimsJournal: {
    type: 'string',
    help: 'file where claims are written before they are answered, so a crash never hands a container out twice [default: .nbpool/claims-<instance>.log]',
    metavar: 'FILE',
  },
  cullMax: { type: 'number', default: 14400, min: 0, help: 'maximum age in seconds of any container; 0 = no limit', metavar: 'SECONDS' },
  memLimit: { type: 'string', default: '512m', help: 'memory limit per container (bytes, or with k/m/g suffix)', metavar: 'SIZE' },
  cpuQuota: { type: 'int', min: 1000, help: 'CPU time per container in microseconds per 100 ms period (100000 = one CPU)', metavar: 'US' },
  cpuShares: { type: 'int', min: 2, help: 'relative CPU weight per container', metavar: 'N' },
  pidsLimit: { type: 'int', default: 512, min: 0, help: 'process limit per container; 0 = unlimited', metavar: 'N' },
  containerIp: { type: 'string', default: '127.0.0.1', help: 'host address container ports are published on (ephemeral host ports)', metavar: 'IP' },
  containerPort: { type: 'int', default: 8888, min: 1, max: 65535, help: 'port the program listens on inside the container', metavar: 'PORT' },
  containerUser: { type: 'string', help: 'user to run containers as', metavar: 'USER' },
  dockerNetwork: { type: 'string', help: 'Docker network to attach containers to; the proxy then routes to their address on it (swarm: an overlay network the proxy is attached to; without it, a host-mode published port on the node)', metavar: 'NAME' },
  hostDirectories: { type: 'list', help: 'host directories to mount, host:container[:ro], comma-separated', metavar: 'DIRS' },
  capAdd: {
    type: 'list',
    help: 'Linux capabilities given back to containers (all are dropped by default), e.g. CHOWN,SETUID; per pool: "capAdd"',
    metavar: 'CAPS',
    check: (caps: string[]) => capabilityError(caps),
  },
  readOnly: { type: 'boolean', help: 'read-only root filesystem in containers (/tmp stays writable, a tmpfs)' },
  noEgress: {
    type: 'boolean',
    help: 'containers reach nothing but the proxy answering them: no internet, no other machine, no other container (a Docker network of their own)',
  },
  redirectUri: { type: 'string', default: '/tree', help: 'path inside the container a visitor lands on when the request names none', metavar: 'PATH', check: checks.urlPath },
  probePath: { type: 'string', default: 'api', help: 'path, relative to the base path, that must answer before a container joins the pool', metavar: 'PATH' },
  probeTimeout: { type: 'number', default: 60, min: 0.1, help: 'seconds a new container has to answer its probe before it is removed', metavar: 'SECONDS' },
  claimHook: { type: 'string', help: 'shell command run in a container when it is claimed (env NBPOOL_QUERY and NBPOOL_Q_<name> from the request query)', metavar: 'CMD' },
  claimHookTimeout: { type: 'number', default: 10, min: 0.1, help: 'seconds the claim hook may run', metavar: 'SECONDS' },
  useTokens: { type: 'boolean', help: 'give each container a random secret ({token}) and append it to the redirect' },
  ip: { type: 'string', default: '127.0.0.1', help: 'address of the public handler (the proxy default target)', metavar: 'IP' },
  port: { type: 'int', default: DEFAULT_PORT, min: 0, max: 65535, check: checks.port, help: 'port of the public handler', metavar: 'PORT' },
  adminIp: { type: 'string', default: '127.0.0.1', help: 'address of the admin API', metavar: 'IP' },
  adminPort: { type: 'int', default: 10000, min: 0, max: 65535, help: 'port of the admin API (also /metrics and /api/stats/history)', metavar: 'PORT' },
  adminAuthToken: { type: 'string', env: 'ADMIN_AUTH_TOKEN', help: 'token required on the admin API (Authorization: token T)', metavar: 'TOKEN' },
  instance: {
    type: 'string',
    help: `name written as a label on every container; only this instance's containers are adopted, and one orchestrator at a time runs it on an engine (default: ${DEFAULT_INSTANCE}, or ${DEFAULT_INSTANCE}-<port> when the public port is not the default one, so nodes on one engine differ)`,
    metavar: 'NAME',
    check: (s: string) => (/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(s) ? undefined : 'letters, digits, _ . - only'),
  },
  spawnWait: { type: 'number', default: 10, min: 0, help: 'seconds POST /api/spawn waits for a container before answering 429', metavar: 'SECONDS' },
  queueWait: { type: 'number', default: 300, min: 1, help: 'seconds a visitor may wait on the loading page for a container', metavar: 'SECONDS' },
  queueSize: { type: 'int', default: 1000, min: 0, help: 'visitors who may wait at once; beyond it they get a "full" page', metavar: 'N' },
  startParallel: { type: 'int', default: 8, min: 1, help: 'container starts in flight at once on the engine', metavar: 'N' },
  refillDelay: {
    type: 'number',
    default: 0.25,
    min: 0,
    help: 'seconds after a claim during which refills start at most --refill-parallel at a time, so a burst of claims keeps the CPU (a pool running dry refills at once); 0 = never hold back',
    metavar: 'SECONDS',
  },
  refillParallel: { type: 'int', default: 1, min: 0, help: 'container starts per pool in flight at once while refill yields to claims', metavar: 'N' },
  removeParallel: { type: 'int', default: 4, min: 1, help: 'container removals in flight at once on the engine', metavar: 'N' },
  maxPerClient: {
    type: 'int',
    default: 8,
    min: 0,
    help: 'containers one client (an address; an IPv6 /64) may hold at once; beyond it: its own container back, or 429. A class behind one NAT address counts as one client; 0 = no cap',
    metavar: 'N',
  },
  claimsPerMinute: { type: 'number', default: 30, min: 0, help: 'sustained claims per minute per client (bursts up to --max-per-client); 0 = no rate limit', metavar: 'N' },
  trustedProxy: {
    type: 'list',
    default: ['127.0.0.0/8', '::1'],
    help: 'addresses or CIDR ranges of proxies whose X-Forwarded-For names the client (the nbpool proxy, a redirector, a TLS front)',
    metavar: 'CIDRS',
  },
  allowOrigin: { type: 'string', default: '*', help: 'Access-Control-Allow-Origin for the public API; empty = no CORS', metavar: 'ORIGIN' },
  cleanupOnExit: { type: 'boolean', help: 'remove this instance\'s containers on shutdown (default: leave them for the next start)' },
  configproxyEndpoint: { type: 'url', default: 'http://127.0.0.1:8001', env: 'CONFIGPROXY_ENDPOINT', help: 'proxy REST API (nbpool orchestrator only)', metavar: 'URL' },
  configproxyAuthToken: { type: 'string', env: 'CONFIGPROXY_AUTH_TOKEN', help: 'proxy REST API token (nbpool orchestrator only)', metavar: 'TOKEN' },
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
  /** Capabilities given back (all others dropped). */
  capAdd: string[];
}

export interface OrchestratorConfig extends Omit<OrchestratorOptions, 'instance'> {
  /** --instance, or the default for this node's public port (defaultInstance). */
  instance: string;
  /** The default pool first. */
  pools: PoolConfig[];
  /** Resolved cap (from --max-containers or host memory). */
  capacity: number;
  memoryBytes: number;
}

export const DEFAULT_POOL = 'default';

/** Capability names as Docker takes them (CHOWN or CAP_CHOWN); undefined when all are valid. */
export function capabilityError(caps: readonly string[]): string | undefined {
  const bad = caps.find((c) => !/^(CAP_)?[A-Z_]{2,32}$/.test(c));
  return bad === undefined ? undefined : `capabilities are upper-case names such as CHOWN or NET_BIND_SERVICE, got ${JSON.stringify(bad)}`;
}

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

const POOL_KEYS = ['image', 'command', 'size', 'redirectUri', 'probePath', 'claimHook', 'memLimit', 'cpuQuota', 'cpuShares', 'capAdd'] as const;

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
    const capAdd = entry.capAdd ?? base.capAdd;
    if (!Array.isArray(capAdd) || capAdd.some((c) => typeof c !== 'string')) throw new ConfigError(`${where}.capAdd must be a list of capability names`);
    const capProblem = capabilityError(capAdd as string[]);
    if (capProblem) throw new ConfigError(`${where}.capAdd: ${capProblem}`);
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
      capAdd: capAdd as string[],
    });
  }
  return out;
}

/**
 * The instance of a node started without --instance: two nodes on one engine listen on different
 * public ports, so they get different instances and never touch each other's containers; a node
 * restarted on its port adopts its own. The program's default port keeps the plain name.
 */
export function defaultInstance(publicPort: number, programDefaultPort: number): string {
  return publicPort === programDefaultPort ? DEFAULT_INSTANCE : `${DEFAULT_INSTANCE}-${publicPort}`;
}

/**
 * Builds the full configuration from parsed options and the config file (for `pools`);
 * `instanceFor` names the instance when --instance is not given (nbpool up: from the proxy's port).
 */
export function buildOrchestratorConfig(
  values: OrchestratorOptions,
  file: Record<string, unknown> = {},
  instanceFor = () => defaultInstance(values.port, DEFAULT_PORT),
): OrchestratorConfig {
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
    capAdd: values.capAdd,
  };
  if (values.noEgress && values.dockerNetwork) {
    throw new ConfigError('--no-egress puts containers on a network of their own; it cannot be combined with --docker-network');
  }
  const pools = [defaultPool, ...parsePools(file.pools, defaultPool)];
  return { ...values, instance: values.instance ?? instanceFor(), pools, memoryBytes, capacity: values.maxContainers ?? defaultCapacity(memoryBytes) };
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
    'Keeps pools of warm containers on a Docker engine (DOCKER_HOST honoured), or across a swarm\n' +
      '(--backend swarm, on a manager), and hands one to each\n' +
      'visitor through the proxy: GET /spawn/<path>, POST /api/spawn, GET /api/stats.\n' +
      'Named pools come from the config file: {"pools": {"name": {"image", "command", "size",\n' +
      '"redirectUri", "probePath", "claimHook", "memLimit", "cpuQuota", "cpuShares", "capAdd"}}}.',
    orchestratorOptionSpecs,
  );
}
