/**
 * `nbpool up`: a proxy and an orchestrator for one Docker host, in one process. The orchestrator
 * gets the proxy's in-process route table client (same interface as the REST API, no network hop
 * on the claim path); the proxy sends unrouted traffic to the orchestrator.
 *
 * Its options are every proxy option and every orchestrator option (derived from their specs, so a
 * flag added to either program is a flag of `up` too), less the few that `up` wires itself:
 * --ip/--port name the public (proxy) address, the orchestrator's own handler listens on loopback.
 */
import { checks, parseConfig, renderHelp, type ConfigValues, type OptionSpecs } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { onShutdown, writePidFile } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { freeLoopbackPort } from '../shared/net.js';
import { ADMIN_TOKEN_FILE, ensureToken, ROUTE_API_TOKEN_FILE, statusPageLink, whereToFind } from '../shared/token.js';
import type { NodeStats } from '../shared/types.js';
import { openBackend } from '../orchestrator/backends.js';
import { buildOrchestratorConfig, defaultInstance, orchestratorOptionSpecs } from '../orchestrator/config.js';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/server.js';
import { proxyOptionSpecs, resolveProxyConfig } from '../proxy/config.js';
import { startProxy, type RunningProxy } from '../proxy/server.js';

// Options `up` sets itself: the public address is its own (--ip/--port below), the proxy's default
// target is the orchestrator, whose handler listens on loopback and is handed the proxy in-process.
const { ip: _proxyIp, port: _proxyPort, defaultTarget: _defaultTarget, ...proxyOptions } = proxyOptionSpecs;
const { ip: _orchIp, port: _orchPort, configproxyEndpoint: _endpoint, configproxyAuthToken: _token, ...orchestratorOptions } = orchestratorOptionSpecs;

const UP_DEFAULT_PORT = 8000;

export const upOptionSpecs = {
  ip: { type: 'string', check: checks.address, default: '127.0.0.1', env: 'NBPOOL_IP', help: 'public address visitors connect to (the proxy)', metavar: 'IP' },
  port: { type: 'int', default: UP_DEFAULT_PORT, min: 0, max: 65535, env: 'NBPOOL_PORT', help: 'public port (the proxy)', metavar: 'PORT' },
  orchestratorPort: { type: 'int', default: 0, min: 0, max: 65535, help: "port of the orchestrator's own handler on 127.0.0.1 (0: any free port)", metavar: 'PORT' },
  ...proxyOptions,
  // The orchestrator's last: where both programs have an option (--log-level), its spec (with env) wins.
  ...orchestratorOptions,
} as const satisfies OptionSpecs;

/** The values of `specs`' options among `values` (both programs read the options they share). */
function optionsOf<S extends OptionSpecs>(specs: S, values: Record<string, unknown>): Partial<ConfigValues<S>> {
  return Object.fromEntries(Object.keys(specs).filter((key) => key in values).map((key) => [key, values[key]])) as Partial<ConfigValues<S>>;
}

const HELP_SUMMARY =
  'Runs a proxy and an orchestrator for one Docker host (or, with --backend swarm on a manager,\n' +
  'a whole swarm) in one process: visitors open\n' +
  'http://IP:PORT/ and each gets their own warm container. Every flag of nbpool proxy and of\n' +
  'nbpool orchestrator applies (see their --help); --ip/--port name the public address.';

function progressLine(stats: NodeStats, url: string): string {
  const pools = Object.entries(stats.pools)
    .map(([name, p]) => `${name} ${p.warm}/${p.size} warm${p.starting ? `, ${p.starting} starting` : ''}${p.backoff_until ? ', backing off' : ''}`)
    .join('; ');
  return `nbpool up: ${url}  |  ${pools}  |  ${stats.claimed} claimed, room ${stats.room}/${stats.capacity}`;
}

/**
 * Shows pool filling on the terminal: a live line on a TTY, otherwise one line per change until
 * every pool is full for the first time (logs carry the rest).
 */
