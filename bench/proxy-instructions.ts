/**
 * User-space instructions per echoed WebSocket message, ours against configurable-http-proxy
 * (CHP), counted by valgrind's callgrind: insensitive to what else runs on the machine, where the
 * CPU times of bench:proxy move with the load (bench/README.md, "The proxy's CPU per WebSocket
 * message"). Each proxy runs under callgrind; after a warm-up the counters are zeroed, M messages
 * are echoed (128 bytes, 10 connections, one in flight each), and the counters dumped.
 * Kernel time is not counted: per message both proxies make the same system calls (two reads,
 * two writes, as nginx does). Env: M (4000 messages), BENCH_NBPOOL_ROOT (another checkout's build).
 * Run: node --import tsx bench/proxy-instructions.ts (slow: about a minute per proxy).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRoutes } from './lib/http.js';
import { chpBin, nbpoolBin, proxyToken, startTinyServer } from './lib/peers.js';
import { freePort, startProc, waitListening } from './lib/procs.js';
import { runWsLoad } from './lib/ws-load.js';

const messages = Number(process.env.M ?? 4000);
const dir = mkdtempSync(join(tmpdir(), 'nbpool-callgrind-'));
const echo = await startTinyServer();
try {
  for (const peer of ['ours', 'CHP 5.3']) {
    const port = await freePort();
    const apiPort = await freePort();
    const flags = ['--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--default-target', 'http://127.0.0.1:1', '--log-level', 'warn'];
    const program = peer === 'ours' ? [nbpoolBin, 'proxy', ...flags] : [chpBin, ...flags];
    const proc = startProc(peer, 'valgrind', ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${dir}/cg.%p`, process.execPath, ...program], { CONFIGPROXY_AUTH_TOKEN: proxyToken });
    try {
      await waitListening(proc, port, 120_000);
      await waitListening(proc, apiPort, 120_000);
      await addRoutes(`http://127.0.0.1:${apiPort}`, proxyToken, ['/user/ws'], `http://127.0.0.1:${echo.port}`);
      const url = `ws://127.0.0.1:${port}/user/ws/echo`;
      await runWsLoad(url, { connections: 10, messageBytes: 128, seconds: 300, maxMessages: 3000 });
      execFileSync('callgrind_control', ['-z', String(proc.pid)], { stdio: 'ignore' });
      const res = await runWsLoad(url, { connections: 10, messageBytes: 128, seconds: 300, maxMessages: messages });
      execFileSync('callgrind_control', ['-d', String(proc.pid)], { stdio: 'ignore' });
      const dump = readdirSync(dir).filter((f) => f.startsWith(`cg.${proc.pid}.`)).sort().pop()!;
      const total = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), 'utf8'))![1]);
      process.stdout.write(`${peer.padEnd(8)} ${Math.round(total / res.received)} instructions per echoed message (${res.received} messages, lost ${res.lost}, altered ${res.altered})\n`);
    } finally {
      await proc.stop();
    }
  }
} finally {
  await echo.stop();
  rmSync(dir, { recursive: true, force: true });
}
