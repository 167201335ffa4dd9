/**
 * How a proxy on the manager reaches a visitor's container on a worker: host-mode published port
 * (node address + port) vs an attachable overlay network (the task's overlay address). The same
 * proxy program (the nbpool/nbpool image) runs in a container on the manager attached to the
 * overlay, so both routes start from the same place; the proxy as a host process (as in
 * `nbpool up --backend swarm`) is measured on the host-port route too. Per route: time from adding
 * the route to the first byte of the container's answer on a fresh connection (the part of
 * claim-to-first-byte that depends on routing; the claim itself never touches the engine), and
 * wrk throughput through the proxy.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { SwarmBackend } from '../../orchestrator/swarm-backend.js';
import type { SwarmWorker, TestSwarm } from '../../test/helpers/swarm.js';
import { startProxy } from '../../test/orchestrator/harness.js';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { waitFor } from '../../test/helpers/net.js';
import { httpRequest } from './http.js';
import { median, percentile, round } from './stats.js';
import { runWrk } from './wrk.js';

const exec = promisify(execFile);
export const PROXY_IMAGE = 'nbpool/nbpool:latest';

export interface RouteFigures {
  firstByteP50Ms: number;
  firstByteP90Ms: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

async function measure(proxyUrl: string, routes: HttpRouteTableClient, target: string, firstBytes: number, seconds: number): Promise<RouteFigures> {
  const times: number[] = [];
  for (let i = 0; i < firstBytes; i++) {
    await routes.deleteRoute('/user/r0').catch(() => undefined);
    const t0 = performance.now();
    await routes.addRoute('/user/r0', { target });
    const page = await httpRequest(`${proxyUrl}/user/r0/api`);
    times.push(performance.now() - t0);
    if (page.status !== 200) throw new Error(`${target} through ${proxyUrl}: ${page.status} ${page.body.slice(0, 100)}`);
  }
  const wrk = await runWrk(proxyUrl, 1, seconds, 20, 1);
  return { firstByteP50Ms: round(median(times)), firstByteP90Ms: round(percentile(times, 90)), reqPerSec: round(wrk.reqPerSec, 0), p50Ms: round(wrk.p50Ms), p99Ms: round(wrk.p99Ms), errors: wrk.errors };
}

export async function measureRouting(swarm: TestSwarm, worker: SwarmWorker, image: string, cmd: string[], { rounds = 2, firstBytes = 20, seconds = 5 } = {}) {
  const run = randomBytes(3).toString('hex');
  const network = `nbbench-${run}`;
  const container = `nbbench-proxy-${run}`;
  const token = randomBytes(16).toString('hex');
  const backend = new SwarmBackend(swarm.docker, { constraints: [`node.id==${worker.nodeId}`] });
  const started: string[] = [];
  const hostProxy = await startProxy();
  try {
    await exec('docker', ['network', 'create', '-d', 'overlay', '--attachable', network]);
    const spec = { image, cmd, env: [], labels: { 'nbpool.bench': run }, port: 8888, publishIp: '', memoryBytes: 64 << 20, binds: [], capAdd: [], readOnlyRoot: false, tmpfs: ['/tmp'], egress: true };
    const viaPort = await backend.start({ ...spec, name: `${network}-port` });
    started.push(viaPort.containerId);
    const viaOverlay = await backend.start({ ...spec, name: `${network}-overlay`, network });
    started.push(viaOverlay.containerId);
    await exec('docker', ['run', '-d', '--name', container, '--network', network, '-p', '127.0.0.1::8000', '-p', '127.0.0.1::8001', '-e', `CONFIGPROXY_AUTH_TOKEN=${token}`, PROXY_IMAGE, 'proxy', '--ip', '0.0.0.0', '--port', '8000', '--api-ip', '0.0.0.0', '--api-port', '8001', '--log-level', 'warn', '--no-x-forward']);
    const port = async (p: number) => (await exec('docker', ['port', container, String(p)])).stdout.trim().split('\n')[0]!;
    const inContainer = { url: `http://${await port(8000)}`, routes: new HttpRouteTableClient(`http://${await port(8001)}`, token) };
    await waitFor(() => inContainer.routes.getRoutes().then(() => true), { timeoutMs: 30_000, what: 'the proxy container' });

    const results: Record<string, RouteFigures[]> = { 'container proxy -> overlay address': [], 'container proxy -> node address + host port': [], 'host proxy -> node address + host port': [] };
    for (let r = 0; r < rounds; r++) {
      results['container proxy -> overlay address']!.push(await measure(inContainer.url, inContainer.routes, viaOverlay.target, firstBytes, seconds));
      results['container proxy -> node address + host port']!.push(await measure(inContainer.url, inContainer.routes, viaPort.target, firstBytes, seconds));
      results['host proxy -> node address + host port']!.push(await measure(hostProxy.url, hostProxy.routes, viaPort.target, firstBytes, seconds));
    }
    return results;
  } finally {
    await hostProxy.stop();
    await exec('docker', ['rm', '-f', container]).catch(() => undefined);
    await Promise.allSettled(started.map((id) => backend.remove(id)));
    // The overlay is in use until the tasks are gone.
    await waitFor(() => exec('docker', ['network', 'rm', network]).then(() => true), { timeoutMs: 30_000, intervalMs: 500, what: `network ${network} removed` }).catch(() => undefined);
  }
}
