/** `nbpool redirector`: one stable link in front of many nodes (proxy + orchestrator per Docker host). */
import { renderHelp } from '../shared/config.js';
import { onShutdown } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { ADMIN_TOKEN_FILE, ensureToken, statusPageLink } from '../shared/token.js';
import { parseRedirectorConfig, redirectorOptionSpecs } from './config.js';
import { startRedirector } from './server.js';

const SUMMARY = `Sends each visitor of one stable link to the node with most free room, weighted by each node's
room (or tmpnb's "available"), never to a node that is down or draining. Nodes come from --node,
the config file's "nodes" list ([URL or {"url", "id"}]) and the admin API (--admin-auth-token):
GET|POST /api/nodes, DELETE /api/nodes/ID, POST /api/nodes/ID/drain|undrain, and
tmpnb-redirector's POST|DELETE /hosts {"host": URL}. The node list persists in --state-store;
nodes given by flags or the config file are added at every start if missing.`;

export async function run(argv: string[]): Promise<void> {
  const { config, help } = parseRedirectorConfig(argv);
  if (help) {
    process.stdout.write(renderHelp('Usage: nbpool redirector [options]', SUMMARY, redirectorOptionSpecs));
    return;
  }
  const log = createLogger('redirector', config.logLevel);
  const given = config.adminAuthToken;
  const adminToken = ensureToken(given, ADMIN_TOKEN_FILE, config.stateDir);
  const redirector = await startRedirector({ ...config, adminAuthToken: adminToken.token }, log);
  process.stderr.write(`nbpool redirector: status page ${statusPageLink(redirector.adminUrl, adminToken, given)}\n`);
  onShutdown(log, () => redirector.close());
}
