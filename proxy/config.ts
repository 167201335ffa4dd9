/** `nbpool proxy` options: configurable-http-proxy's flag names and defaults, plus ours. */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { checks, parseConfig, withOptionFile, type ConfigValues, type OptionSpecs } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { LOG_LEVELS } from '../shared/log.js';
import { stateDirOption } from '../shared/state-dir.js';
import { trustedProxies } from './trusted-proxies.js';

export const proxyOptionSpecs = {
  ip: { type: 'string', check: checks.address, help: 'public-facing IP of the proxy (default: all interfaces)', metavar: 'IP' },
  port: { type: 'int', default: 8000, min: 0, max: 65535, help: 'public-facing port of the proxy', metavar: 'PORT' },
  sslKey: { type: 'string', help: 'TLS key file for the public port', metavar: 'FILE' },
  sslCert: { type: 'string', help: 'TLS certificate file for the public port', metavar: 'FILE' },
  sslCa: { type: 'string', help: 'TLS certificate authority file for the public port', metavar: 'FILE' },
  apiIp: { type: 'string', check: checks.address, default: 'localhost', help: 'inward-facing IP for the REST API', metavar: 'IP' },
  apiPort: { type: 'int', min: 0, max: 65535, help: 'port of the REST API (default: --port + 1)', metavar: 'PORT' },
  authToken: {
    type: 'string',
    env: 'CONFIGPROXY_AUTH_TOKEN',
    help: 'token the REST API requires in `Authorization: token <t>` (default: generated, kept in <state dir>/route-api-token)',
    metavar: 'TOKEN',
  },
  defaultTarget: { type: 'url', help: 'target for requests no route matches (proto://host[:port])' },
  errorTarget: { type: 'url', help: 'server asked for error pages: GET <target>/<code>?url=<path>' },
  errorPath: { type: 'string', help: 'directory of <code>.html / error.html error pages', metavar: 'DIR' },
  noXForward: { type: 'boolean', help: "don't add X-Forwarded-* headers to proxied requests" },
  noPrependPath: { type: 'boolean', help: "don't prepend the target's path to proxied requests" },
  noIncludePrefix: { type: 'boolean', help: "don't include the routing prefix in proxied requests" },
  customHeader: { type: 'list', splitCommas: false, help: 'header added to proxied requests, k:v (repeatable)', metavar: 'K:V' },
  hostRouting: { type: 'boolean', help: 'use host routing (the host is the first path segment)' },
  timeout: { type: 'int', min: 1, help: 'ms of client inactivity after which a request is dropped', metavar: 'MS' },
  proxyTimeout: { type: 'int', min: 1, help: 'ms to wait for the target to answer before a 503', metavar: 'MS' },
  keepAliveTimeout: { type: 'int', default: 5000, min: 1, help: 'ms an idle keep-alive client connection stays open', metavar: 'MS' },
  metricsIp: { type: 'string', check: checks.address, help: 'IP of the metrics server (default: all interfaces)', metavar: 'IP' },
  metricsPort: { type: 'int', min: 0, max: 65535, help: 'port of the Prometheus metrics server (default: none)', metavar: 'PORT' },
  storageBackend: {
    type: 'string',
    default: 'memory:',
    check: checks.names('a store (memory: or redis://host:port)'),
    help: 'route storage: memory: or redis://host:port[/db] (shared by several proxies)',
    metavar: 'URL',
  },
  redisUrl: { type: 'url', protocols: ['redis:', 'rediss:'], env: 'NBPOOL_REDIS_URL', help: 'same as --storage-backend redis://...' },
  frameAncestors: {
    type: 'string',
    check: checks.frameAncestors,
    help: "allow embedding in iframes of these origins: sets CSP frame-ancestors, drops X-Frame-Options (e.g. \"'self' https://pub.example\")",
    metavar: 'SOURCES',
  },
  trustedProxy: {
    type: 'list',
    help: 'a front (IP or CIDR, repeatable) whose X-Forwarded-Proto: https is believed: visitors behind it get cross-site cookies',
    metavar: 'IP/CIDR',
  },
  activityFlushMs: { type: 'int', default: 5000, min: 10, help: 'how often last_activity changes are written to the store', metavar: 'MS' },
  resyncMs: { type: 'int', default: 10_000, min: 100, help: 'how often the route table is re-read from a shared store', metavar: 'MS' },
  logLevel: { type: 'string', default: 'info', env: 'NBPOOL_LOG_LEVEL', choices: LOG_LEVELS, help: 'log level', metavar: 'LEVEL' },
  pidFile: { type: 'string', help: 'write our PID to this file', metavar: 'FILE' },
  stateDir: stateDirOption,
} as const satisfies OptionSpecs;