function showProgress(stats: () => NodeStats, url: string): () => void {
  const tty = process.stderr.isTTY;
  let last = '';
  let filled = false;
  const tick = () => {
    const now = stats();
    const line = progressLine(now, url);
    const full = Object.values(now.pools).every((p) => p.warm >= p.size);
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
    } else if (!filled && line !== last) {
      process.stderr.write(line + '\n');
    }
    if (full && !filled) {
      filled = true;
      if (!tty) process.stderr.write(`nbpool up: pools are full; point a browser at ${url}\n`);
    }
    last = line;
  };
  tick();
  const timer = setInterval(tick, 500);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (tty) process.stderr.write('\n');
  };
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseConfig(upOptionSpecs, argv, process.env, ['pools']);
  if (parsed.help) {
    process.stdout.write(renderHelp('Usage: nbpool up [options]', HELP_SUMMARY, upOptionSpecs));
    return;
  }
  if (parsed.positionals.length) throw new ConfigError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  const values = parsed.values;
  // Both APIs that change state take a token: the operator's, else one kept in the state directory.
  const routeToken = ensureToken(values.authToken, ROUTE_API_TOKEN_FILE, values.stateDir);
  const adminToken = ensureToken(values.adminAuthToken, ADMIN_TOKEN_FILE, values.stateDir);
  // Known before the proxy starts, so the proxy can name the orchestrator as its default target.
  const handlerPort = values.orchestratorPort || (await freeLoopbackPort());
  const { backend, config: orchestratorConfig } = await openBackend(buildOrchestratorConfig(
    {
      ...(optionsOf(orchestratorOptionSpecs, values) as ConfigValues<typeof orchestratorOptionSpecs>),
      ip: '127.0.0.1',
      port: handlerPort,
      adminAuthToken: adminToken.token,
      configproxyEndpoint: 'http://in-process',
      configproxyAuthToken: undefined,
    },
    parsed.file,
  ));
  const proxyConfig = resolveProxyConfig({
    ...(optionsOf(proxyOptionSpecs, values) as ConfigValues<typeof proxyOptionSpecs>),
    ip: values.ip,
    port: values.port,
    authToken: routeToken.token,
    defaultTarget: `http://127.0.0.1:${handlerPort}`,
  });

  const log = createLogger('nbpool', values.logLevel);
  const removePidFile = writePidFile(proxyConfig.pidFile);
  let proxy: RunningProxy | undefined;
  let running: RunningOrchestrator;
  try {
    proxy = await startProxy(proxyConfig, log.child({ component: 'proxy' }));
    // Without --instance, the node's instance follows its public port (known now, even for --port 0).
    if (!values.instance) orchestratorConfig.instance = defaultInstance(Number(new URL(proxy.publicUrl).port), UP_DEFAULT_PORT);
    running = await startOrchestrator(orchestratorConfig, { routes: proxy.routes, log: log.child({ component: 'orchestrator' }), backend });
    // Unrouted visitors reach the orchestrator without the loopback HTTP hop.
    proxy.serveInProcess(proxyConfig.defaultTarget!, running.handle);
  } catch (err) {
    await proxy?.close();
    removePidFile();
    throw err;
  }
  const started = proxy;
  process.stderr.write(
    `nbpool up: visitors open ${started.publicUrl}/  (status page and admin API ${running.adminUrl}/)\n` +
      `nbpool up: status page ${statusPageLink(running.adminUrl, adminToken, values.adminAuthToken)}\n` +
      `nbpool up: route API ${started.apiUrl} (Authorization: token ...; ${whereToFind(routeToken, values.authToken, 'CONFIGPROXY_AUTH_TOKEN')})\n`,
  );
  const stopProgress = showProgress(() => running.orchestrator.stats(), `${started.publicUrl}/`);
  onShutdown(
    log,
    async () => {
      stopProgress();
      // Orchestrator first: it stops taking visitors while the proxy still serves those it has.
      await running.close();
      await started.close();
      removePidFile();
    },
    orchestratorConfig.cleanupOnExit ? 130_000 : 20_000,
  );
}
