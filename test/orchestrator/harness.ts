/**
 * Test harness: a real proxy process on loopback ephemeral ports, driven over its REST API, and the
 * orchestrator on the real Docker engine with a unique instance per test. The proxy is ours
 * (`nbpool proxy`), or configurable-http-proxy 5.3 with NBPOOL_TEST_PROXY=chp: the two are
 * wire-compatible, and the suite passes against both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger, createLogger } from '../../shared/log.js';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { parseConfig } from '../../shared/config.js';
import { buildOrchestratorConfig, orchestratorOptionSpecs, type OrchestratorConfig } from '../../orchestrator/config.js';
import { startOrchestrator, type RunningOrchestrator } from '../../orchestrator/server.js';
import type { ContainerBackend } from '../../orchestrator/backend.js';
import { removeInstance } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';

/** The admin token every test node takes (a test may give its own with --admin-auth-token). */
export const ADMIN_TOKEN = 'test-admin-token';

export const TINY_COMMAND = 'tiny-notebook --base-url {base_path} --port {port} --ip {ip} --NotebookApp.token={token}';

export interface TestProxy {
  url: string;
  apiUrl: string;
  token: string;
  routes: HttpRouteTableClient;
  stop(): Promise<void>;
}

const CHP = fileURLToPath(new URL('../../node_modules/.bin/configurable-http-proxy', import.meta.url));
const NBPOOL = fileURLToPath(new URL('../../cli/nbpool.ts', import.meta.url));

function proxyCommand(): [string, string[]] {
  if (process.env.NBPOOL_TEST_PROXY === 'chp') return [CHP, []];
  return [process.execPath, ['--import', 'tsx', NBPOOL, 'proxy']];
}

export async function startProxy(): Promise<TestProxy> {
  const token = randomBytes(16).toString('hex');
  for (let attempt = 0; ; attempt++) {
    const [port, apiPort] = [await freePort(), await freePort()];
    const [command, prefix] = proxyCommand();
    const child: ChildProcess = spawn(command, [...prefix, '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--log-level', 'warn', '--no-x-forward'], {
      env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: token },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const routes = new HttpRouteTableClient(`http://127.0.0.1:${apiPort}`, token);
    try {
      await waitFor(() => routes.getRoutes().then(() => true), { timeoutMs: 15_000, what: `proxy (${command})` });
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 2) continue;
      throw new Error(`${(err as Error).message}: ${stderr}`);
    }
    return {
      url: `http://127.0.0.1:${port}`,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      token,
      routes,
      async stop() {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      },
    };
  }
}

export function uniqueInstance(what: string): string {
  return `t-${what}-${randomBytes(4).toString('hex')}`;
}

/** Claim journals go to the run's state directory (npm test makes one), never into the checkout. */
const stateDir = process.env.NBPOOL_STATE_DIR ?? mkdtempSync(join(tmpdir(), 'nbpool-test-state-'));

/** Config for a test: the tiny image, short periods, loopback ephemeral ports. */
export function testConfig(instance: string, argv: string[] = [], file: Record<string, unknown> = {}): OrchestratorConfig {
  const { values } = parseConfig(
    orchestratorOptionSpecs,
    [
      '--image', 'nbpool/tiny:latest',
      '--command', TINY_COMMAND,
      '--instance', instance,
      '--port', '0',
      '--admin-port', '0',
      '--mem-limit', '64m',
      '--max-containers', '20',
      '--probe-timeout', '10',
      '--cull-period', '3600',
      // Every test request comes from loopback, one client: fair shares are tested where asked for.
      '--max-per-client', '0',
      '--claims-per-minute', '0',
      '--admin-auth-token', ADMIN_TOKEN,
      '--state-dir', stateDir,
      ...argv,
    ],
    {},
  );
  return buildOrchestratorConfig(values, file);
}

export interface Node {
  proxy: TestProxy;
  orch: RunningOrchestrator;
  instance: string;
  /** Starts another orchestrator for the same instance and proxy (restart). */
  restart(argv?: string[]): Promise<RunningOrchestrator>;
  stop(): Promise<void>;
}

/** Proxy + orchestrator, with the orchestrator as the proxy's default target (on `backend`, else this Docker engine). */
export async function startNode(what: string, argv: string[] = [], file: Record<string, unknown> = {}, backend?: ContainerBackend): Promise<Node> {
  const instance = uniqueInstance(what);
  const proxy = await startProxy();
  const log = process.env.NBPOOL_TEST_LOG ? createLogger(instance, process.env.NBPOOL_TEST_LOG) : silentLogger();
  const launch = async (extra: string[]) => {
    const orch = await startOrchestrator(testConfig(instance, [...argv, ...extra], file), { routes: proxy.routes, log, backend });
    await proxy.routes.addRoute('/', { target: orch.url });
    return orch;
  };
  const node: Node = {
    proxy,
    instance,
    orch: await launch([]),
    async restart(extra = []) {
      await node.orch.close();
      node.orch = await launch(extra);
      return node.orch;
    },
    async stop() {
      await node.orch.close();
      await proxy.stop();
      await removeInstance(instance);
    },
  };
  return node;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Plain HTTP request that does not follow redirects. */
export function http(url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function stats(node: Node): Promise<import('../../shared/types.js').NodeStats> {
  const reply = await http(`${node.proxy.url}/api/stats`);
  return JSON.parse(reply.body) as import('../../shared/types.js').NodeStats;
}

export function waitForWarm(node: Node, pool: string, warm: number, timeoutMs = 20_000): Promise<true> {
  return waitFor(async () => (await stats(node)).pools[pool]?.warm === warm || undefined, { timeoutMs, intervalMs: 100, what: `${warm} warm in pool ${pool}` });
}
