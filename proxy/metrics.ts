/** The proxy's Prometheus metrics, shaped so the hot path does no label lookups. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ProxyMetrics {
  /** Counts one answered request by status and observes its duration in seconds. */
  request(status: number, seconds: number): void;
  websocketOpened(): void;
  websocketClosed(): void;
  apiRequest(status: number): void;
}

export function createProxyMetrics(registry: Registry, routeCount: () => number): ProxyMetrics {
  const requests = new Counter({
    name: 'nbpool_proxy_requests_total',
    help: 'Requests answered on the public port, by status code and class',
    labelNames: ['code', 'class'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'nbpool_proxy_request_duration_seconds',
    help: 'Time from request to the end of the response through the proxy',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const websockets = new Gauge({
    name: 'nbpool_proxy_websockets_open',
    help: 'WebSocket (upgraded) connections open through the proxy',
    registers: [registry],
  });
  new Gauge({
    name: 'nbpool_proxy_routes',
    help: 'Routes in the route table',
    registers: [registry],
    collect() {
      this.set(routeCount());
    },
  });
  const api = new Counter({
    name: 'nbpool_proxy_api_requests_total',
    help: 'REST API requests, by status code',
    labelNames: ['code'],
    registers: [registry],
  });
  // Label children cached by status code: prom-client hashes labels on every labels() call.
  const byStatus = new Map<number, Counter.Internal>();
  return {
    request(status, seconds) {
      let child = byStatus.get(status);
      if (!child) {
        child = requests.labels({ code: String(status), class: `${Math.floor(status / 100)}xx` });
        byStatus.set(status, child);
      }
      child.inc();
      latency.observe(seconds);
    },
    websocketOpened: () => websockets.inc(),
    websocketClosed: () => websockets.dec(),
    apiRequest: (status) => api.inc({ code: String(status) }),
  };
}
