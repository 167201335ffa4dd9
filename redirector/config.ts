/** `nbpool redirector` options: one typed spec, parsed by shared/config.ts. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checks, parseConfig, type ConfigValues } from '../shared/config.js';
import { ConfigError, HttpError } from '../shared/errors.js';
import { LOG_LEVELS } from '../shared/log.js';
import { stateDirOption } from '../shared/state-dir.js';
import { normalizeNodeUrl } from './nodes.js';

export const redirectorOptionSpecs = {
  ip: { type: 'string', check: checks.address, default: '0.0.0.0', help: 'address of the public link', metavar: 'IP' },
  port: { type: 'int', default: 9000, min: 0, max: 65535, help: 'port of the public link (0: any free port)', metavar: 'PORT', check: checks.port },
  adminIp: { type: 'string', check: checks.address, default: '127.0.0.1', help: 'address of the admin API and /metrics', metavar: 'IP' },
  adminPort: { type: 'int', default: 9001, min: 0, max: 65535, help: 'port of the admin API and /metrics', metavar: 'PORT', check: checks.port },
  node: { type: 'list', help: 'a node (proxy + orchestrator) base URL; repeatable', metavar: 'URL' },
  statsPeriod: { type: 'number', default: 2, min: 0.05, max: 3600, help: "seconds between polls of each node's /api/stats", metavar: 'SECONDS' },
  statsTimeout: { type: 'number', default: 2, min: 0.05, max: 600, help: 'seconds before a poll that has not answered marks its node down', metavar: 'SECONDS' },
  spawnTimeout: { type: 'number', default: 15, min: 0.1, max: 600, help: "seconds to wait for a node's POST /api/spawn", metavar: 'SECONDS' },
  retryAfter: { type: 'int', default: 5, min: 1, max: 3600, help: 'Retry-After seconds when every node is full or down', metavar: 'SECONDS' },
  stateStore: {
    type: 'string',
    env: 'NBPOOL_REDIRECTOR_STORE',
    // '' would mean no store at all: the node list lost at every restart, unsaid.
    check: checks.names('a store (file:///path.json, redis://host:port or memory:)'),
    help: 'where the node list persists: file:///path.json, redis://host:port or memory: [default file://<state dir>/redirector-nodes.json]',
    metavar: 'URL',
  },
  adminAuthToken: {
    type: 'string',
    env: 'ADMIN_AUTH_TOKEN',
    help: 'token the admin API requires (Authorization: token T); default: generated, kept in <state dir>/admin-token',
    metavar: 'TOKEN',
  },
  trustedProxy: {
    type: 'list',
    default: ['127.0.0.0/8', '::1'],
    help: "addresses or CIDR ranges of fronts (a TLS terminator) whose X-Forwarded-For names the visitor; the visitor's address goes on to the nodes for their per-client caps",
    metavar: 'CIDRS',
  },
  corsOrigin: { type: 'string', default: '*', check: checks.headerValue, help: 'Access-Control-Allow-Origin for /api/spawn and /api/stats ("" for none)', metavar: 'ORIGIN' },
  frameAncestors: { type: 'string', default: '*', check: checks.frameAncestors, help: 'CSP frame-ancestors: which pages may embed the link in an iframe', metavar: 'SOURCES' },
  logLevel: { type: 'string', default: 'info', env: 'NBPOOL_LOG_LEVEL', choices: LOG_LEVELS, help: 'log level', metavar: 'LEVEL' },
  stateDir: stateDirOption,
} as const;

export type RedirectorOptions = ConfigValues<typeof redirectorOptionSpecs>;

/** A node as given by flags, the config file or the admin API: its URL and, optionally, its id. */
export interface NodeSpec {
  url: string;
  id?: string;
}

const NODE_KEYS = ['url', 'id'];

/**
 * What is wrong with a node given as an object (config file, admin API) beside its URL, or
 * undefined: an "id" that is not a string, or a key nothing reads (a "weight" would mislead its operator).
 */
export function nodeSpecProblem(entry: Record<string, unknown>): string | undefined {
  const key = Object.keys(entry).find((k) => !NODE_KEYS.includes(k));
  if (key !== undefined) return `unknown key ${JSON.stringify(key)}; a node has "url" and, optionally, "id"`;
  if (entry.id !== undefined && typeof entry.id !== 'string') return '"id" must be a string';
  return undefined;
}

export interface RedirectorConfig extends RedirectorOptions {
  /** Nodes from --node and the config file's `nodes`, added to the persisted list at start. */
  nodes: NodeSpec[];
  stateStore: string;
}

const DEFAULT_STORE_FILE = 'redirector-nodes.json';

/** The config file's `nodes`: a list of URLs or of `{"url": ..., "id": ...}`. */
function fileNodes(value: unknown, source: string): NodeSpec[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${source}: "nodes" must be a list of URLs or {"url", "id"} objects`);
  return value.map((entry, i) => {
    if (typeof entry === 'string') return { url: entry };
    if (typeof entry === 'object' && entry !== null && typeof (entry as NodeSpec).url === 'string') {
      const problem = nodeSpecProblem(entry as Record<string, unknown>);
      if (problem !== undefined) throw new ConfigError(`${source}: nodes[${i}]: ${problem}`);
      const { url, id } = entry as NodeSpec;
      return id === undefined ? { url } : { url, id };
    }
    throw new ConfigError(`${source}: nodes[${i}] must be a URL or {"url": ..., "id": ...}`);
  });
}

export function parseRedirectorConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): { config: RedirectorConfig; help: boolean } {
  const { values, positionals, help, file } = parseConfig(redirectorOptionSpecs, argv, env, ['nodes']);
  if (positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])} (nodes are given with --node URL)`);
  const nodes = [...fileNodes(file.nodes, 'config file'), ...values.node.map((url) => ({ url }))];
  for (const node of nodes) {
    try {
      normalizeNodeUrl(node.url);
    } catch (err) {
      throw err instanceof HttpError ? new ConfigError(err.message) : err;
    }
  }
  return {
    help,
    config: {
      ...values,
      nodes,
      stateStore: values.stateStore ?? pathToFileURL(resolve(cwd, values.stateDir, DEFAULT_STORE_FILE)).href,
    },
  };
}
