/**
 * bench:proxy (issue 9). HTTP: nginx upstream, 10,000 routes registered through the REST API on
 * ours and on configurable-http-proxy (CHP), nginx as a proxy for reference; wrk, 50 connections,
 * random routed paths, peers alternated over rounds, medians reported. Also ours at 10 vs 100,000
 * routes and its RSS at 100,000. WebSocket: the tiny C echo server, 50 clients, messages/s and
 * the proxy process's own CPU time per echoed message; 1 MiB messages checked too.
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS (5 per wrk or WebSocket run).
 */
import { addRoutes } from './lib/http.js';
import { startNginxProxy, startNginxUpstream } from './lib/nginx.js';
import { ourProgramExists, proxyToken, startChpLike, startTinyServer, type RunningProxy } from './lib/peers.js';
import { cpuSeconds, rssMiB, type Proc } from './lib/procs.js';
import { median, noteLoad, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';
import { runWrk, type WrkResult } from './lib/wrk.js';
import { runWsLoad, type WsLoadResult } from './lib/ws-load.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const ROUTES = 10_000;
const BIG = 100_000;
// unrouted requests go nowhere (nothing listens on port 1), so a missing route shows as an error
const deadTarget = 'http://127.0.0.1:1';

const routePaths = (n: number) => Array.from({ length: n }, (_, i) => `/user/r${i}`);

interface HttpPeer {
  name: string;
  url: string;
  routes: number;
  proc: Proc;
  runs: WrkResult[];
  rss: number[];
}

interface WsPeer {
  name: string;
  url: string;
  /** The process whose CPU time is counted (none for the direct connection). */
  proc?: Proc;
  runs: (WsLoadResult & { cpuUsPerMsg: number })[];
  big?: WsLoadResult & { cpuUsPerMsg: number };
}

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

async function main(): Promise<void> {
  const haveOurs = ourProgramExists('proxy');
  if (!haveOurs) say('nbpool proxy is not built or not implemented yet: measuring the peers only');
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
    const addChpLike = async (kind: 'ours' | 'chp', name: string, routes: number) => {
      const p = track(await startChpLike(kind, name, deadTarget));
      const t0 = Date.now();
      await addRoutes(p.apiUrl, proxyToken, routePaths(routes), target);
      say(`${name}: ${routes} routes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      peers.push({ name, url: p.url, routes, proc: p, runs: [], rss: [] });
      return p;
    };
    await addChpLike('chp', 'CHP 5.3', ROUTES);
    const nginxProxy = track(await startNginxProxy(`127.0.0.1:${upstream.port}`));
    peers.push({ name: 'nginx', url: `http://127.0.0.1:${nginxProxy.port}`, routes: ROUTES, proc: nginxProxy, runs: [], rss: [] });
    if (haveOurs) {
      await addChpLike('ours', 'ours', ROUTES);
      await addChpLike('ours', 'ours@10', 10);
      await addChpLike('ours', 'ours@100k', BIG);
    }

    say(`\nHTTP: wrk -c50 -t2, ${seconds} s per run, ${rounds} rounds, peers alternated`);
    for (const p of peers) await runWrk(p.url, p.routes, 1); // warm-up (JIT, connections)
    for (let r = 0; r < rounds; r++) {
      const order = peers.map((_, i) => peers[(i + r) % peers.length]!);
      for (const p of order) {
        const res = await runWrk(p.url, p.routes, seconds);
        p.runs.push(res);
        p.rss.push(rssMiB(p.proc.pid));
        say(`  round ${r + 1} ${p.name.padEnd(10)} ${Math.round(res.reqPerSec)} req/s  p99 ${res.p99Ms.toFixed(2)} ms  errors ${res.errors}`);
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
      runs: p.runs.map((x) => round(x.reqPerSec, 0)),
    });
    const http = peers.map(httpRow);
    const get = (name: string) => http.find((h) => h.name === name);
    const chp = get('CHP 5.3')!;
    const nginx = get('nginx')!;
    const ours = get('ours');
    printTable(
      'HTTP (medians over rounds; RSS is the largest seen after a run)',
      ['proxy', 'routes', 'req/s', 'p50 ms', 'p99 ms', 'RSS MiB', 'errors', 'req/s x CHP', 'req/s x nginx', 'p99 x CHP', 'RSS x CHP'],
      http.map((h) => [h.name, h.routes, h.reqPerSec, h.p50Ms, h.p99Ms, h.rssMiB, h.errors, h.reqPerSec / chp.reqPerSec, h.reqPerSec / nginx.reqPerSec, h.p99Ms / chp.p99Ms, h.rssMiB / chp.rssMiB]),
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
    if (haveOurs) {
      const oursProc = peers.find((p) => p.name === 'ours')!.proc as RunningProxy;
      await addRoutes(oursProc.apiUrl, proxyToken, ['/user/ws'], echoTarget);
      wsPeers.push({ name: 'ours', url: `ws://127.0.0.1:${oursProc.port}/user/ws/echo`, proc: oursProc, runs: [] });
    }
    const measure = async (p: WsPeer, opts: Parameters<typeof runWsLoad>[1]) => {
      const cpu0 = p.proc ? cpuSeconds(p.proc.pid) : 0;
      const res = await runWsLoad(p.url, opts);
      const cpu = p.proc ? cpuSeconds(p.proc.pid) - cpu0 : NaN;
      return { ...res, cpuUsPerMsg: (cpu * 1e6) / res.received };
    };
    say(`\nWebSocket: 50 connections, 128-byte messages, one in flight each, ${seconds} s per run, ${rounds} rounds`);
    for (const p of wsPeers) await runWsLoad(p.url, { connections: 50, messageBytes: 128, seconds: 1 }); // warm-up
    for (let r = 0; r < rounds; r++) {
      const order = wsPeers.map((_, i) => wsPeers[(i + r) % wsPeers.length]!);
      for (const p of order) {
        const res = await measure(p, { connections: 50, messageBytes: 128, seconds });
        p.runs.push(res);
        say(`  round ${r + 1} ${p.name.padEnd(8)} ${Math.round(res.messagesPerSec)} msg/s  ${res.cpuUsPerMsg.toFixed(1)} µs CPU/msg  lost ${res.lost} altered ${res.altered} failures ${res.failures}`);
      }
    }
    say('\nWebSocket 1 MiB messages: 4 connections, at most 200 messages each peer');
    for (const p of wsPeers) {
      p.big = await measure(p, { connections: 4, messageBytes: 1024 * 1024, seconds, maxMessages: 200 });
      say(`  ${p.name.padEnd(8)} ${p.big.received}/${p.big.sent} echoed  ${p.big.messagesPerSec.toFixed(0)} msg/s  lost ${p.big.lost} altered ${p.big.altered} failures ${p.big.failures}`);
    }
    const ws = wsPeers.map((p) => ({
      name: p.name,
      messagesPerSec: round(median(p.runs.map((x) => x.messagesPerSec)), 0),
      cpuUsPerMsg: round(median(p.runs.map((x) => x.cpuUsPerMsg)), 2),
      lost: p.runs.reduce((s, x) => s + x.lost, 0),
      altered: p.runs.reduce((s, x) => s + x.altered, 0),
      failures: p.runs.reduce((s, x) => s + x.failures, 0),
      echoed: p.runs.reduce((s, x) => s + x.received, 0),
      big: p.big && { sent: p.big.sent, received: p.big.received, lost: p.big.lost, altered: p.big.altered, failures: p.big.failures, messagesPerSec: round(p.big.messagesPerSec, 1), cpuUsPerMsg: round(p.big.cpuUsPerMsg, 0) },
    }));
    const wsChp = ws.find((w) => w.name === 'CHP 5.3')!;
    const wsNg = ws.find((w) => w.name === 'nginx')!;
    printTable(
      'WebSocket (medians over rounds; CPU = the proxy process\'s utime+stime per echoed message)',
      ['path', 'msg/s', 'µs CPU/msg', 'x CHP msg/s', 'x CHP CPU', 'x nginx CPU', 'lost', 'altered', '1 MiB echoed', '1 MiB lost+altered'],
      ws.map((w) => [w.name, w.messagesPerSec, w.cpuUsPerMsg, w.messagesPerSec / wsChp.messagesPerSec, w.cpuUsPerMsg / wsChp.cpuUsPerMsg, w.cpuUsPerMsg / wsNg.cpuUsPerMsg, w.lost, w.altered, `${w.big?.received}/${w.big?.sent}`, (w.big?.lost ?? 0) + (w.big?.altered ?? 0)]),
    );

    // ---------- goals ----------
    const goals: Goal[] = [];
    const wsOurs = ws.find((w) => w.name === 'ours');
    if (ours && wsOurs) {
      const o10 = get('ours@10')!;
      const o100k = get('ours@100k')!;
      const rel = o100k.reqPerSec / o10.reqPerSec;
      goals.push(
        { name: 'req/s >= 3x CHP', met: ours.reqPerSec >= 3 * chp.reqPerSec, detail: `${ours.reqPerSec} vs ${chp.reqPerSec} (x${round(ours.reqPerSec / chp.reqPerSec)}); nginx ${nginx.reqPerSec} (ours x${round(ours.reqPerSec / nginx.reqPerSec)})` },
        { name: 'p99 below CHP', met: ours.p99Ms < chp.p99Ms, detail: `${ours.p99Ms} ms vs ${chp.p99Ms} ms` },
        { name: '100,000 routes within 5% of 10 routes', met: rel >= 0.95, detail: `${o100k.reqPerSec} vs ${o10.reqPerSec} req/s (x${round(rel, 3)})` },
        { name: 'RSS at 100,000 routes < 150 MB', met: o100k.rssMiB * 1.048576 < 150, detail: `${o100k.rssMiB} MiB (${round(o100k.rssMiB * 1.048576, 1)} MB)` },
        { name: 'WebSocket msg/s >= CHP', met: wsOurs.messagesPerSec >= wsChp.messagesPerSec, detail: `${wsOurs.messagesPerSec} vs ${wsChp.messagesPerSec} (x${round(wsOurs.messagesPerSec / wsChp.messagesPerSec)})` },
        { name: 'WebSocket CPU/msg <= 0.4x CHP', met: wsOurs.cpuUsPerMsg <= 0.4 * wsChp.cpuUsPerMsg, detail: `${wsOurs.cpuUsPerMsg} vs ${wsChp.cpuUsPerMsg} µs (x${round(wsOurs.cpuUsPerMsg / wsChp.cpuUsPerMsg)}); nginx ${wsNg.cpuUsPerMsg} µs` },
        { name: 'no lost or altered WebSocket message (incl. 1 MiB)', met: wsOurs.lost + wsOurs.altered + wsOurs.failures === 0 && !!wsOurs.big && wsOurs.big.lost + wsOurs.big.altered + wsOurs.big.failures === 0 && wsOurs.big.received > 0, detail: `lost ${wsOurs.lost}, altered ${wsOurs.altered}, failures ${wsOurs.failures} of ${wsOurs.echoed}; 1 MiB: ${wsOurs.big?.received}/${wsOurs.big?.sent} echoed, altered ${wsOurs.big?.altered}` },
      );
      printGoals(goals);
    } else {
      say('\nGoals: not judged (nbpool proxy not available yet)');
    }

    writeResults('proxy', {
      bench: 'proxy',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings: { rounds, secondsPerRun: seconds, routes: ROUTES, bigRoutes: BIG, wrk: { connections: 50, threads: 2 }, ws: { connections: 50, messageBytes: 128 } },
      oursMeasured: haveOurs,
      http,
      websocket: ws,
      goals,
    }, loadAtStart);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
