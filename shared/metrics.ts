/** Prometheus metrics: one registry per program, served as text on GET /metrics (shared/web.ts). */
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(program: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ program });
  collectDefaultMetrics({ register: registry });
  return registry;
}
