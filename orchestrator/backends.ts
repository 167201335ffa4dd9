/**
 * The container backend a configuration names (--backend), with the options only one engine
 * understands checked by that engine's side: a mistake is one ConfigError line at start.
 */
import { ConfigError } from '../shared/errors.js';
import type { ContainerBackend } from './backend.js';
import type { OrchestratorConfig } from './config.js';
import { DockerBackend, engineClient } from './docker-backend.js';
import { SwarmBackend } from './swarm-backend.js';

/** Options a Swarm service cannot honour. */
function checkSwarmOptions(config: OrchestratorConfig): void {
  if (config.noEgress) throw new ConfigError('--no-egress: the swarm backend cannot close egress yet; attach services to an internal overlay network instead (--docker-network)');
  for (const pool of config.pools) {
    const where = pool.name === 'default' ? '' : ` (pool ${pool.name})`;
    if (pool.cpuShares !== undefined) throw new ConfigError(`--cpu-shares${where}: swarm services have no CPU shares; use --cpu-quota (a CPU limit)`);
    if (pool.claimHook) throw new ConfigError(`--claim-hook${where}: the swarm backend cannot run commands in containers (no exec across nodes)`);
  }
}

/**
 * Builds the backend and resolves what depends on it: on swarm, the default capacity comes from
 * the nodes' memory, not this host's.
 */
export async function openBackend(config: OrchestratorConfig, docker = engineClient()): Promise<{ backend: ContainerBackend; config: OrchestratorConfig }> {
  if (config.backend === 'docker') {
    if (config.placementConstraint.length) throw new ConfigError('--placement-constraint needs --backend swarm');
    return { backend: new DockerBackend(docker), config };
  }
  checkSwarmOptions(config);
  const backend = new SwarmBackend(docker, { constraints: config.placementConstraint, startTimeoutMs: config.probeTimeout * 1000 });
  try {
    await backend.check(config.dockerNetwork);
  } catch (err) {
    throw new ConfigError(`--backend swarm: ${(err as Error).message}`);
  }
  const capacity = config.maxContainers ?? (await backend.capacity(config.memoryBytes));
  return { backend, config: { ...config, capacity } };
}
