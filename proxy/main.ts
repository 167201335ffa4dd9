/** `nbpool proxy`: the configurable-http-proxy compatible front door, as its own process. */
import { renderHelp } from '../shared/config.js';
import { onShutdown, writePidFile } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { ensureToken, ROUTE_API_TOKEN_FILE, whereToFind } from '../shared/token.js';
import { parseProxyArgs, proxyOptionSpecs } from './config.js';
import { startProxy } from './server.js';

export async function run(argv: string[]): Promise<void> {
  const { help, config } = parseProxyArgs(argv);
  if (help) {
    process.stdout.write(
      renderHelp(
        'Usage: nbpool proxy [options]',
        'HTTP/WebSocket reverse proxy with configurable-http-proxy\'s flags and REST API (/api/routes).',
        proxyOptionSpecs,
      ),
    );
    return;
  }
  const log = createLogger('proxy', config.logLevel);
  const given = config.authToken;
  const routeToken = ensureToken(given, ROUTE_API_TOKEN_FILE, config.stateDir);
  config.authToken = routeToken.token;
  // Written before listening, so it exists by the time anyone sees the proxy answer.
  const removePidFile = writePidFile(config.pidFile);
  let proxy;
  try {
    proxy = await startProxy(config, log);
  } catch (err) {
    removePidFile();
    throw err;
  }
  process.stderr.write(`nbpool proxy: route API ${proxy.apiUrl} (Authorization: token ...; ${whereToFind(routeToken, given, 'CONFIGPROXY_AUTH_TOKEN')})\n`);
  onShutdown(log, async () => {
    await proxy.close();
    removePidFile();
  });
}
