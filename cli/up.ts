/**
 * `nbpool up`: a proxy and an orchestrator for one Docker host, in one process. The orchestrator
 * gets the proxy's in-process route table client (same interface as the REST API, no network hop
 * on the claim path); the proxy sends unrouted traffic to the orchestrator.
 *
 * Flags are the orchestrator's, with --ip/--port naming the public (proxy) address, plus the proxy
 * options an operator of one host needs. The orchestrator's own handler listens on loopback.
 */
import { parseConfig, renderHelp, type OptionSpecs } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { onShutdown } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { freeLoopbackPort } from '../shared/net.js';
import type { NodeStats } from '../shared/types.js';
import { openBackend } from '../orchestrator/backends.js';
import { buildOrchestratorConfig, defaultInstance, orchestratorOptionSpecs } from '../orchestrator/config.js';
import { startOrchestrator } from '../orchestrator/server.js';
import { proxyOptionSpecs, resolveProxyConfig } from '../proxy/config.js';
import { startProxy } from '../proxy/server.js';

// The orchestrator's REST-client options make no sense here: up hands it the proxy in-process.
const { configproxyEndpoint: _endpoint, configproxyAuthToken: _token, ip: _ip, port: _port, ...orchestratorOnly } = orchestratorOptionSpecs;

const UP_DEFAULT_PORT = 8000;

const upOptionSpecs = {
  ip: { type: 'string', default: '127.0.0.1', env: 'NBPOOL_IP', help: 'public address visitors connect to (the proxy)', metavar: 'IP' },
  port: { type: 'int', default: UP_DEFAULT_PORT, min: 0, max: 65535, env: 'NBPOOL_PORT', help: 'public port (the proxy)', metavar: 'PORT' },
  orchestratorPort: { type: 'int', default: 0, min: 0, max: 65535, help: "port of the orchestrator's own handler on 127.0.0.1 (0: any free port)", metavar: 'PORT' },
  apiIp: proxyOptionSpecs.apiIp,
  apiPort: proxyOptionSpecs.apiPort,
  authToken: proxyOptionSpecs.authToken,
  storageBackend: proxyOptionSpecs.storageBackend,
  redisUrl: proxyOptionSpecs.redisUrl,
  frameAncestors: proxyOptionSpecs.frameAncestors,
  sslKey: proxyOptionSpecs.sslKey,
  sslCert: proxyOptionSpecs.sslCert,
  metricsIp: proxyOptionSpecs.metricsIp,
  metricsPort: proxyOptionSpecs.metricsPort,
  ...orchestratorOnly,
} as const satisfies OptionSpecs;

const HELP_SUMMARY =
  'Runs a proxy and an orchestrator for one Docker host (or, with --backend swarm on a manager,\n' +
  'a whole swarm) in one process: visitors open\n' +
  'http://IP:PORT/ and each gets their own warm container. Pool flags are the orchestrator\'s\n' +
  '(see nbpool orchestrator --help); --ip/--port name the public address.';

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
  const { ip, port, orchestratorPort, apiIp, apiPort, authToken, storageBackend, redisUrl, frameAncestors, sslKey, sslCert, metricsIp, metricsPort, ...pool } =
    parsed.values;
  // Known before the proxy starts, so the proxy can name the orchestrator as its default target.
  const handlerPort = orchestratorPort || (await freeLoopbackPort());
  const { backend, config: orchestratorConfig } = await openBackend(
    buildOrchestratorConfig({ ...pool, ip: '127.0.0.1', port: handlerPort, configproxyEndpoint: 'http://in-process', configproxyAuthToken: undefined }, parsed.file),
  );
  const proxyConfig = resolveProxyConfig({
    ...parseConfig(proxyOptionSpecs, [], {}).values,
    ip,
    port,
    apiIp,
    apiPort,
    authToken,
    storageBackend,
    redisUrl,
    frameAncestors,
    sslKey,
    sslCert,
    metricsIp,
    metricsPort,
    defaultTarget: `http://127.0.0.1:${handlerPort}`,
    logLevel: pool.logLevel,
  });

  const log = createLogger('nbpool', pool.logLevel);
  const proxy = await startProxy(proxyConfig, log.child({ component: 'proxy' }));
  // Without --instance, the node's instance follows its public port (known now, even for --port 0).
  if (!pool.instance) orchestratorConfig.instance = defaultInstance(Number(new URL(proxy.publicUrl).port), UP_DEFAULT_PORT);
  let orchestrator;
  try {
    orchestrator = await startOrchestrator(orchestratorConfig, { routes: proxy.routes, log: log.child({ component: 'orchestrator' }), backend });
  } catch (err) {
    await proxy.close();
    throw err;
  }
  const running = orchestrator;
  process.stderr.write(
    `nbpool up: visitors open ${proxy.publicUrl}/  (route API ${proxy.apiUrl}, admin and status page ${running.adminUrl}/)\n`,
  );
  const stopProgress = showProgress(() => running.orchestrator.stats(), `${proxy.publicUrl}/`);
  onShutdown(
    log,
    async () => {
      stopProgress();
      // Orchestrator first: it stops taking visitors while the proxy still serves those it has.
      await running.close();
      await proxy.close();
    },
    orchestratorConfig.cleanupOnExit ? 130_000 : 20_000,
  );
}
