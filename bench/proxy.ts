/**
 * bench:proxy (issues 9, 14, 17). HTTP: nginx upstream, 10,000 routes registered through the REST
 * API on ours and on configurable-http-proxy (CHP), nginx as a proxy for reference (one
 * `location /`, no routes); wrk, 50 connections, random routed paths, peers alternated over rounds,
 * medians and every round reported. Also ours at 10 vs 100,000 routes and its RSS at 100,000.
 * WebSocket: the tiny C echo server, 50 clients, messages/s and the proxy process's own CPU time
 * per echoed message; 1 MiB messages checked too. Each figure carries the machine's load
 * (/proc/loadavg) at its start and end.
 * Both forwarding engines (our NodeForwarder, and http-proxy-3 behind the same route table and
 * header policy, NBPOOL_PROXY_FORWARDER=http-proxy-3) are measured side by side: HTTP, WebSocket,
 * churn (descriptors and RSS after thousands of sockets closed every way) and the fuzz test.
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS (5 per wrk or WebSocket run), BENCH_CHURN (500 WebSockets per way of closing).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHURN_MODES, churnSocket, fdCount, runChurn, startChurnUpstream } from '../test/helpers/churn.js';
import { addRoutes } from './lib/http.js';
import { startNginxProxy, startNginxUpstream } from './lib/nginx.js';
import { ourProgramExists, proxyToken, repoRoot, startChpLike, startTinyServer, type RunningProxy } from './lib/peers.js';
import { cpuSeconds, rssMiB, sleep, type Proc } from './lib/procs.js';
import { median, noteLoad, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';
import { runWrk, type WrkResult } from './lib/wrk.js';
import { runWsLoad, type WsLoadResult } from './lib/ws-load.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const churnPerMode = Number(process.env.BENCH_CHURN ?? 500);
const ROUTES = 10_000;
const BIG = 100_000;
// unrouted requests go nowhere (nothing listens on port 1), so a missing route shows as an error
const deadTarget = 'http://127.0.0.1:1';

/** The forwarding engines measured side by side (issue 14): env for `nbpool proxy`. */
const ENGINES = [
  { name: 'ours', env: {} },
  { name: 'ours/http-proxy-3', env: { NBPOOL_PROXY_FORWARDER: 'http-proxy-3' } },
] as const;

const routePaths = (n: number) => Array.from({ length: n }, (_, i) => `/user/r${i}`);

/** The 1-minute load average from /proc/loadavg. */
function load1(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

interface Loaded {
  /** 1-minute load average at the start and the end of this figure's run. */
  load: [number, number];
}

interface HttpPeer {
  name: string;
  url: string;
  routes: number | string;
  proc: Proc;
  runs: (WrkResult & Loaded)[];
  rss: number[];
}

type WsRun = WsLoadResult & Loaded & { cpuUsPerMsg: number };

interface WsPeer {
  name: string;
  url: string;
  /** The process whose CPU time is counted (none for the direct connection). */
  proc?: Proc;
  runs: WsRun[];
  big?: WsRun;
}

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

/** max/min - 1 over a list of figures: the spread between rounds. */
function spread(values: readonly number[]): number {
  return Math.max(...values) / Math.min(...values) - 1;
}

/**
 * A ratio goal judged on the medians, with every round's ratio shown when the margin to the
 * threshold is smaller than the spread between rounds (the verdict could go either way).
 */
function ratioGoal(name: string, ours: readonly number[], peer: readonly number[], threshold: number, higherIsBetter: boolean, unit: string): Goal {
  const ratio = median(ours) / median(peer);
  const perRound = ours.map((o, i) => o / peer[i]!);
  const met = higherIsBetter ? ratio >= threshold : ratio <= threshold;
  const margin = Math.abs(ratio / threshold - 1);
  const noise = Math.max(spread(ours), spread(peer));
  const rounds = `rounds x${perRound.map((r) => round(r)).join(', x')}`;
  const close = margin < noise ? `; decided by less than the spread between rounds (${round(noise * 100, 0)}%)` : `; spread ${round(noise * 100, 0)}%`;
  return { name, met, detail: `${round(median(ours), 2)} vs ${round(median(peer), 2)} ${unit} (x${round(ratio)}); ${rounds}${close}` };
}

/** Runs the fuzz test against one engine; its counts, or the test's failure. */
function runFuzz(env: Record<string, string>): Promise<{ passed: boolean; inputs: number; answered: number; failures: string[]; seconds: number }> {
  const summary = join(mkdtempSync(join(tmpdir(), 'nbpool-bench-fuzz-')), 'fuzz.json');
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=dot', 'test/proxy/fuzz.test.ts'], {
      cwd: repoRoot,
      env: { ...process.env, ...env, NBPOOL_FUZZ_SUMMARY: summary },
      stdio: 'ignore',
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        const counts = JSON.parse(readFileSync(summary, 'utf8')) as { inputs: number; answered: number; failures: string[] };
        resolve({ passed: code === 0, ...counts, seconds: (Date.now() - t0) / 1000 });
      } catch {
        resolve({ passed: false, inputs: 0, answered: 0, failures: [`the fuzz test did not finish (exit ${code})`], seconds: (Date.now() - t0) / 1000 });
      }
    });
  });
}

