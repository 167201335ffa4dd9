/** `nbpool orchestrator`: warm container pools on Docker, driving a proxy over its REST API. */
import { ConfigError, HttpError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { onShutdown } from '../shared/lifecycle.js';
import { HttpRouteTableClient } from '../shared/route-client.js';
import { openBackend } from './backends.js';
import { ADMIN_TOKEN_FILE, ensureToken, readKeptToken, ROUTE_API_TOKEN_FILE, statusPageLink } from '../shared/token.js';
import { loadOrchestratorConfig, orchestratorHelp } from './config.js';
import { openClaimJournal, startOrchestrator } from './server.js';

/** How long a starting orchestrator waits for the proxy's REST API (they often start together). */
const PROXY_WAIT_MS = 60_000;

/**
 * Waits until the proxy's REST API answers: adoption re-registers routes there, so the orchestrator
 * cannot start without it. A proxy that answers but refuses (wrong token) fails at once.
 */
async function waitForProxy(routes: HttpRouteTableClient, endpoint: string, log: Logger): Promise<void> {
  const deadline = Date.now() + PROXY_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await routes.getRoutes();
      if (attempt > 1) log.info({ endpoint }, 'proxy REST API answers');
      return;
    } catch (err) {
      const reason = (err as Error).message;
      if (err instanceof HttpError) throw new ConfigError(`the proxy REST API at ${endpoint} refused us: ${reason}`);
      if (Date.now() > deadline) throw new ConfigError(`no proxy REST API answered at ${endpoint} within ${PROXY_WAIT_MS / 1000} s: ${reason}`);
      if (attempt === 1) log.warn({ endpoint, reason }, 'waiting for the proxy REST API');
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)));
    }
  }
}

export async function run(argv: string[]): Promise<void> {
  const loaded = loadOrchestratorConfig(argv);
  if (loaded.help) {
    process.stdout.write(orchestratorHelp());
    return;
  }
  const { backend, config } = await openBackend(loaded.config);
  const log = createLogger('orchestrator', config.logLevel);
  const givenAdminToken = config.adminAuthToken;
  const adminToken = ensureToken(givenAdminToken, ADMIN_TOKEN_FILE, config.stateDir);
  config.adminAuthToken = adminToken.token;
  // A proxy with the same state directory (`nbpool proxy` started here) keeps its route API token there.
  config.configproxyAuthToken ??= readKeptToken(ROUTE_API_TOKEN_FILE, config.stateDir)?.token;
  // Opened before the (possibly long) wait for the proxy, so a bad path is said at once.
  const journal = openClaimJournal(config);
  const routes = new HttpRouteTableClient(config.configproxyEndpoint, config.configproxyAuthToken);
  await waitForProxy(routes, config.configproxyEndpoint, log);
  const running = await startOrchestrator(config, { routes, log, backend, journal });
  process.stderr.write(`nbpool orchestrator: status page ${statusPageLink(running.adminUrl, adminToken, givenAdminToken)}\n`);
  onShutdown(log, () => running.close(), config.cleanupOnExit ? 130_000 : 15_000);
}
