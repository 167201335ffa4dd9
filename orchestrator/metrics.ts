/** The orchestrator's Prometheus metrics; pool levels are read from the core when scraped. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PoolCore } from './pool.js';

type Level = 'warm' | 'claimed' | 'starting' | 'waiting';

export function createOrchestratorMetrics(registry: Registry, core: PoolCore) {
  const gauge = (name: string, help: string, key: Level) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of core.poolNames()) this.set({ pool }, core.figures(pool, Date.now())[key]);
      },
    });
  const counter = (name: string, help: string, labelNames: string[] = ['pool']) => new Counter({ name, help, labelNames, registers: [registry] });
  return {
    warm: gauge('nbpool_pool_warm', 'Warm containers ready to hand out', 'warm'),
    claimed: gauge('nbpool_pool_claimed', 'Containers handed to visitors', 'claimed'),
    starting: gauge('nbpool_pool_starting', 'Containers starting or being probed', 'starting'),
    waiting: gauge('nbpool_pool_waiting', 'Visitors waiting for a container', 'waiting'),
    claims: counter('nbpool_claims_total', 'Containers handed out'),
    claimLatency: new Histogram({
      name: 'nbpool_claim_seconds',
      help: 'Request to route live, for claims served from the warm pool',
      labelNames: ['pool'],
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1],
      registers: [registry],
    }),
    failures: counter('nbpool_start_failures_total', 'Containers that failed to start or answer'),
    culls: counter('nbpool_culls_total', 'Containers removed by culling', ['pool', 'reason']),
    healed: counter('nbpool_healed_total', 'Containers found dead or gone and replaced'),
    turnedAway: counter('nbpool_turned_away_total', 'Visitors answered full or too many requests'),
    hookFailures: counter('nbpool_claim_hook_failures_total', 'Claim hooks that failed'),
    engineDisconnects: counter('nbpool_engine_disconnects_total', 'Times the connection to the container engine was lost', []),
  };
}

export type OrchestratorMetrics = ReturnType<typeof createOrchestratorMetrics>;