export type ProxyOptions = ConfigValues<typeof proxyOptionSpecs>;

/** The resolved configuration: options with CHP's derived defaults filled in. */
export interface ProxyConfig extends Omit<ProxyOptions, 'apiPort' | 'customHeader'> {
  apiPort: number;
  /** Parsed --custom-header pairs. */
  customHeaders: Record<string, string>;
}

const FRAMING_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** `k:v` pairs -> headers; whitespace around name and value trimmed, as CHP does. */
export function parseCustomHeaders(pairs: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const pair of pairs) {
    const colon = pair.indexOf(':');
    const name = colon === -1 ? '' : pair.slice(0, colon).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new ConfigError(`--custom-header ${JSON.stringify(pair)} must look like name:value`);
    }
    // These frame the request or the connection: set by hand they would break every request.
    if (FRAMING_HEADERS.has(name.toLowerCase())) throw new ConfigError(`--custom-header ${JSON.stringify(name)}: the proxy sets this header itself`);
    const value = pair.slice(colon + 1).trim();
    const problem = checks.headerValue(value);
    if (problem) throw new ConfigError(`--custom-header ${JSON.stringify(name)}: ${problem}`);
    headers[name] = value;
  }
  return headers;
}

/** CHP: the API listens next to the public port unless told otherwise. */
function nextPort(port: number): number {
  if (port === 65535) throw new ConfigError('--api-port: --port 65535 leaves no next port for the REST API; give --api-port');
  return port === 0 ? 0 : port + 1;
}

/** Fills in derived defaults; exported so `nbpool up` can build a config from its own options. */
export function resolveProxyConfig(options: ProxyOptions): ProxyConfig {
  const { apiPort, customHeader, ...rest } = options;
  if ((options.sslKey === undefined) !== (options.sslCert === undefined)) {
    throw new ConfigError('--ssl-key and --ssl-cert go together');
  }
  if (options.sslCa !== undefined && options.sslKey === undefined) throw new ConfigError('--ssl-ca goes with --ssl-key and --ssl-cert (alone it would be ignored)');
  trustedProxies(options.trustedProxy); // refuses a bad entry now, with one clear line
  const storageBackend = options.redisUrl ?? options.storageBackend;
  return {
    ...rest,
    storageBackend,
    apiPort: apiPort ?? nextPort(options.port),
    customHeaders: parseCustomHeaders(customHeader),
  };
}

/**
 * The public port's TLS material, read and checked at start: a missing file or a key that does not
 * fit its certificate is one clear line naming the option, not a stack trace (or a port that fails
 * every handshake). Undefined when the port speaks plain HTTP.
 */
export function loadTls(config: Pick<ProxyOptions, 'sslKey' | 'sslCert' | 'sslCa'>): SecureContextOptions | undefined {
  if (config.sslKey === undefined || config.sslCert === undefined) return undefined;
  const files: SecureContextOptions = {
    key: withOptionFile('--ssl-key', config.sslKey, (file) => readFileSync(file)),
    cert: withOptionFile('--ssl-cert', config.sslCert, (file) => readFileSync(file)),
    ca: config.sslCa === undefined ? undefined : withOptionFile('--ssl-ca', config.sslCa, (file) => readFileSync(file)),
  };
  // Built once here only to check it: a server's `secureContext` option is not used (node takes the files).
  try {
    createSecureContext(files);
  } catch (err) {
    throw new ConfigError(`--ssl-key ${config.sslKey} with --ssl-cert ${config.sslCert}${config.sslCa ? ` and --ssl-ca ${config.sslCa}` : ''}: not a usable key and certificate (${(err as Error).message})`);
  }
  return files;
}

export function parseProxyArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const parsed = parseConfig(proxyOptionSpecs, argv, env);
  if (parsed.positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  return { help: parsed.help, config: resolveProxyConfig(parsed.values) };
}
