/**
 * User-space instructions per forwarded HTTP request and per echoed WebSocket message, ours
 * against configurable-http-proxy (CHP), counted by valgrind's callgrind: insensitive to what
 * else runs on the machine, where the CPU times and rates of bench:proxy move with the load
 * (bench/README.md, "The proxy's CPU per WebSocket message" and "Forwarding engine"). Each proxy
 * runs under callgrind; after a warm-up the counters are zeroed, then N GETs go through it to an
 * nginx upstream (10 kept-alive connections, one request in flight each) and M messages are echoed
 * by the tiny server (128 bytes, 10 connections, one in flight each), the counters dumped after
 * each. Kernel time is not counted: per request or message both proxies make the same system
 * calls (two reads, two writes, as nginx does). Env: N (3000 requests), M (4000 messages),
 * BENCH_NBPOOL_ROOT (another checkout's build), BENCH_BEFORE_ROOT (a built checkout measured too, as
 * "before").
 * Run: node --import tsx bench/proxy-instructions.ts (slow: a minute or two per proxy).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRoutes, forEachLimited, httpRequest, keepAliveAgent } from './lib/http.js';
import { startNginxUpstream } from './lib/nginx.js';
import { chpBin, launcherNodeArgs, nbpoolBin, proxyToken, startTinyServer } from './lib/peers.js';
import { freePort, startProc, waitListening } from './lib/procs.js';
import { runWsLoad } from './lib/ws-load.js';

const requests = Number(process.env.N ?? 3000);
const messages = Number(process.env.M ?? 4000);
const dir = mkdtempSync(join(tmpdir(), 'nbpool-callgrind-'));
const echo = await startTinyServer();
const upstream = await startNginxUpstream();
/** Instructions counted by callgrind since the last zeroing, from its newest dump for `pid`. */
const dumpedInstructions = (pid: number): number => {
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  const dump = readdirSync(dir).filter((f) => f.startsWith(`cg.${pid}.`)).sort().pop()!;
  return Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), 'utf8'))![1]);
};
try {
  const before = process.env.BENCH_BEFORE_ROOT;
  for (const peer of ['ours', ...(before ? ['before'] : []), 'CHP 5.3']) {
    const port = await freePort();
    const apiPort = await freePort();
    const flags = ['--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--default-target', 'http://127.0.0.1:1', '--log-level', 'warn'];
    const bin = peer === 'before' ? join(before!, 'bin', 'nbpool.js') : nbpoolBin;
    const program = peer === 'CHP 5.3' ? [chpBin, ...flags] : [...launcherNodeArgs(bin), bin, 'proxy', ...flags];
    const proc = startProc(peer, 'valgrind', ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${dir}/cg.%p`, process.execPath, ...program], { CONFIGPROXY_AUTH_TOKEN: proxyToken });
    try {
      await waitListening(proc, port, 120_000);
      await waitListening(proc, apiPort, 120_000);
      const api = `http://127.0.0.1:${apiPort}`;
      await addRoutes(api, proxyToken, ['/user/ws'], `http://127.0.0.1:${echo.port}`);
      await addRoutes(api, proxyToken, ['/user/http'], `http://127.0.0.1:${upstream.port}`);
      const agent = keepAliveAgent(10);
      const get = async (i: number) => {
        const res = await httpRequest(`http://127.0.0.1:${port}/user/http/api/contents/${i}`, { agent, timeoutMs: 60_000 });
        if (res.status !== 200) throw new Error(`${peer}: GET answered ${res.status}`);
      };
      await forEachLimited(1000, 10, get);
      execFileSync('callgrind_control', ['-z', String(proc.pid)], { stdio: 'ignore' });
      await forEachLimited(requests, 10, get);
      const httpTotal = dumpedInstructions(proc.pid);
      agent.destroy();
      process.stdout.write(`${peer.padEnd(8)} ${Math.round(httpTotal / requests)} instructions per forwarded HTTP request (${requests} requests)\n`);

      const url = `ws://127.0.0.1:${port}/user/ws/echo`;
      await runWsLoad(url, { connections: 10, messageBytes: 128, seconds: 300, maxMessages: 3000 });
      execFileSync('callgrind_control', ['-z', String(proc.pid)], { stdio: 'ignore' });
      const res = await runWsLoad(url, { connections: 10, messageBytes: 128, seconds: 300, maxMessages: messages });
      const total = dumpedInstructions(proc.pid);
      process.stdout.write(`${peer.padEnd(8)} ${Math.round(total / res.received)} instructions per echoed message (${res.received} messages, lost ${res.lost}, altered ${res.altered})\n`);
    } finally {
      await proc.stop();
    }
  }
} finally {
  await echo.stop();
  await upstream.stop();
  rmSync(dir, { recursive: true, force: true });
}
