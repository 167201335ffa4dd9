/**
 * The orchestrator's configuration: tmpnb's flag names for the default pool, our additions, and
 * named pools from the config file's `pools` section. `nbpool up` reuses `orchestratorOptionSpecs`.
 */
import { totalmem } from 'node:os';
import { checks, parseConfig, renderHelp, type ConfigValues, type OptionSpecs } from '../shared/config.js';
import { parseActivityIgnore } from '../shared/activity-ignore.js';
import { ConfigError } from '../shared/errors.js';
import { LOG_LEVELS } from '../shared/log.js';
import { stateDirOption } from '../shared/state-dir.js';
import type { ActivityApi } from './app-activity.js';
import { DEFAULT_COMMAND, DEFAULT_IMAGE, isPresetName, PRESET_NAMES, PRESETS, type PresetName } from './presets.js';
import { splitCommand } from './spec.js';

export { DEFAULT_COMMAND, DEFAULT_IMAGE };

export const DEFAULT_INSTANCE = 'nbpool';
/** The public port `nbpool orchestrator` listens on by default. */
export const DEFAULT_PORT = 9999;
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
  preset: { type: 'string', default: 'jupyter', choices: PRESET_NAMES, help: 'kind of app in the default pool: defaults for image, command, paths, prefix stripping, page wording', metavar: 'NAME' },
  image: { type: 'string', help: `image of the default pool; default: the preset's (jupyter: ${DEFAULT_IMAGE})`, metavar: 'IMAGE' },
  command: {
    type: 'string',
    help: "command run in each container; placeholders {base_path} {port} {ip} {token}; empty = the image's own; default: the preset's",
    metavar: 'CMD',
  },
  poolSize: {
    type: 'string',
    default: '3',
    help: 'warm containers kept ready in the default pool (a claim is replaced at once), or auto: follow the claim rate within --pool-min/--pool-max',
    metavar: 'N|auto',
    acceptNumbers: true,
    check: (s: string) => (/^(\d{1,6}|auto)$/.test(s) ? undefined : 'must be a whole number or auto'),
  },
  poolMin: { type: 'int', default: 1, min: 0, help: 'with --pool-size auto: warm containers kept however quiet it is', metavar: 'N' },
  poolMax: { type: 'int', min: 0, help: 'with --pool-size auto: most warm containers; default: 10% of the capacity (at least --pool-min, at least 1)', metavar: 'N' },
  targetHitRate: { type: 'number', default: 0.95, min: 0.5, max: 0.999, help: 'with --pool-size auto: share of visitors who should find a warm container', metavar: 'RATE' },
  maxWarmAge: { type: 'number', default: 0, min: 0, help: 'seconds a warm container may wait unclaimed before it is replaced by a fresh one (a few at a time); 0 = never', metavar: 'SECONDS' },
  maxContainers: {
    type: 'int',
    min: 1,
    help: 'cap on warm + claimed + starting containers; default: (host memory - reserve) / --mem-limit, reserve = max(1 GiB, 10% of memory); on swarm, summed over the ready, active nodes that fit the placement constraints',
    metavar: 'N',
  },
  cullTimeout: { type: 'number', default: 3600, min: 0, help: 'seconds a claimed container may stay idle (proxy last_activity) before it is removed; 0 = never', metavar: 'SECONDS' },
  unvisitedTimeout: {
    type: 'number',
    default: 300,
    min: 0,
    help: 'seconds a claimed container may wait for its visitor\'s first request (a caller that hung up after its claim, a waiting page closed just before its turn) before it is removed; 0 = only --cull-timeout',
    metavar: 'SECONDS',
  },
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
    help: 'file where claims are written before they are answered, so a crash never hands a container out twice [default: <state dir>/claims-<instance>.log]',
    metavar: 'FILE',
  },
  cullMax: { type: 'number', default: 14400, min: 0, help: 'maximum age in seconds of any container; 0 = no limit', metavar: 'SECONDS' },
  memLimit: { type: 'string', default: '512m', help: 'memory limit per container (bytes, or with k/m/g suffix)', metavar: 'SIZE' },
  cpuQuota: { type: 'int', min: 1000, help: 'CPU time per container in microseconds per 100 ms period (100000 = one CPU)', metavar: 'US' },
  cpuShares: { type: 'int', min: 2, help: 'relative CPU weight per container', metavar: 'N' },
  pidsLimit: { type: 'int', default: 512, min: 0, help: 'process limit per container; 0 = unlimited', metavar: 'N' },
  containerIp: { type: 'string', check: checks.ip, default: '127.0.0.1', help: 'host address container ports are published on (ephemeral host ports)', metavar: 'IP' },
  containerPort: { type: 'int', default: 8888, min: 1, max: 65535, help: 'port the program listens on inside the container', metavar: 'PORT' },
  containerUser: { type: 'string', help: 'user to run containers as', metavar: 'USER' },
  dockerNetwork: { type: 'string', help: 'Docker network to attach containers to; the proxy then routes to their address on it (swarm: an overlay network the proxy is attached to; without it, a host-mode published port on the node)', metavar: 'NAME' },
  hostDirectories: { type: 'list', help: 'host directories to mount, host:container[:ro], comma-separated', metavar: 'DIRS', check: (binds: string[]) => bindError(binds) },
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
  redirectUri: { type: 'string', help: "path inside the container a visitor lands on when the request names none; default: the preset's (jupyter: /tree)", metavar: 'PATH', check: checks.urlPath },
  probePath: { type: 'string', help: "path that must answer before a container joins the pool, relative to the base path (or to / when the preset strips the prefix); default: the preset's (jupyter: api)", metavar: 'PATH' },
  probeTimeout: { type: 'number', default: 60, min: 0.1, help: 'seconds a new container has to answer its probe before it is removed', metavar: 'SECONDS' },
  claimHook: { type: 'string', help: 'shell command run in a container when it is claimed (env NBPOOL_QUERY and NBPOOL_Q_<name> from the request query)', metavar: 'CMD' },
  claimHookTimeout: { type: 'number', default: 10, min: 0.1, help: 'seconds the claim hook may run', metavar: 'SECONDS' },
  useTokens: { type: 'boolean', help: 'give each container a random secret ({token}) and append it to the redirect' },
  ip: { type: 'string', check: checks.address, default: '127.0.0.1', help: 'address of the public handler (the proxy default target)', metavar: 'IP' },
  port: { type: 'int', default: DEFAULT_PORT, min: 0, max: 65535, check: checks.port, help: 'port of the public handler', metavar: 'PORT' },
  adminIp: { type: 'string', check: checks.address, default: '127.0.0.1', help: 'address of the admin API', metavar: 'IP' },
  adminPort: { type: 'int', default: 10000, min: 0, max: 65535, help: 'port of the admin API (also /metrics and /api/stats/history)', metavar: 'PORT' },
  adminAuthToken: { type: 'string', env: 'ADMIN_AUTH_TOKEN', help: 'token required on the admin API (Authorization: token T); default: generated, kept in <state dir>/admin-token', metavar: 'TOKEN' },
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
    help: 'seconds after a claim during which refills start at most --refill-parallel at a time and claim markers wait, so a burst of claims keeps the CPU (a pool running dry, someone waiting or a quarter of it or less warm, refills at once); 0 = never hold back',
    metavar: 'SECONDS',
  },
  refillParallel: { type: 'int', default: 0, min: 0, help: 'container starts per pool in flight at once while refill yields to claims (0: none until the claims pause)', metavar: 'N' },
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
  entryUrl: {
    type: 'url',
    env: 'NBPOOL_ENTRY_URL',
    help: "the public link visitors come in by when this node runs behind a redirector (the redirector's URL): while this node's container engine is gone, a new visitor is sent back there, and so to another node, instead of waiting here",
    metavar: 'URL',
  },
  allowOrigin: { type: 'string', default: '*', check: checks.headerValue, help: 'Access-Control-Allow-Origin for the public API; empty = no CORS', metavar: 'ORIGIN' },
  cleanupOnExit: { type: 'boolean', help: 'remove this instance\'s containers on shutdown (default: leave them for the next start)' },
  configproxyEndpoint: { type: 'url', default: 'http://127.0.0.1:8001', env: 'CONFIGPROXY_ENDPOINT', help: 'proxy REST API (nbpool orchestrator only)', metavar: 'URL' },
  configproxyAuthToken: { type: 'string', env: 'CONFIGPROXY_AUTH_TOKEN', help: 'proxy REST API token (nbpool orchestrator only); default: <state dir>/route-api-token when nbpool proxy keeps one there', metavar: 'TOKEN' },
  logLevel: { type: 'string', default: 'info', env: 'NBPOOL_LOG_LEVEL', choices: LOG_LEVELS, help: 'log level', metavar: 'LEVEL' },
  stateDir: stateDirOption,
} as const satisfies OptionSpecs;