async function main(): Promise<void> {
  if (!ourProgramExists('proxy')) {
    // A bench that cannot start our program must not pass for one that measured nothing.
    throw new Error('nbpool proxy is not built (npm run build) or does not start: nothing to measure');
  }
  const started = Date.now();
  const loadAtStart = noteLoad('at the start');
  const procs: Proc[] = [];
  const track = <T extends Proc>(p: T): T => {
    procs.push(p);
    return p;
  };
  try {
    // ---------- HTTP ----------
    const upstream = track(await startNginxUpstream());
    const target = `http://127.0.0.1:${upstream.port}`;
    const peers: HttpPeer[] = [];
    const addChpLike = async (kind: 'ours' | 'chp', name: string, routes: number, env: Record<string, string> = {}) => {
      const p = track(await startChpLike(kind, name, deadTarget, [], env));
      const t0 = Date.now();
      await addRoutes(p.apiUrl, proxyToken, routePaths(routes), target);
      say(`${name}: ${routes} routes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      peers.push({ name, url: p.url, routes, proc: p, runs: [], rss: [] });
      return p;
    };
    await addChpLike('chp', 'CHP 5.3', ROUTES);
    const nginxProxy = track(await startNginxProxy(`127.0.0.1:${upstream.port}`));
    peers.push({ name: 'nginx', url: `http://127.0.0.1:${nginxProxy.port}`, routes: 'one location /', proc: nginxProxy, runs: [], rss: [] });
    for (const engine of ENGINES) await addChpLike('ours', engine.name, ROUTES, engine.env);
    await addChpLike('ours', 'ours@10', 10);
    await addChpLike('ours', 'ours@100k', BIG);
    const routesOf = (p: HttpPeer) => (typeof p.routes === 'number' ? p.routes : ROUTES);

    say(`\nHTTP: wrk -c50 -t2, ${seconds} s per run, ${rounds} rounds, peers alternated`);
    for (const p of peers) await runWrk(p.url, routesOf(p), 1); // warm-up (JIT, connections)
    for (let r = 0; r < rounds; r++) {
      const order = peers.map((_, i) => peers[(i + r) % peers.length]!);
      for (const p of order) {
        const before = load1();
        const res = await runWrk(p.url, routesOf(p), seconds);
        p.runs.push({ ...res, load: [before, load1()] });
        p.rss.push(rssMiB(p.proc.pid));
        say(`  round ${r + 1} ${p.name.padEnd(18)} ${Math.round(res.reqPerSec)} req/s  p99 ${res.p99Ms.toFixed(2)} ms  errors ${res.errors}  load ${before} -> ${load1()}`);
      }
    }
    const httpRow = (p: HttpPeer) => ({
      name: p.name,
      routes: p.routes,
      reqPerSec: round(median(p.runs.map((x) => x.reqPerSec)), 0),
      p50Ms: round(median(p.runs.map((x) => x.p50Ms)), 3),
      p99Ms: round(median(p.runs.map((x) => x.p99Ms)), 3),
      rssMiB: round(Math.max(...p.rss), 1),
      errors: p.runs.reduce((s, x) => s + x.errors, 0),
      runs: p.runs.map((x) => ({ reqPerSec: round(x.reqPerSec, 0), p99Ms: round(x.p99Ms, 3), load: x.load })),
    });
    const http = peers.map(httpRow);
    const get = (name: string) => http.find((h) => h.name === name)!;
    const chp = get('CHP 5.3');
    const nginx = get('nginx');
    printTable(
      'HTTP (medians over rounds; RSS is the largest seen after a run; nginx proxies one `location /`, it has no route table)',
      ['proxy', 'routes', 'req/s', 'p50 ms', 'p99 ms', 'RSS MiB', 'errors', 'req/s x CHP', 'req/s x nginx', 'p99 x CHP', 'RSS x CHP', 'req/s per round'],
      http.map((h) => [h.name, h.routes, h.reqPerSec, h.p50Ms, h.p99Ms, h.rssMiB, h.errors, h.reqPerSec / chp.reqPerSec, h.reqPerSec / nginx.reqPerSec, h.p99Ms / chp.p99Ms, h.rssMiB / chp.rssMiB, h.runs.map((x) => x.reqPerSec).join(' / ')]),
    );

    // ---------- WebSocket ----------
    const echo = track(await startTinyServer());
    const echoTarget = `http://127.0.0.1:${echo.port}`;
    const wsPeers: WsPeer[] = [{ name: 'direct', url: `ws://127.0.0.1:${echo.port}/user/ws/echo`, runs: [] }];
    const wsNginx = track(await startNginxProxy(`127.0.0.1:${echo.port}`));
    const chpProc = peers.find((p) => p.name === 'CHP 5.3')!.proc as RunningProxy;
    await addRoutes(chpProc.apiUrl, proxyToken, ['/user/ws'], echoTarget);
    wsPeers.push({ name: 'CHP 5.3', url: `ws://127.0.0.1:${chpProc.port}/user/ws/echo`, proc: chpProc, runs: [] });
    wsPeers.push({ name: 'nginx', url: `ws://127.0.0.1:${wsNginx.port}/user/ws/echo`, proc: wsNginx, runs: [] });
    for (const engine of ENGINES) {
      const proc = peers.find((p) => p.name === engine.name)!.proc as RunningProxy;
      await addRoutes(proc.apiUrl, proxyToken, ['/user/ws'], echoTarget);
      wsPeers.push({ name: engine.name, url: `ws://127.0.0.1:${proc.port}/user/ws/echo`, proc, runs: [] });
    }
    const measure = async (p: WsPeer, opts: Parameters<typeof runWsLoad>[1]): Promise<WsRun> => {
      const before = load1();
      const cpu0 = p.proc ? cpuSeconds(p.proc.pid) : 0;
      const res = await runWsLoad(p.url, opts);
      const cpu = p.proc ? cpuSeconds(p.proc.pid) - cpu0 : NaN;
      return { ...res, cpuUsPerMsg: (cpu * 1e6) / res.received, load: [before, load1()] };
    };
    say(`\nWebSocket: 50 connections, 128-byte messages, one in flight each, ${seconds} s per run, ${rounds} rounds`);
    for (const p of wsPeers) await runWsLoad(p.url, { connections: 50, messageBytes: 128, seconds: 1 }); // warm-up
    for (let r = 0; r < rounds; r++) {
      const order = wsPeers.map((_, i) => wsPeers[(i + r) % wsPeers.length]!);
      for (const p of order) {
        const res = await measure(p, { connections: 50, messageBytes: 128, seconds });
        p.runs.push(res);
        say(`  round ${r + 1} ${p.name.padEnd(18)} ${Math.round(res.messagesPerSec)} msg/s  ${res.cpuUsPerMsg.toFixed(1)} µs CPU/msg  lost ${res.lost} altered ${res.altered} failures ${res.failures}  load ${res.load[0]} -> ${res.load[1]}`);
      }
    }
    say('\nWebSocket 1 MiB messages: 4 connections, at most 200 messages each peer');
    for (const p of wsPeers) {
      p.big = await measure(p, { connections: 4, messageBytes: 1024 * 1024, seconds, maxMessages: 200 });
      say(`  ${p.name.padEnd(18)} ${p.big.received}/${p.big.sent} echoed  ${p.big.messagesPerSec.toFixed(0)} msg/s  lost ${p.big.lost} altered ${p.big.altered} failures ${p.big.failures}`);
    }
    const ws = wsPeers.map((p) => ({
      name: p.name,
      messagesPerSec: round(median(p.runs.map((x) => x.messagesPerSec)), 0),
      cpuUsPerMsg: round(median(p.runs.map((x) => x.cpuUsPerMsg)), 2),
      lost: p.runs.reduce((s, x) => s + x.lost, 0),
      altered: p.runs.reduce((s, x) => s + x.altered, 0),
      failures: p.runs.reduce((s, x) => s + x.failures, 0),
      echoed: p.runs.reduce((s, x) => s + x.received, 0),
      runs: p.runs.map((x) => ({ messagesPerSec: round(x.messagesPerSec, 0), cpuUsPerMsg: round(x.cpuUsPerMsg, 2), load: x.load })),
      big: p.big && { sent: p.big.sent, received: p.big.received, lost: p.big.lost, altered: p.big.altered, failures: p.big.failures, messagesPerSec: round(p.big.messagesPerSec, 1), cpuUsPerMsg: round(p.big.cpuUsPerMsg, 0), load: p.big.load },
    }));
    const wsGet = (name: string) => ws.find((w) => w.name === name)!;
    const wsChp = wsGet('CHP 5.3');
    const wsNg = wsGet('nginx');
    printTable(
      "WebSocket (medians over rounds; CPU = the proxy process's utime+stime per echoed message; nginx proxies one `location /`)",
      ['path', 'msg/s', 'µs CPU/msg', 'x CHP msg/s', 'x CHP CPU', 'x nginx CPU', 'lost', 'altered', '1 MiB echoed', '1 MiB lost+altered', 'msg/s per round', 'µs CPU/msg per round'],
      ws.map((w) => [w.name, w.messagesPerSec, w.cpuUsPerMsg, w.messagesPerSec / wsChp.messagesPerSec, w.cpuUsPerMsg / wsChp.cpuUsPerMsg, w.cpuUsPerMsg / wsNg.cpuUsPerMsg, w.lost, w.altered, `${w.big?.received}/${w.big?.sent}`, (w.big?.lost ?? 0) + (w.big?.altered ?? 0), w.runs.map((x) => x.messagesPerSec).join(' / '), w.runs.map((x) => x.cpuUsPerMsg).join(' / ')]),
    );

    // ---------- churn and fuzz, per forwarding engine ----------
    say(`\nChurn: ${churnPerMode} WebSockets closed each way (${CHURN_MODES.join(', ')}), then ${churnPerMode} abandoned HTTP requests, per engine`);
    const churnUpstream = await startChurnUpstream();
    const churn: { name: string; websockets: number; opened: number; exchanged: Record<string, number>; aborted: number; seconds: number; before: { fds: number; rssMiB: number; load: number }; after: { fds: number; rssMiB: number; load: number } }[] = [];
    try {
      for (const engine of ENGINES) {
        const proc = track(await startChpLike('ours', `${engine.name} churn`, deadTarget, [], engine.env));
        await addRoutes(proc.apiUrl, proxyToken, ['/user/churn'], churnUpstream.url);
        await churnSocket(`${proc.url.replace('http', 'ws')}/user/churn/ws`, 'client-close');
        await fetch(`${proc.url}/user/churn/x`).then((r) => r.text());
        await sleep(800); // idle keep-alive sockets to the upstream expire (its keepAliveTimeout is 300 ms)
        const before = { fds: fdCount(proc.pid), rssMiB: round(rssMiB(proc.pid), 1), load: load1() };
        const t0 = Date.now();
        const counts = await runChurn(proc.url, '/user/churn', churnPerMode, churnPerMode);
        const churnSeconds = (Date.now() - t0) / 1000;
        let fds = fdCount(proc.pid);
        for (let waited = 0; fds > before.fds && waited < 15_000; waited += 200) {
          await sleep(200);
          fds = fdCount(proc.pid);
        }
        const after = { fds, rssMiB: round(rssMiB(proc.pid), 1), load: load1() };
        const opened = Object.values(counts.exchanged).reduce((a, b) => a + b, 0);
        churn.push({ name: engine.name, websockets: CHURN_MODES.length * churnPerMode, opened, exchanged: counts.exchanged, aborted: counts.aborted, seconds: round(churnSeconds, 1), before, after });
        say(`  ${engine.name.padEnd(18)} ${opened}/${CHURN_MODES.length * churnPerMode} WebSockets opened and echoed; fds ${before.fds} -> ${after.fds}; RSS ${before.rssMiB} -> ${after.rssMiB} MiB; ${churnSeconds.toFixed(1)} s; load ${before.load} -> ${after.load}`);
        await proc.stop();
      }
    } finally {
      await churnUpstream.close();
    }
    say('\nFuzz test (test/proxy/fuzz.test.ts) against each engine');
    const fuzz: { name: string; passed: boolean; inputs: number; answered: number; failures: number; failed: string[]; seconds: number }[] = [];
    for (const engine of ENGINES) {
      const result = await runFuzz({ NBPOOL_PROXY_FORWARDER: engine.name === 'ours' ? 'node' : 'http-proxy-3' });
      fuzz.push({ name: engine.name, ...result, failures: result.failures.length, failed: result.failures.slice(0, 20) });
      say(`  ${engine.name.padEnd(18)} ${result.passed ? 'passed' : 'FAILED'}: ${result.answered}/${result.inputs} answered, ${result.failures.length} failures${result.failures.length ? ': ' + result.failures.slice(0, 3).join(' | ').slice(0, 400) : ''}`);
    }

    // ---------- the two engines side by side ----------
    const engineRows = ENGINES.map((e) => {
      const h = get(e.name);
      const w = wsGet(e.name);
      const c = churn.find((x) => x.name === e.name)!;
      const f = fuzz.find((x) => x.name === e.name)!;
      return [e.name, h.reqPerSec, h.p99Ms, w.messagesPerSec, w.cpuUsPerMsg, `${c.opened}/${c.websockets}`, `${c.before.fds} -> ${c.after.fds}`, `${c.before.rssMiB} -> ${c.after.rssMiB}`, `${f.failures} of ${f.inputs}`];
    });
    printTable('Forwarding engines side by side (10,000 routes; same route table, activity tracking and header policy)', ['engine', 'req/s', 'p99 ms', 'WS msg/s', 'WS µs CPU/msg', 'churn WS opened', 'churn fds', 'churn RSS MiB', 'fuzz failures'], engineRows);

    // ---------- goals ----------
    const ours = peers.find((p) => p.name === 'ours')!;
    const chpPeer = peers.find((p) => p.name === 'CHP 5.3')!;
    const o10 = get('ours@10');
    const o100k = get('ours@100k');
    const rel = o100k.reqPerSec / o10.reqPerSec;
    const wsOurs = wsGet('ours');
    const wsOursPeer = wsPeers.find((p) => p.name === 'ours')!;
    const wsChpPeer = wsPeers.find((p) => p.name === 'CHP 5.3')!;
    const wsRoundRatios = wsOursPeer.runs.map((x, i) => x.messagesPerSec / wsChpPeer.runs[i]!.messagesPerSec);
    const goals: Goal[] = [
      ratioGoal('req/s >= 3x CHP at 10,000 routes', ours.runs.map((x) => x.reqPerSec), chpPeer.runs.map((x) => x.reqPerSec), 3, true, 'req/s'),
      { name: 'p99 below CHP', met: get('ours').p99Ms < chp.p99Ms, detail: `${get('ours').p99Ms} ms vs ${chp.p99Ms} ms; rounds ${ours.runs.map((x, i) => `${round(x.p99Ms)}/${round(chpPeer.runs[i]!.p99Ms)}`).join(', ')} ms` },
      { name: '100,000 routes within 5% of 10 routes', met: rel >= 0.95, detail: `${o100k.reqPerSec} vs ${o10.reqPerSec} req/s (x${round(rel, 3)})` },
      { name: 'RSS at 100,000 routes < 150 MB', met: o100k.rssMiB * 1.048576 < 150, detail: `${o100k.rssMiB} MiB (${round(o100k.rssMiB * 1.048576, 1)} MB)` },
      { name: 'WebSocket msg/s >= CHP in every round', met: wsRoundRatios.every((r) => r >= 1), detail: `median ${wsOurs.messagesPerSec} vs ${wsChp.messagesPerSec}; rounds x${wsRoundRatios.map((r) => round(r)).join(', x')}` },
      ratioGoal('WebSocket CPU/msg <= 0.7x CHP', wsOursPeer.runs.map((x) => x.cpuUsPerMsg), wsChpPeer.runs.map((x) => x.cpuUsPerMsg), 0.7, false, 'µs'),
      { name: 'no lost or altered WebSocket message (incl. 1 MiB)', met: wsOurs.lost + wsOurs.altered + wsOurs.failures === 0 && !!wsOurs.big && wsOurs.big.lost + wsOurs.big.altered + wsOurs.big.failures === 0 && wsOurs.big.received > 0, detail: `lost ${wsOurs.lost}, altered ${wsOurs.altered}, failures ${wsOurs.failures} of ${wsOurs.echoed}; 1 MiB: ${wsOurs.big?.received}/${wsOurs.big?.sent} echoed, altered ${wsOurs.big?.altered}` },
    ];
    printGoals(goals);

    writeResults('proxy', {
      bench: 'proxy',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings: { rounds, secondsPerRun: seconds, routes: ROUTES, bigRoutes: BIG, wrk: { connections: 50, threads: 2 }, ws: { connections: 50, messageBytes: 128 }, churnPerMode },
      http,
      websocket: ws,
      churn,
      fuzz,
      goals,
    }, loadAtStart);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
