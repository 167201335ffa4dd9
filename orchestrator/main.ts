/** `nbpool orchestrator`: warm container pools on Docker, driving a proxy over its REST API. */
import { createLogger } from '../shared/log.js';
import { onShutdown } from '../shared/lifecycle.js';
import { HttpRouteTableClient } from '../shared/route-client.js';
import { loadOrchestratorConfig, orchestratorHelp } from './config.js';
import { startOrchestrator } from './server.js';

export async function run(argv: string[]): Promise<void> {
  const loaded = loadOrchestratorConfig(argv);
  if (loaded.help) {
    process.stdout.write(orchestratorHelp());
    return;
  }
  const { config } = loaded;
  const log = createLogger('orchestrator', config.logLevel);
  const routes = new HttpRouteTableClient(config.configproxyEndpoint, config.configproxyAuthToken);
  const running = await startOrchestrator(config, { routes, log });
  onShutdown(log, () => running.close(), config.cleanupOnExit ? 130_000 : 15_000);
}