export type OrchestratorOptions = ConfigValues<typeof orchestratorOptionSpecs>;

/** Demand-following pool size (`size: "auto"`): see orchestrator/demand.ts. */
export interface AutoSize {
  min: number;
  max: number;
  /** Share of visitors who should find a warm container, 0.5 to 0.999. */
  hitRate: number;
}

/** One pool's settings; the default pool comes from the flags, others from the file's `pools`. */
export interface PoolConfig {
  name: string;
  preset: PresetName;
  image: string;
  /** Command with placeholders; '' = the image's own command. */
  command: string;
  /** Warm containers wanted; with `auto`, the starting point until demand is known (its min). */
  size: number;
  auto?: AutoSize;
  /** Path inside the container a visitor lands on when the request names none. */
  redirectUri: string;
  /** Relative to the base path, or to / when stripPrefix. */
  probePath: string;
  /** The proxy sends `/user/<id>/x` to the container as `/x` (the app runs under /). */
  stripPrefix: boolean;
  /** What visitors are told they get ("notebook", "app"). */
  noun: string;
  /** How to ask the app whether its kernel is busy before an idle cull (the preset's). */
  activity?: ActivityApi;
  /** Requests of the app's own (polls) that are not a visitor's activity: regexes, the route's `activity_ignore`. */
  activityIgnore: readonly string[];
  /** Port the app listens on inside the container. */
  port: number;
  /**
   * Public path that leads a visitor to this pool (`/<name>/`, embeddable by publishers); `/` for
   * the default pool, which also takes every other unrouted path.
   */
  entryPath: string;
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

/** Mount options Docker takes after `host:container:` (read-only or not, SELinux labels, propagation, volume copy). */
const BIND_OPTIONS = new Set(['ro', 'rw', 'z', 'Z', 'nocopy', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

/**
 * Why a --host-directories entry is not one Docker takes (`host:container[:options]`, the host side
 * an absolute path or a volume name, the container side absolute), or undefined: said at start,
 * not as a container that fails to be created over and over.
 */
export function bindError(binds: readonly string[]): string | undefined {
  for (const bind of binds) {
    const [host, container, options, ...rest] = bind.split(':');
    const problem =
      container === undefined ? 'needs host:container'
      : rest.length > 0 ? 'has more than host:container:options'
      : !host || !(host.startsWith('/') || /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(host)) ? 'the host side must be an absolute path or a volume name'
      : !container.startsWith('/') ? 'the container side must be an absolute path'
      : options !== undefined && options.split(',').some((o) => !BIND_OPTIONS.has(o)) ? `options are among ${[...BIND_OPTIONS].join(', ')}`
      : undefined;
    if (problem) return `${JSON.stringify(bind)}: ${problem}`;
  }
  return undefined;
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

const POOL_KEYS = [
  'preset', 'image', 'command', 'size', 'min', 'max', 'hitRate', 'redirectUri', 'probePath', 'stripPrefix', 'port', 'entryPath',
  'claimHook', 'memLimit', 'cpuQuota', 'cpuShares', 'capAdd', 'activityIgnore',
] as const;
/** Public paths the orchestrator and proxy answer themselves; no pool entry path may shadow them. */
const RESERVED_ENTRY = /^\/(api|spawn|stats|user)(\/|$)/;

/** Default most warm containers of an auto pool: about 10% of the capacity. */
export function defaultAutoMax(capacity: number, min: number): number {
  return Math.max(min, 1, Math.ceil(capacity / 10));
}

function parseAuto(size: string | number, min: number, max: number | undefined, hitRate: number, capacity: number, where: string): { size: number; auto?: AutoSize } {
  if (size !== 'auto') return { size: Number(size) };
  const top = max ?? defaultAutoMax(capacity, min);
  if (top < min) throw new ConfigError(`${where}: max (${top}) is below min (${min})`);
  return { size: min, auto: { min, max: top, hitRate } };
}

function parsePools(section: unknown, base: PoolConfig, values: OrchestratorOptions, capacity: number): PoolConfig[] {
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
    const str = (key: string, fallback: string | undefined, allowEmpty = false): string | undefined => {
      const v = entry[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'string' || (v === '' && !allowEmpty)) throw new ConfigError(`${where}.${key} must be a${allowEmpty ? '' : ' non-empty'} string`);
      return v;
    };
    const num = (key: string, fallback: number | undefined, min: number, max = Infinity, integer = true): number | undefined => {
      const v = entry[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || (integer && !Number.isInteger(v)) || v < min || v > max) {
        throw new ConfigError(`${where}.${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}${max < Infinity ? ` and <= ${max}` : ''}`);
      }
      return v;
    };
    const presetName = str('preset', undefined);
    if (presetName !== undefined && !isPresetName(presetName)) throw new ConfigError(`${where}.preset must be one of ${PRESET_NAMES.join(', ')}`);
    // A named preset brings its own app settings; without one the pool is like the default pool.
    const preset = presetName ? PRESETS[presetName] : undefined;
    const redirectUri = str('redirectUri', preset?.redirectUri ?? base.redirectUri)!;
    if (!redirectUri.startsWith('/')) throw new ConfigError(`${where}.redirectUri must start with /`);
    const entryPath = normaliseEntry(str('entryPath', `/${name}/`)!, `${where}.entryPath`);
    const image = str('image', preset ? preset.image : base.image);
    if (!image) throw new ConfigError(`${where}.image is needed (the ${presetName} preset names no image)`);
    const sizeRaw = entry.size ?? (values.poolSize === 'auto' ? 'auto' : base.size);
    if (sizeRaw !== 'auto' && (typeof sizeRaw !== 'number' || !Number.isInteger(sizeRaw) || sizeRaw < 0)) {
      throw new ConfigError(`${where}.size must be an integer >= 0 or "auto"`);
    }
    const stripPrefix = entry.stripPrefix ?? preset?.stripPrefix ?? base.stripPrefix;
    if (typeof stripPrefix !== 'boolean') throw new ConfigError(`${where}.stripPrefix must be true or false`);
    const memLimit = str('memLimit', undefined);
    const capAdd = entry.capAdd ?? base.capAdd;
    if (!Array.isArray(capAdd) || capAdd.some((c) => typeof c !== 'string')) throw new ConfigError(`${where}.capAdd must be a list of capability names`);
    const capProblem = capabilityError(capAdd as string[]);
    if (capProblem) throw new ConfigError(`${where}.capAdd: ${capProblem}`);
    const activityIgnore = entry.activityIgnore ?? preset?.activityIgnore ?? base.activityIgnore;
    try {
      parseActivityIgnore(activityIgnore, `${where}.activityIgnore`);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    out.push({
      name,
      preset: presetName ?? base.preset,
      image,
      command: str('command', preset?.command ?? base.command, true)!,
      ...parseAuto(sizeRaw, num('min', values.poolMin, 0)!, num('max', values.poolMax, 0), num('hitRate', values.targetHitRate, 0.5, 0.999, false)!, capacity, where),
      redirectUri,
      probePath: str('probePath', preset?.probePath ?? base.probePath, true)!,
      stripPrefix,
      noun: preset?.noun ?? base.noun,
      activity: preset ? preset.activity : base.activity,
      activityIgnore: activityIgnore as string[],
      port: num('port', base.port, 1, 65535)!,
      entryPath,
      claimHook: str('claimHook', undefined),
      memoryBytes: memLimit ? parseSize(memLimit, `${where}.memLimit`) : base.memoryBytes,
      cpuQuota: num('cpuQuota', base.cpuQuota, 1000),
      cpuShares: num('cpuShares', base.cpuShares, 2),
      capAdd: capAdd as string[],
    });
  }
  const seen = new Map<string, string>();
  for (const pool of out) {
    const other = seen.get(pool.entryPath);
    if (other) throw new ConfigError(`config file: pools ${other} and ${pool.name} have the same entryPath ${pool.entryPath}`);
    seen.set(pool.entryPath, pool.name);
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

/** `/shiny` -> `/shiny/`; entry paths must not shadow the orchestrator's own paths. */
function normaliseEntry(path: string, where: string): string {
  const normal = path.endsWith('/') ? path : `${path}/`;
  if (!/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*\/$/.test(normal)) throw new ConfigError(`${where} must be a path such as /shiny/ (letters, digits, . _ ~ -)`);
  if (RESERVED_ENTRY.test(normal)) throw new ConfigError(`${where} ${normal} is taken by the orchestrator (api, spawn, stats, user)`);
  return normal;
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
  const capacity = values.maxContainers ?? defaultCapacity(memoryBytes);
  const preset = PRESETS[values.preset as PresetName];
  const image = values.image ?? preset.image;
  if (!image) throw new ConfigError(`--image is needed (the ${values.preset} preset names no image)`);
  const defaultPool: PoolConfig = {
    name: DEFAULT_POOL,
    preset: values.preset as PresetName,
    image,
    command: values.command ?? preset.command,
    ...parseAuto(values.poolSize, values.poolMin, values.poolMax, values.targetHitRate, capacity, '--pool-size auto'),
    redirectUri: values.redirectUri ?? preset.redirectUri,
    probePath: values.probePath ?? preset.probePath,
    stripPrefix: preset.stripPrefix,
    noun: preset.noun,
    activity: preset.activity,
    activityIgnore: preset.activityIgnore,
    port: values.containerPort,
    entryPath: '/',
    claimHook: values.claimHook,
    memoryBytes,
    cpuQuota: values.cpuQuota,
    cpuShares: values.cpuShares,
    capAdd: values.capAdd,
  };
  if (values.noEgress && values.dockerNetwork) {
    throw new ConfigError('--no-egress puts containers on a network of their own; it cannot be combined with --docker-network');
  }
  const pools = [defaultPool, ...parsePools(file.pools, defaultPool, values, capacity)];
  // Split now: a command that cannot be split would otherwise fail every start, without a word.
  for (const pool of pools) {
    try {
      splitCommand(pool.command);
    } catch (err) {
      throw new ConfigError(`${pool.name === DEFAULT_POOL ? '--command' : `pools.${pool.name}.command`}: ${(err as Error).message}`);
    }
  }
  return { ...values, instance: values.instance ?? instanceFor(), pools, memoryBytes, capacity };
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
      'Named pools come from the config file: {"pools": {"name": {"preset", "image", "command",\n' +
      '"size" (N or "auto"), "min", "max", "hitRate", "redirectUri", "probePath", "stripPrefix", "port",\n' +
      '"entryPath" (default /<name>/), "claimHook", "memLimit", "cpuQuota", "cpuShares", "capAdd"}}}.\n' +
      'Presets: jupyter (runs under /user/<id>/), shiny and generic (run under /: the proxy strips the prefix).',
    orchestratorOptionSpecs,
  );
}
